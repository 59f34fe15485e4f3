"""Runs the cases of one shard: bounded concurrency, per-case timeout, heartbeat, rows to the sink.

A dispatcher pulls cases lazily from an iterator and starts one task per case while fewer than
``concurrency`` are in flight: memory does not grow with the number of cases, and no more tasks
exist than cases. A case that fails in any way becomes a row (``timeout`` or ``error`` with the
reason, and its attempt number); the shard goes on. A case whose endpoint was taken out of the run
(the key refused, the endpoint down) gets no row: it is left to a later run. When ``stop`` is set
(SIGTERM, Ctrl-C), no new case starts, cases in flight are cancelled (they run again next time:
no row, so nothing is counted twice), and what is buffered is flushed by the caller.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .answers.transcript import CURRENT as TRANSCRIPT, Transcript
from .cases import CaseProgress, CaseRunner
from .contract.cases import Case
from .contract.outcomes import RETRY_STATUSES
from .contract.types import RunSpec
from .health import Heartbeat
from .llm.base import CASE_DEADLINE, LIMITER_WAIT, EndpointUnavailable, QueueWait
from .metrics import RunnerMetrics
from .redact import scrub
from .results.rows import make_row
from .results.sink import ShardSink

log = logging.getLogger("benchpilot.scheduler")
YIELD_EVERY = 512  # the dispatcher gives the event loop a turn at least this often while skipping done cases


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def timeout_fields(timeout_s: float, turns: int, queue: QueueWait, now: float) -> dict:
    """The row of a case whose deadline passed: ``limiter_timeout`` when it passed while the case waited
    in benchpilot's own rate limiter (our queue, not the provider's slowness), else ``case_timeout``."""
    if queue.since is not None:
        state = queue.limiter.describe() if hasattr(queue.limiter, "describe") else "an endpoint"
        return {"status": "timeout", "score": 0.0, "error_type": "limiter_timeout",
                "error_message": f"case did not finish within {timeout_s:g}s: its deadline passed while it waited "
                                 f"in benchpilot's own rate limiter for {now - queue.since:.1f}s "
                                 f"({queue.waited_s + now - queue.since:.1f}s in all, after {turns} turns), "
                                 f"not for the provider; {state}"}
    return {"status": "timeout", "score": 0.0, "error_type": "case_timeout",
            "error_message": f"case did not finish within {timeout_s:g}s (after {turns} turns)"}


def scoring_version(suite: str) -> str:
    """The version of the suite's scoring code, written into every row (the report names older ones)."""
    from .contract.registry import find_suite

    found = find_suite(suite)
    return str(getattr(found, "scoring_version", None) or found.version)


@dataclass(frozen=True)
class Context:
    """What every shard of a process shares (a :class:`session.RunSession` is one)."""

    spec: RunSpec
    runner: CaseRunner
    metrics: RunnerMetrics
    heartbeat: Heartbeat


@dataclass
class Hooks:
    """How a shard's scheduler talks to the rest of the run."""

    next_attempt: Callable[[str], int] = lambda case_id: 1  # results.resume.ResumeState.next_attempt
    gate: Callable[[], str | None] = lambda: None  # a reason to start no new case (e.g. the budget is spent)
    on_case_done: Callable[[dict], None] = lambda row: None
    on_absent: Callable[[], None] = lambda: None


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=dict)  # status -> rows written now
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> cases left unrun
    absent: int = 0  # matrix positions the suite's dataset has no case for (no row; nothing to run)


