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
from .answers.runs import summary_lines
from .contract.types import RunSpec
from .session import Setup, conclude, open_run, run_shards
from .signals import StopSignals
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
                    retrieval: Retrieval = Retrieval(), transport=None, replay: bool = False) -> int:
    """Every shard of ``spec`` in this process. A configuration problem (a dataset that cannot be used,
    another writer on the run) raises ``ConfigError`` before any case runs."""
    setup = Setup(shards=tuple(range(spec.sharding.shards)), retrieval=retrieval, transport=transport, replay=replay,
                  serve_at=("127.0.0.1", metrics_port) if metrics_port else None)
    async with open_run(spec, setup) as session:
        progress = Progress(spec.total_cases, enabled=show_progress)
        log.info("sweep start", extra={"run": spec.name, "cases": spec.total_cases,
                                       "with_final_result": len(session.state.done),
                                       "retrieval": session.runner.retrieval.kind, "shards": spec.sharding.shards,
                                       "output": session.uri, "writer": session.writer})
        try:
            with StopSignals(session.sinks, second_sigint_exits=True) as signals:
                results = await run_shards(session, signals.stop, on_absent=progress.shrink,
                                           on_case_done=lambda row: progress.advance(1, row["status"] if row else None))
        finally:
            progress.close()
        code, lines = await conclude(session, results, signals.signal)
        summary = reportmod.summarize(await asyncio.to_thread(reportmod.load, session.uri))
        if show_progress:
            reportmod.render_table(summary)
        _say(session, results, lines, summary, progress.total, signals.signal)
        return code


def _say(session, results, lines: list[str], summary: dict, total: int, interrupted: str | None) -> None:
    """What the run did, on stderr: cases run now and before, spend, positions without a case, why."""
    spec, budget = session.spec, session.budget
    ran, already = sum(r.ran for r in results), sum(r.already_done for r in results)
    print(f"{ran} cases run now, {already} were already done; results: {session.uri}", file=sys.stderr)
    if spec.budget.max_cost_usd is not None or spec.budget.max_tokens is not None or budget.spent_usd:
        print(f"spent so far: ${budget.spent_usd:.4f}, {budget.spent_tokens} tokens", file=sys.stderr)
    absent = sum(r.absent for r in results)
    if absent:
        print(f"{absent} positions of the matrix have no case in the suite's dataset (fewer questions in a cell "
              f"than matrix.instances); they are not cases", file=sys.stderr)
    for line in [*summary_lines(session.answers), *lines]:
        print(line, file=sys.stderr)
    if interrupted:
        print(f"interrupted ({interrupted}): {summary['total']}/{total} cases have results; "
              "run the same command again to resume", file=sys.stderr)
