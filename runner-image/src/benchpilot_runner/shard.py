"""One shard of a run: skip the cases that already have a final row, run the rest lazily (a shard's cases
are computed from their positions, never expanded), flush, and write the shard's ``_SUCCESS`` only when
every case of the shard has a final outcome. Anything less — infrastructure errors, cases left unrun,
rows not written — is said in the :class:`ShardResult` and becomes the exit code (:mod:`.outcome`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from .contract.cases import Case, iter_shard_cases, shard_sizes
from .contract.outcomes import RETRY_STATUSES
from .contract.sizing import memory_request_mib
from .results.markers import final_write_budget
from .results.sink import ShardSink
from .scheduler import Hooks, ShardScheduler
from .signals import FINAL_FLUSH_S

log = logging.getLogger("benchpilot.shard")


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
        return sum(self.counts.get(s, 0) for s in RETRY_STATUSES)


class _Progress:
    """The shard's ``benchpilot_shard_cases`` (what the operator scrapes) and the session's callbacks."""

    def __init__(self, session, size: int, concurrency: int, on_case_done: Callable, on_absent: Callable):
        self.m, self.run = session.metrics, session.spec.name
        self.on_case_done, self.on_absent = on_case_done, on_absent
        spec = session.spec
        request = session.memory_request_bytes or memory_request_mib(
            spec.resources.shared_mib, spec.resources.per_worker_mib, concurrency) * 2**20
        self.m.memory_request.labels(self.run).inc(request)  # per shard: a local run sums its shards
        self.m.cases_planned.labels(self.run, "total").inc(size)
        for state in ("done", "failed"):
            self.m.cases_planned.labels(self.run, state).inc(0)

    def already_done(self) -> None:
        self.m.cases_planned.labels(self.run, "done").inc()
        self.on_case_done(None)

    def case_done(self, row: dict) -> None:
        self.m.cases_planned.labels(self.run, "failed" if row["status"] in RETRY_STATUSES else "done").inc()
        self.on_case_done(row)

    def absent(self) -> None:  # a position the dataset has no case for: not a case of this shard
        self.m.cases_planned.labels(self.run, "total").dec()
        self.on_absent()


async def run_shard(session, shard: int, stop: asyncio.Event, *, on_case_done: Callable[[dict | None], None],
                    on_absent: Callable[[], None]) -> ShardResult:
    """Run ``shard`` of ``session``'s run until its cases are done or ``stop`` is set."""
    spec, state = session.spec, session.state
    size = shard_sizes(spec.total_cases, spec.sharding.shards)[shard]
    concurrency = spec.sharding.concurrency_per_shard
    budget_s = final_write_budget()  # a bad value is said before any case runs
    sink = ShardSink(session.fs, session.run_dir, shard, flush_rows=spec.output.flush_every_rows,
                     flush_s=spec.output.flush_every_s, writer=session.writer, attempt=state.max_attempt + 1,
                     on_flushed=lambda n: (session.metrics.rows_flushed.labels(spec.name).inc(n),
                                           session.heartbeat.beat()))
    session.sinks.append(sink)  # so a stop watchdog can say how many rows were left unwritten
    progress = _Progress(session, size, concurrency, on_case_done, on_absent)
    sched = ShardScheduler(session, shard, sink, concurrency=min(concurrency, max(1, size)),
                           hooks=Hooks(next_attempt=state.next_attempt, gate=session.budget.exhausted,
                                       on_case_done=progress.case_done, on_absent=progress.absent))
    log.info("shard start", extra={"run": spec.name, "shard": shard, "shards": spec.sharding.shards, "cases": size,
                                   "attempt": sink.attempt, "writer": session.writer, "dir": session.run_dir})
    already = [0]
    ran, flushed, deadline = await _run_and_flush(sched, sink, _todo(session, shard, already, progress), stop,
                                                  budget_s)
    result = ShardResult(shard, size, already[0], ran, False, dict(sched.counts), dict(sched.skipped),
                         len(sink.buffer), sink.stats.write_failures, sched.stopped_by,
                         final=already[0] + len(sink.final), absent=sched.absent)
    if (flushed and sched.dispatched_all and not stop.is_set() and not sched.skipped
            and result.final + sched.absent >= size):
        await _commit(sink, sched, result, deadline, budget_s)
    log.info("shard finish", extra={"run": spec.name, "shard": shard, "complete": result.complete, "ran": ran,
                                    "already_done": already[0], "counts": sched.counts, "skipped": sched.skipped,
                                    "parts_written": len(sink.stats.parts), "unwritten_rows": len(sink.buffer)})
    return result


def _todo(session, shard: int, already: list[int], progress: _Progress) -> Iterator[Case]:
    """The shard's cases without a final row yet (the others are counted as already done)."""
    for case in iter_shard_cases(session.spec.matrix, shard, session.spec.sharding.shards):
        if case.case_id in session.state.done:
            already[0] += 1
            progress.already_done()
            continue
        yield case


async def _run_and_flush(sched: ShardScheduler, sink: ShardSink, cases: Iterator[Case], stop: asyncio.Event,
                         budget_s: float) -> tuple[int, bool, float]:
    """Run the cases with a background flusher, then flush what is left: (rows, all flushed, deadline)."""
    flusher_stop = asyncio.Event()
    flusher = asyncio.create_task(sink.run_flusher(flusher_stop))
    try:
        ran = await sched.run(cases, stop)
    finally:
        flusher_stop.set()
        await flusher
        # the last part and the marker share one budget (a SIGTERM leaves less: the pod is going)
        deadline = sink.clock() + (FINAL_FLUSH_S if stop.is_set() else budget_s)
        flushed = await sink.flush(deadline=deadline)
    return ran, flushed, deadline


async def _commit(sink: ShardSink, sched: ShardScheduler, result: ShardResult, deadline: float,
                  budget_s: float) -> None:
    """Every case has a final row: the shard's ``_SUCCESS``, within what is left of the final-write budget."""
    counts = dict(sched.counts, **({"not_in_dataset": sched.absent} if sched.absent else {}))
    written = await sink.write_success(result.total - sched.absent, counts, deadline=deadline)
    result.success_written = result.complete = bool(written)
    if not written:
        result.marker_error = f"within {budget_s:g}s ({written.error})"
        log.error("shard _SUCCESS could not be written; rows are safe, a rerun writes it",
                  extra={"shard": result.shard, "error": result.marker_error})
