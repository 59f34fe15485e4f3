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
import json
import logging
import time
from typing import Callable, Iterable

from .health import Heartbeat
from .llm.base import CASE_DEADLINE, LIMITER_WAIT, EndpointUnavailable, QueueWait
from .metrics import RunnerMetrics
from .redact import scrub
from .sink import ShardSink
from .spec import Case, RunSpec
from .cases import CaseProgress, CaseRunner

log = logging.getLogger("benchpilot.scheduler")
YIELD_EVERY = 512  # the dispatcher gives the event loop a turn at least this often while skipping done cases
MAX_DETAILS = 16384  # bytes of a suite's details JSON kept in a row


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _details(value) -> str | None:
    """A suite's per-case details as the row's JSON text (bounded; never an invalid document)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_DETAILS:
        text = json.dumps({"truncated": True, "bytes": len(text)})
    return text


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


class ShardScheduler:
    def __init__(self, spec: RunSpec, shard: int, runner: CaseRunner, sink: ShardSink, *,
                 concurrency: int, metrics: RunnerMetrics, heartbeat: Heartbeat,
                 next_attempt: Callable[[str], int] | None = None,
                 gate: Callable[[], str | None] | None = None,
                 on_case_done: Callable[[dict], None] | None = None,
                 on_absent: Callable[[], None] | None = None):
        self.spec, self.shard, self.runner, self.sink = spec, shard, runner, sink
        self.concurrency = concurrency
        self.metrics, self.heartbeat = metrics, heartbeat
        self.next_attempt = next_attempt or (lambda case_id: 1)  # sink.ResumeState.next_attempt
        self.gate = gate or (lambda: None)  # a reason to start no new case (e.g. the budget is spent)
        self.on_case_done = on_case_done or (lambda row: None)
        self.on_absent = on_absent or (lambda: None)
        self.counts: dict[str, int] = {}
        self.skipped: dict[str, int] = {}  # reason -> cases left unrun
        self.absent = 0  # matrix positions the suite's dataset has no case for (no row; nothing to run)
        self.stopped_by: str | None = None  # the gate's reason, when it stopped the shard
        self.dispatched_all = False

    async def _one(self, case: Case) -> None:
        spec = self.spec
        progress = CaseProgress()
        started = time.time()
        t0 = time.monotonic()
        m = self.metrics
        m.inflight.labels(spec.name).inc()
        CASE_DEADLINE.set(t0 + spec.limits.case_timeout_s)
        queue = QueueWait()
        LIMITER_WAIT.set(queue)
        try:
            try:
                async with asyncio.timeout(spec.limits.case_timeout_s):
                    fields = await self.runner.run(case, progress)
            except TimeoutError:
                fields = timeout_fields(spec.limits.case_timeout_s, progress.turns, queue, time.monotonic())
        except (asyncio.CancelledError, EndpointUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - one broken case must not end the shard; recorded
            log.exception("case crashed", extra={"case_id": case.case_id, "model": case.model})
            fields = {"status": "error", "score": 0.0, "error_type": "internal_error",
                      "error_message": scrub(f"{type(exc).__name__}: {exc}")[:500]}
        finally:
            m.inflight.labels(spec.name).dec()
        elapsed = time.monotonic() - t0
        model = spec.model(case.model)
        cost = model.cost_usd(progress.prompt_tokens, progress.completion_tokens)
        row = {
            "run": spec.name, "namespace": spec.namespace, "case_id": case.case_id, "suite": spec.suite,
            "model": case.model, "prompt_type": case.prompt_type, "difficulty": case.difficulty,
            "task_type": case.task_type, "instance": case.instance, "shard": self.shard,
            "attempt": self.next_attempt(case.case_id),
            "latency_s": round(elapsed, 4), "turns": progress.turns, "tool_calls": progress.tool_calls,
            "prompt_tokens": progress.prompt_tokens, "completion_tokens": progress.completion_tokens,
            "cost_usd": cost, "started_at": _utc(started), "finished_at": _utc(time.time()), **fields,
        }
        if row.get("error_message"):
            row["error_message"] = scrub(str(row["error_message"]))[:500]
        row["details"] = _details(row.get("details"))
        self.sink.add(row)
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        m.cases.labels(spec.name, case.model, case.prompt_type, row["status"]).inc()
        m.case_seconds.labels(spec.name, case.model).observe(elapsed)
        if cost:
            m.cost.labels(spec.name, case.model).inc(cost)
        self.heartbeat.beat()
        if row["status"] in ("error", "timeout"):
            log.warning("case failed; a rerun retries it", extra={k: row[k] for k in (
                "case_id", "model", "prompt_type", "task_type", "status", "attempt", "error_type",
                "error_message")})
        self.on_case_done(row)

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

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
                self.absent += 1
                self.on_absent()
                continue
            if (why := self.runner.available(case)) is not None:
                self._skip(why)
                continue
            await slots.acquire()
            if (why := self.gate()) is not None:
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
