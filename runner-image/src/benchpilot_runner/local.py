"""``benchpilot run``: every shard of a manifest on this machine, concurrently, with a progress bar.

Exit codes (README): 0 every case has a final outcome (or the budget stopped the run cleanly);
1 result rows could not be written; 2 configuration error (also: the endpoint refused the key,
another writer holds the run); 3 cases left without a final outcome (infrastructure errors,
timeouts, an endpoint that is down) — the same command again retries only those; 130/143 stopped
by SIGINT/SIGTERM after flushing what was done.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from . import report as reportmod
from . import sink as sinkmod
from .budget import BudgetTracker
from .execute import StopSignals, acquire_lease, finish_run, holding, local_uid, outcome, run_shard
from .health import Heartbeat, serve
from .metrics import RunnerMetrics
from .models import build_clients
from .spec import CONFIG_ERROR_EXIT, RunSpec
from .cases import make_runner
from .suites.base import Retrieval

log = logging.getLogger("benchpilot.local")


class Progress:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise (CI logs)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.counts: dict[str, int] = {}
        self._bar = None
        self._last_line = 0.0
        self._start = time.monotonic()
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, \
                TimeElapsedColumn, TimeRemainingColumn
            self._bar = Bar(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task("sweep", total=total, stats="")
            self._bar.start()

    def advance(self, n: int = 1, status: str | None = None) -> None:
        self.done += n
        if status:
            self.counts[status] = self.counts.get(status, 0) + 1
        stats = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, stats=stats)
        elif self.enabled and (time.monotonic() - self._last_line > 5 or self.done == self.total):
            self._last_line = time.monotonic()
            print(f"progress {self.done}/{self.total} ({self.done / max(1, self.total):.0%}) {stats} "
                  f"elapsed {time.monotonic() - self._start:.0f}s", file=sys.stderr, flush=True)

    def shrink(self) -> None:
        """One position of the matrix is not a case (the dataset has none there)."""
        self.total -= 1
        if self._bar is not None:
            self._bar.update(self._task, total=self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


async def run_local(spec: RunSpec, *, metrics_port: int | None = None, show_progress: bool = True,
                    retrieval: Retrieval = Retrieval(), transport=None) -> int:
    """Raises ``SuiteError`` (a dataset that cannot be used) before anything is written."""
    fs, root = sinkmod.open_uri(spec.output.uri)
    uid = spec.uid or local_uid(spec, retrieval.kind)
    run_dir = sinkmod.run_path(root, spec.namespace, spec.name, uid)
    await asyncio.to_thread(sinkmod.check_writable, fs, run_dir)

    metrics = RunnerMetrics()
    heartbeat = Heartbeat(spec.limits.hang_timeout_s,
                          on_beat=lambda ts: metrics.last_progress.labels(spec.name).set(ts))
    runner = await asyncio.to_thread(make_runner, spec, retrieval=retrieval, on_progress=heartbeat.beat)
    endpoints = build_clients(spec, metrics, heartbeat, transport=transport)
    runner.endpoints = endpoints
    writer = sinkmod.new_writer_id()
    shards = spec.sharding.shards
    try:
        lease = await acquire_lease(fs, run_dir, list(range(shards)), writer, wait_s=0.0)
    except sinkmod.WriterConflict as exc:
        await endpoints.close()
        print(f"benchpilot: error: {exc}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    server = None
    try:
        async with holding(lease):
            server = await serve(heartbeat, metrics.registry, "127.0.0.1", metrics_port) if metrics_port else None
            return await _sweep(spec, fs, run_dir, uid, metrics, heartbeat, endpoints, lease, runner, show_progress)
    finally:
        await endpoints.close()
        if server:
            await server.cleanup()


async def _sweep(spec, fs, run_dir, uid, metrics, heartbeat, endpoints, lease, runner, show_progress) -> int:
    state = await asyncio.to_thread(sinkmod.read_state, fs, run_dir, recursive=True)  # each part read once
    budget = BudgetTracker(spec.budget, spent_usd=state.spent_usd, spent_tokens=state.spent_tokens)
    total = spec.total_cases
    progress = Progress(total, enabled=show_progress)
    sinks: list = []

    def on_case_done(row: dict | None) -> None:
        budget.add(row)
        progress.advance(1, row["status"] if row else None)

    fs_uri = fs.unstrip_protocol(run_dir)
    log.info("sweep start", extra={"run": spec.name, "cases": total, "with_final_result": len(state.done),
                                   "retrieval": runner.retrieval.kind, "shards": spec.sharding.shards,
                                   "output": fs_uri, "writer": lease.writer})
    heartbeat.busy = True
    try:
        with StopSignals(sinks, second_sigint_exits=True) as signals:
            results = await asyncio.gather(*(
                run_shard(spec, i, spec.sharding.shards, fs=fs, run_dir=run_dir, runner=runner, metrics=metrics,
                          heartbeat=heartbeat, stop=signals.stop, concurrency=spec.sharding.concurrency_per_shard,
                          state=state, writer=lease.writer, gate=budget.exhausted, on_case_done=on_case_done,
                          on_absent=progress.shrink, sinks=sinks)
                for i in range(spec.sharding.shards)))
    finally:
        heartbeat.busy = False
        progress.close()
    interrupted = signals.signal  # SIGINT, SIGTERM or None
    run_marker_error = None
    if all(r.complete for r in results) and not interrupted:
        run_marker_error = await finish_run(spec, fs, run_dir, uid)
    ran = sum(r.ran for r in results)
    already = sum(r.already_done for r in results)
    summary = reportmod.summarize(await asyncio.to_thread(reportmod.load, fs_uri))
    if show_progress:
        reportmod.render_table(summary)
    auth = {n: why for n, (st, why) in endpoints.unavailable().items() if st == "auth_refused"}
    code, lines = outcome(results, interrupted=interrupted, auth_refused=bool(auth),
                          unavailable=endpoints.unavailable(), run_marker_error=run_marker_error)
    print(f"{ran} cases run now, {already} were already done; results: {fs_uri}", file=sys.stderr)
    if spec.budget.max_cost_usd is not None or spec.budget.max_tokens is not None or budget.spent_usd:
        print(f"spent so far: ${budget.spent_usd:.4f}, {budget.spent_tokens} tokens", file=sys.stderr)
    absent = sum(r.absent for r in results)
    if absent:
        print(f"{absent} positions of the matrix have no case in the suite's dataset (fewer questions in a cell "
              f"than matrix.instances); they are not cases", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    if interrupted:
        print(f"interrupted ({interrupted}): {summary['total']}/{progress.total} cases have results; "
              "run the same command again to resume", file=sys.stderr)
    return code
