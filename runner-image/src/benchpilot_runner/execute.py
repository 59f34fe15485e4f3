"""Running shards: shared by the local sweep (every shard in one process) and the pod (one shard).

For each shard: skip the cases that already have a final row, run the rest lazily (a shard's cases
are computed from their positions, never expanded), flush, and write the shard's ``_SUCCESS`` only
when every case of the shard has a final outcome; the run's ``_SUCCESS`` follows when all shards
have theirs. Anything less — infrastructure errors, cases left unrun, rows not written — is said in
the :class:`ShardResult` and becomes the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import fsspec

from . import markers
from . import sink as sinkmod
from .bounded import call_within
from .health import Heartbeat
from .metrics import RunnerMetrics
from .scheduler import ShardScheduler
from .cases import CaseRunner
from .spec import (CONFIG_ERROR_EXIT, INCOMPLETE_EXIT, RunSpec, SpecError, check_number, find_suite, iter_shard_cases,
                   memory_request_mib, shard_sizes)

log = logging.getLogger("benchpilot.execute")
STOP_GRACE_S = 9.0  # SIGTERM to exit, whatever storage does (a pod's grace period is 15 s)
FINAL_FLUSH_S = 6.0  # of which the final flush may take this long
LEASE_RELEASE_S = 5.0  # removing the lease at the end; a lease left behind expires by itself
FINAL_WRITE_ENV = "BENCHPILOT_FINAL_WRITE_SECONDS"  # the budget of a shard's final writes (markers.FINAL_WRITE_S)


def final_write_budget(env=None) -> float:
    """Seconds a shard's final writes (its last part and its ``_SUCCESS``; the run's ``_SUCCESS``) may take,
    the storage client's own retries included: ``BENCHPILOT_FINAL_WRITE_SECONDS``, else 30."""
    raw = (os.environ if env is None else env).get(FINAL_WRITE_ENV)
    if raw in (None, ""):
        return markers.FINAL_WRITE_S
    try:
        value = float(raw)
    except ValueError:
        raise SpecError(f"env {FINAL_WRITE_ENV}", f"{raw[:40]!r} is not a number of seconds") from None
    return check_number(value, f"env {FINAL_WRITE_ENV}", minimum=0.0, maximum=3600.0, exclusive_min=True)


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


@dataclass
class ShardResult:
    shard: int
    total: int
    already_done: int
    ran: int
    complete: bool  # every case has a final row, all flushed, _SUCCESS written
    counts: dict = field(default_factory=dict)  # statuses of the rows written now
    skipped: dict = field(default_factory=dict)  # reason -> cases left unrun
    unflushed: int = 0
    write_failures: int = 0
    stopped_by: str | None = None  # the gate's reason (budget), if it ended the shard early
    success_written: bool = False
    final: int = 0  # cases of the shard with a final outcome, before and now
    absent: int = 0  # positions of the shard the suite's dataset has no case for
    marker_error: str | None = None  # every row written, but the shard's _SUCCESS was not: why

    @property
    def retryable(self) -> int:
        return self.counts.get("error", 0) + self.counts.get("timeout", 0)


def marker_line(results: list[ShardResult], run_marker_error: str | None) -> str | None:
    """One line for markers not written although every row was: the rows are safe, a rerun writes them."""
    failed = [r for r in results if r.marker_error]
    if not failed and not run_marker_error:
        return None
    what = (f"the _SUCCESS marker of shard{'s' if len(failed) > 1 else ''} {', '.join(str(r.shard) for r in failed)}"
            if failed else "the run's _SUCCESS marker")
    why = failed[-1].marker_error if failed else run_marker_error
    return (f"every result row is written, but {what} could not be written {why}; the rows are safe: "
            "run the same command again to write it")


def outcome(results: list[ShardResult], *, interrupted: str | None, auth_refused: bool,
            unavailable: dict[str, tuple[str, str]] | None = None,
            run_marker_error: str | None = None) -> tuple[int, list[str]]:
    """The exit code of a run or shard and the lines that say why (README: exit codes).

    ``unavailable``: endpoints taken out of the run (name -> (state, reason)), said even when every
    one of their cases had started before (so none was left unrun). ``run_marker_error``: why the
    run's ``_SUCCESS`` was not written (see :func:`finish_run`)."""
    lines = [why for _, (_, why) in sorted((unavailable or {}).items())]
    unflushed = sum(r.unflushed for r in results)
    retryable = sum(r.retryable for r in results)
    skipped: dict[str, int] = {}
    for r in results:
        for why, n in r.skipped.items():
            skipped[why] = skipped.get(why, 0) + n
    for why, n in skipped.items():
        lines.append(f"{n} cases not run ({why.split(':', 1)[0]})" if why in lines else f"{n} cases not run: {why}")
    if retryable:
        errs = sum(r.counts.get("error", 0) for r in results)
        lines.append(f"{retryable} cases ended without a final outcome ({errs} error, {retryable - errs} timeout); "
                     "run the same command again to retry only those")
    if unflushed:
        lines.append(f"{unflushed} result rows could not be written; those cases will run again")
    if interrupted:
        return (130 if interrupted == "SIGINT" else 143), lines
    if unflushed:
        return 1, lines
    if (markers_missing := marker_line(results, run_marker_error)) is not None:
        return 1, [*lines, markers_missing]
    if auth_refused:
        return CONFIG_ERROR_EXIT, lines
    budget = next((r.stopped_by for r in results if r.stopped_by), None)
    if budget and not retryable and not skipped:
        lines.append(f"stopped: {budget}; raise the budget and run again to run only the missing cases")
        return 0, lines
    if not all(r.complete for r in results):
        if not lines:
            lines.append("some cases have no final result yet; run the same command again to finish")
        return INCOMPLETE_EXIT, lines
    return 0, lines


