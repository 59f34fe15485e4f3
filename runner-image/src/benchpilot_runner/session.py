"""One run session, opened the same way by ``benchpilot run`` (every shard in this process) and
``benchpilot shard`` (one shard in a pod): the output checked, metrics and the heartbeat, health
served, the endpoints' clients, the suite prepared, the run folder, this writer's lease, what the
parts already hold, the budget; then the shards run and the run is concluded.

``local.py`` adds the progress bar and the summary table; ``pod.py`` the shares it follows and the
termination message. Every configuration problem is a :class:`contract.outcomes.ConfigError` (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from .answers.client import Answers
from .answers.runs import keep_spec, open_index
from .budget import BudgetTracker
from .cases import CaseRunner, make_runner
from .contract.fields import SpecError
from .contract.layout import run_path, shard_name
from .contract.registry import find_suite
from .contract.types import RunSpec
from .health import Heartbeat, serve
from .metrics import RunnerMetrics
from .models import Endpoints, build_clients
from .outcome import outcome
from .results import markers
from .results.lease import Lease, acquire_lease, holding
from .results.resume import ResumeState, read_state
from .results.store import check_writable, new_writer_id, open_uri
from .shard import ShardResult, run_shard
from .suites.base import Retrieval

log = logging.getLogger("benchpilot.session")


def local_uid(spec: RunSpec, retrieval: str = "lexical") -> str:
    """A stable run uid for runs without a cluster: the same manifest resumes into the same folder.

    It hashes what changes results but not case ids (the suite's version and its own basis — for
    the workflow suite the tool success rate —, simulated model parameters, how retrieval works:
    lexically, or by embeddings from a cache), so editing the matrix adds cases to the same run,
    while changing how cases behave starts a fresh one.
    """
    basis = {"suite": spec.matrix.suite_version, "retrieval": retrieval,
             "sim": {k: [v.accuracy, v.latency_s] for k, v in sorted(spec.simulation.items())},
             **find_suite(spec.suite).result_basis(spec)}
    return "local-" + hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Setup:
    """How this process takes part in the run: which shards, where it serves health, its share."""

    shards: tuple[int, ...]
    retrieval: Retrieval | None = None  # given (the CLI opened the cache), else opened from cache_dir
    cache_dir: str | None = None
    fraction: float = 1.0  # of the endpoints' run-wide limits
    lease_wait_s: float = 0.0  # wait this long for another writer's lease (a pod's predecessor), then refuse
    serve_at: tuple[str, int] | None = None  # /healthz and /metrics
    serve_field: str = "--metrics-port"  # named when the port cannot be listened on
    memory_request_bytes: int | None = None  # the pod's request (reported), else the formula's
    transport: object = None  # the endpoints' HTTP transport (tests inject one)
    replay: bool = False  # answer only from the reuse sources' transcripts, never the provider (rescore)


@dataclass
class RunSession:
    spec: RunSpec
    setup: Setup
    fs: object
    run_dir: str
    uid: str
    metrics: RunnerMetrics
    heartbeat: Heartbeat
    endpoints: Endpoints
    runner: CaseRunner
    lease: Lease
    state: ResumeState
    budget: BudgetTracker
    sinks: list = field(default_factory=list)
    answers: Answers = field(default_factory=Answers)

    @property
    def writer(self) -> str:
        return self.lease.writer

    @property
    def memory_request_bytes(self) -> int | None:
        return self.setup.memory_request_bytes

    @property
    def uri(self) -> str:
        return self.fs.unstrip_protocol(self.run_dir)


@contextlib.asynccontextmanager
async def open_run(spec: RunSpec, setup: Setup):
    """The session of ``setup.shards`` of ``spec``'s run, its lease held while the block runs."""
    fs, root = open_uri(spec.output.uri)
    await asyncio.to_thread(check_writable, fs, root)
    metrics = RunnerMetrics()
    heartbeat = Heartbeat(spec.limits.hang_timeout_s, on_beat=lambda ts: metrics.last_progress.labels(spec.name).set(ts))
    heartbeat.beat()
    endpoints = build_clients(spec, metrics, heartbeat, transport=setup.transport, fraction=setup.fraction,
                              concurrency=spec.sharding.concurrency_per_shard * len(setup.shards))
    server, answers = None, Answers(replay=setup.replay, metrics=metrics, run=spec.name)
    try:
        server = await _serve(heartbeat, metrics, setup)  # answers the startup probe while the suite loads
        runner = await _prepare(spec, setup, answers.wrap(endpoints), heartbeat)
        uid = spec.uid or local_uid(spec, runner.retrieval.kind)
        run_dir = run_path(root, spec.namespace, spec.name, uid)
        lease = await acquire_lease(fs, run_dir, list(setup.shards), new_writer_id(), wait_s=setup.lease_wait_s)
        async with holding(lease):
            state = await asyncio.to_thread(_resume_state, fs, run_dir, spec, setup.shards)
            await asyncio.to_thread(open_index, answers, spec, fs, run_dir)
            await asyncio.to_thread(keep_spec, fs, run_dir, spec)
            budget = BudgetTracker(spec.budget, share=len(setup.shards) / spec.sharding.shards,
                                   spent_usd=state.spent_usd, spent_tokens=state.spent_tokens)
            yield RunSession(spec, setup, fs, run_dir, uid, metrics, heartbeat, endpoints, runner, lease, state,
                             budget, answers=answers)
    finally:
        await endpoints.close()
        if server is not None:
            await server.cleanup()