class ShardScheduler:
    def __init__(self, ctx, shard: int, sink: ShardSink, *, concurrency: int, hooks: Hooks | None = None):
        self.ctx, self.spec, self.runner = ctx, ctx.spec, ctx.runner
        self.shard, self.sink, self.concurrency = shard, sink, concurrency
        self.hooks = hooks or Hooks()
        self.tally = Tally()
        self.stopped_by: str | None = None  # the gate's reason, when it stopped the shard
        self.dispatched_all = False
        self.scoring_version = scoring_version(self.spec.suite)

    @property
    def counts(self) -> dict[str, int]:
        return self.tally.counts

    @property
    def skipped(self) -> dict[str, int]:
        return self.tally.skipped

    @property
    def absent(self) -> int:
        return self.tally.absent

    async def _fields(self, case: Case, progress: CaseProgress, transcript: Transcript) -> dict:
        """The suite's result fields for ``case``, or the row of a timeout or a crash."""
        spec, m = self.spec, self.ctx.metrics
        m.inflight.labels(spec.name).inc()
        CASE_DEADLINE.set(time.monotonic() + spec.limits.case_timeout_s)
        TRANSCRIPT.set(transcript)
        queue = QueueWait()
        LIMITER_WAIT.set(queue)
        try:
            async with asyncio.timeout(spec.limits.case_timeout_s):
                return await self.runner.run(case, progress)
        except TimeoutError:
            return timeout_fields(spec.limits.case_timeout_s, progress.turns, queue, time.monotonic())
        except (asyncio.CancelledError, EndpointUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - one broken case must not end the shard; recorded
            log.exception("case crashed", extra={"case_id": case.case_id, "model": case.model})
            return {"status": "error", "score": 0.0, "error_type": "internal_error",
                    "error_message": scrub(f"{type(exc).__name__}: {exc}")}
        finally:
            m.inflight.labels(spec.name).dec()

    async def _one(self, case: Case) -> None:
        spec = self.spec
        progress, transcript = CaseProgress(), Transcript(case.instance)
        started, t0 = time.time(), time.monotonic()
        fields = await self._fields(case, progress, transcript)
        elapsed = time.monotonic() - t0
        model = spec.model(case.model)
        cost = model.cost_usd(progress.prompt_tokens, progress.completion_tokens)
        answered = transcript.row_fields()
        if answered["reused"]:
            answered["saved_usd"] = model.cost_usd(*transcript.saved)
        row = make_row(
            run=spec.name, namespace=spec.namespace, case_id=case.case_id, suite=spec.suite, model=case.model,
            prompt_type=case.prompt_type, difficulty=case.difficulty, task_type=case.task_type,
            instance=case.instance, shard=self.shard, attempt=self.hooks.next_attempt(case.case_id),
            latency_s=round(elapsed, 4), turns=progress.turns, tool_calls=progress.tool_calls,
            prompt_tokens=progress.prompt_tokens, completion_tokens=progress.completion_tokens, cost_usd=cost,
            started_at=_utc(started), finished_at=_utc(time.time()), scoring_version=self.scoring_version,
            **answered, **fields)
        self.sink.add(row)
        self._record(row, elapsed, cost)
        self.hooks.on_case_done(row)

    def _record(self, row: dict, elapsed: float, cost: float | None) -> None:
        """Counts, metrics, progress and a warning for a case the infrastructure could not finish."""
        spec, m = self.spec, self.ctx.metrics
        self.tally.counts[row["status"]] = self.tally.counts.get(row["status"], 0) + 1
        m.cases.labels(spec.name, row["model"], row["prompt_type"], row["status"]).inc()
        m.case_seconds.labels(spec.name, row["model"]).observe(elapsed)
        if cost:
            m.cost.labels(spec.name, row["model"]).inc(cost)
        if row["reused"]:
            m.reused_answers.labels(spec.name, row["model"]).inc(row["reused"])
            m.saved_tokens.labels(spec.name, row["model"]).inc(row["saved_tokens"] or 0)
            m.saved_usd.labels(spec.name, row["model"]).inc(row["saved_usd"] or 0.0)
        self.ctx.heartbeat.beat()
        if row["status"] in RETRY_STATUSES:
            log.warning("case failed; a rerun retries it", extra={k: row[k] for k in (
                "case_id", "model", "prompt_type", "task_type", "status", "attempt", "error_type",
                "error_message")})

    def _skip(self, reason: str) -> None:
        self.tally.skipped[reason] = self.tally.skipped.get(reason, 0) + 1

    async def _guarded(self, case: Case) -> None:
        try:
            await self._one(case)
        except EndpointUnavailable as exc:
            self._skip(str(exc))

    async def _dispatch(self, cases: Iterable[Case], slots: asyncio.Semaphore, tasks: set) -> None:
        for n, case in enumerate(cases):
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            if not self.runner.exists(case):
                self.tally.absent += 1
                self.hooks.on_absent()
                continue
            if (why := self.runner.available(case)) is not None:
                self._skip(why)
                continue
            await slots.acquire()
            if (why := self.hooks.gate()) is not None:
                slots.release()
                self.stopped_by = why
                return
            if (why := self.runner.available(case)) is not None:  # it may have tripped while we waited
                slots.release()
                self._skip(why)
                continue
            task = asyncio.create_task(self._guarded(case))
            tasks.add(task)

            def done(t: asyncio.Task) -> None:
                tasks.discard(t)
                slots.release()
                if not t.cancelled() and t.exception() is not None:
                    log.error("case task failed", exc_info=t.exception())
            task.add_done_callback(done)
        self.dispatched_all = True

    async def run(self, cases: Iterable[Case], stop: asyncio.Event) -> int:
        """Run ``cases``; returns how many got a row. Stops early when ``stop`` is set."""
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()
        dispatcher = asyncio.create_task(self._dispatch(cases, slots, tasks))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({dispatcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if dispatcher in done:
                dispatcher.result()  # a bug in dispatching is raised, never hidden
                while tasks and not stop.is_set():
                    await asyncio.wait(set(tasks) | {stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            dispatcher.cancel()
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(dispatcher, *tasks, return_exceptions=True)
        return sum(self.counts.values())