async def run_shard(spec: RunSpec, shard: int, shards: int, *, fs: fsspec.AbstractFileSystem, run_dir: str,
                    runner: CaseRunner, metrics: RunnerMetrics, heartbeat: Heartbeat, stop: asyncio.Event,
                    concurrency: int, state: sinkmod.ResumeState, writer: str,
                    gate: Callable[[], str | None] | None = None,
                    on_case_done: Callable[[dict | None], None] | None = None,
                    on_absent: Callable[[], None] | None = None,
                    sinks: list | None = None) -> ShardResult:
    size = shard_sizes(spec.total_cases, shards)[shard]
    budget_s = final_write_budget()  # a bad value is said before any case runs
    sink = sinkmod.ShardSink(fs, run_dir, shard, flush_rows=spec.output.flush_every_rows,
                             flush_s=spec.output.flush_every_s, writer=writer, attempt=state.max_attempt + 1,
                             on_flushed=lambda n: (metrics.rows_flushed.labels(spec.name).inc(n), heartbeat.beat()))
    if sinks is not None:
        sinks.append(sink)  # so a stop watchdog can say how many rows were left unwritten
    already = 0

    def todo():
        nonlocal already
        for case in iter_shard_cases(spec.matrix, shard, shards):
            if case.case_id in state.done:
                already += 1
                metrics.cases_planned.labels(spec.name, "done").inc()
                if on_case_done:
                    on_case_done(None)
                continue
            yield case

    request_env = os.environ.get("BENCHPILOT_MEMORY_REQUEST_BYTES")
    request = int(request_env) if request_env and request_env.isdigit() else memory_request_mib(
        spec.resources.shared_mib, spec.resources.per_worker_mib, concurrency) * 2**20
    metrics.memory_request.labels(spec.name).inc(request)  # per shard: a local run sums its shards
    # per-process progress, scraped by the operator (sums over the shards of a local run)
    metrics.cases_planned.labels(spec.name, "total").inc(size)
    metrics.cases_planned.labels(spec.name, "done").inc(0)
    metrics.cases_planned.labels(spec.name, "failed").inc(0)

    def done_one(row: dict) -> None:
        if row["status"] in ("error", "timeout"):
            metrics.cases_planned.labels(spec.name, "failed").inc()
        else:
            metrics.cases_planned.labels(spec.name, "done").inc()
        if on_case_done:
            on_case_done(row)

    def absent_one() -> None:  # a position the dataset has no case for: not a case of this shard
        metrics.cases_planned.labels(spec.name, "total").dec()
        if on_absent:
            on_absent()

    log.info("shard start", extra={"run": spec.name, "shard": shard, "shards": shards, "cases": size,
                                   "attempt": sink.attempt, "writer": writer, "dir": run_dir})
    sched = ShardScheduler(spec, shard, runner, sink, concurrency=min(concurrency, max(1, size)), metrics=metrics,
                           heartbeat=heartbeat, next_attempt=state.next_attempt, gate=gate,
                           on_case_done=done_one, on_absent=absent_one)
    flusher_stop = asyncio.Event()
    flusher = asyncio.create_task(sink.run_flusher(flusher_stop))
    try:
        ran = await sched.run(todo(), stop)
    finally:
        flusher_stop.set()
        await flusher
        # the last part and the marker share one budget (a SIGTERM leaves less: the pod is going)
        deadline = sink.clock() + (FINAL_FLUSH_S if stop.is_set() else budget_s)
        flushed = await sink.flush(deadline=deadline)
    complete = (flushed and sched.dispatched_all and not stop.is_set()
                and already + len(sink.final) + sched.absent >= size and not sched.skipped)
    result = ShardResult(shard, size, already, ran, complete, dict(sched.counts), dict(sched.skipped),
                         len(sink.buffer), sink.stats.write_failures, sched.stopped_by,
                         final=already + len(sink.final), absent=sched.absent)
    if complete:
        counts = dict(sched.counts, **({"not_in_dataset": sched.absent} if sched.absent else {}))
        written = await sink.write_success(size - sched.absent, counts, deadline=deadline)
        result.success_written = result.complete = bool(written)
        if not written:
            result.marker_error = f"within {budget_s:g}s ({written.error})"
            log.error("shard _SUCCESS could not be written; rows are safe, a rerun writes it",
                      extra={"shard": shard, "error": result.marker_error})
    log.info("shard finish", extra={"run": spec.name, "shard": shard, "complete": result.complete, "ran": ran,
                                    "already_done": already, "counts": sched.counts, "skipped": sched.skipped,
                                    "parts_written": len(sink.stats.parts), "unwritten_rows": len(sink.buffer)})
    return result