async def _serve(heartbeat: Heartbeat, metrics: RunnerMetrics, setup: Setup):
    if setup.serve_at is None:
        return None
    host, port = setup.serve_at
    try:
        return await serve(heartbeat, metrics.registry, host, port)
    except OSError as exc:
        raise SpecError(setup.serve_field, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def _prepare(spec: RunSpec, setup: Setup, endpoints, heartbeat: Heartbeat) -> CaseRunner:
    """The suite prepared (its dataset checked: SuiteError names the file) with the cache opened
    (CacheError), off the event loop."""
    retrieval = setup.retrieval
    if retrieval is None:
        from .resources import open_cache

        cache = await asyncio.to_thread(open_cache, setup.cache_dir, suite=spec.suite) if setup.cache_dir else None
        retrieval = Retrieval(cache)
    return await asyncio.to_thread(make_runner, spec, retrieval=retrieval, endpoints=endpoints,
                                   on_progress=heartbeat.beat)


def _resume_state(fs, run_dir: str, spec: RunSpec, shards: tuple[int, ...]) -> ResumeState:
    """What the parts hold: the whole run's (whatever shard wrote them) for a process that runs every
    shard, else its shard's own folder."""
    if len(shards) == spec.sharding.shards:
        return read_state(fs, run_dir, recursive=True)
    if len(shards) != 1:
        raise ValueError("a session runs one shard or every shard")
    return read_state(fs, f"{run_dir}/{shard_name(shards[0])}", recursive=False)


async def run_shards(session: RunSession, stop: asyncio.Event, *,
                     on_case_done: Callable[[dict | None], None] = lambda row: None,
                     on_absent: Callable[[], None] = lambda: None) -> list[ShardResult]:
    """Every shard of the session, concurrently, until done or ``stop``; each row counts against the budget."""
    def done(row: dict | None) -> None:
        session.budget.add(row)
        on_case_done(row)

    session.heartbeat.busy = True
    try:
        return list(await asyncio.gather(*(run_shard(session, i, stop, on_case_done=done, on_absent=on_absent)
                                           for i in session.setup.shards)))
    finally:
        session.heartbeat.busy = False


async def finish_run(session: RunSession) -> str | None:
    """The run's ``_SUCCESS`` once every shard has its own; why it could not be written (None: written,
    or not every shard is done yet), within the final-write budget."""
    spec, budget_s = session.spec, markers.final_write_budget()
    written = await markers.maybe_write_run_success(
        session.fs, session.run_dir, spec.sharding.shards, run=spec.name, namespace=spec.namespace, uid=session.uid,
        total_cases=spec.total_cases, deadline=time.monotonic() + budget_s)
    if written is None or written:
        return None
    log.error("run _SUCCESS could not be written; rows are safe, a rerun writes it", extra={"error": written.error})
    return f"within {budget_s:g}s ({written.error})"


async def conclude(session: RunSession, results: list[ShardResult], interrupted: str | None) -> tuple[int, list[str]]:
    """The run's marker (when every shard is complete) and the exit code with the lines that say why."""
    marker_error = await finish_run(session) if all(r.complete for r in results) and not interrupted else None
    unavailable = session.endpoints.unavailable()
    return outcome(results, interrupted=interrupted, auth_refused=bool(auth_refused(session)),
                   unavailable=unavailable, run_marker_error=marker_error)


def auth_refused(session: RunSession) -> dict[str, str]:
    """Endpoints that refused the API key: name -> why."""
    return {n: why for n, (st, why) in session.endpoints.unavailable().items() if st == "auth_refused"}