async def finish_run(spec: RunSpec, fs: fsspec.AbstractFileSystem, run_dir: str, uid: str) -> str | None:
    """The run's ``_SUCCESS`` once every shard has its own; why it could not be written (None: written,
    or not every shard is done yet), within the final-write budget."""
    budget_s = final_write_budget()
    written = await markers.maybe_write_run_success(
        fs, run_dir, spec.sharding.shards, run=spec.name, namespace=spec.namespace, uid=uid,
        total_cases=spec.total_cases, deadline=time.monotonic() + budget_s)
    if written is None or written:
        return None
    log.error("run _SUCCESS could not be written; rows are safe, a rerun writes it", extra={"error": written.error})
    return f"within {budget_s:g}s ({written.error})"


async def acquire_lease(fs: fsspec.AbstractFileSystem, run_dir: str, shards: list[int], writer: str, *,
                        wait_s: float) -> sinkmod.Lease:
    """Claim ``shards`` of the run for this writer. Another live writer on them is waited for up to
    ``wait_s`` (a pod whose predecessor's lease has not expired yet), then refused with
    :class:`sink.WriterConflict`. Part names are unique per writer, so even a missed conflict loses no row."""
    lease = sinkmod.Lease(fs, run_dir, writer, shards)
    await asyncio.to_thread(lease.write)
    loop = asyncio.get_running_loop()
    until = loop.time() + wait_s
    while True:
        other = await asyncio.to_thread(lease.conflict)
        if other is None:
            return lease
        if loop.time() >= until:
            await asyncio.to_thread(lease.release)
            raise sinkmod.WriterConflict(f"another {sinkmod.describe(other)} is writing the same shards of this "
                                         f"run; stop it first, or wait {sinkmod.LEASE_TTL_S:g}s after it died")
        log.warning("another writer holds this shard; waiting for its lease to expire",
                    extra={"other": sinkmod.describe(other)})
        await asyncio.sleep(min(2.0, max(0.1, until - loop.time())))


@contextlib.asynccontextmanager
async def holding(lease: sinkmod.Lease):
    """Keep ``lease`` renewed while the block runs; release it at the end."""
    stop = asyncio.Event()
    renewer = asyncio.create_task(renew_lease(lease, stop))
    try:
        yield lease
    finally:
        stop.set()
        await renewer
        try:  # a final write too: never held up by a store that does not answer
            await call_within(LEASE_RELEASE_S, lease.release)
        except TimeoutError:
            log.warning("lease not removed in time; it expires by itself", extra={"writer": lease.writer})


class StopSignals:
    """SIGINT/SIGTERM while the block runs: set ``stop`` (no new case starts, what is done is flushed) and
    arm the watchdog that ends the process within STOP_GRACE_S whatever storage does. With
    ``second_sigint_exits``, a second Ctrl-C exits at once (the user means it)."""

    def __init__(self, sinks: list, *, second_sigint_exits: bool, context: dict | None = None):
        self.stop = asyncio.Event()
        self.signal: str | None = None
        self.sinks, self.second_sigint_exits, self.context = sinks, second_sigint_exits, context or {}

    def _on(self, name: str) -> None:
        if self.signal is not None:
            if self.second_sigint_exits and name == "SIGINT":
                os._exit(130)
            return
        self.signal = name
        log.warning("stopping: no new cases, flushing what is done", extra={"signal": name, **self.context})
        arm_stop_watchdog(lambda: sum(len(s.buffer) for s in self.sinks), 130 if name == "SIGINT" else 143)
        self.stop.set()

    def __enter__(self) -> "StopSignals":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on, sig.name)
        return self

    def __exit__(self, *exc) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def renew_lease(lease: sinkmod.Lease, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=sinkmod.LEASE_RENEW_S)
            return
        except TimeoutError:
            pass
        try:
            await call_within(sinkmod.LEASE_RENEW_S, lease.write)
        except Exception as exc:  # noqa: BLE001 - storage trouble shows in the part writes too
            log.warning("lease renewal failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})


def arm_stop_watchdog(unflushed: Callable[[], int], code: int) -> threading.Timer:
    """After SIGTERM/SIGINT: exit within STOP_GRACE_S whatever storage does (a hung PUT cannot hold us)."""
    def fire() -> None:
        n = unflushed()
        print(f"benchpilot: storage did not answer within {STOP_GRACE_S:g}s of the stop signal; exiting with "
              f"{n} result rows not written (those cases will run again)", file=sys.stderr, flush=True)
        os._exit(code)
    timer = threading.Timer(STOP_GRACE_S, fire)
    timer.daemon = True
    timer.start()
    return timer
