"""Runs the cases of one shard: bounded concurrency, per-case timeout, heartbeat, rows to the sink.

Workers pull cases from one iterator, so at most ``concurrency`` cases are in flight and memory
does not grow with the number of cases. A case that fails in any way becomes a row (``timeout``
or ``error`` with the reason); the shard goes on. When ``stop`` is set (SIGTERM, Ctrl-C), workers
take no new case, cases in flight are cancelled (they run again on the next attempt: no row, so
nothing is counted twice), and what is buffered is flushed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Callable, Iterable

from .health import Heartbeat
from .metrics import RunnerMetrics
from .sink import ShardSink
from .spec import Case, RunSpec
from .suites.workflow.case import CaseProgress, CaseRunner

log = logging.getLogger("benchpilot.scheduler")


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


class ShardScheduler:
    def __init__(self, spec: RunSpec, shard: int, runner: CaseRunner, sink: ShardSink, *,
                 concurrency: int, metrics: RunnerMetrics, heartbeat: Heartbeat,
                 on_case_done: Callable[[dict], None] | None = None):
        self.spec, self.shard, self.runner, self.sink = spec, shard, runner, sink
        self.concurrency = concurrency
        self.metrics, self.heartbeat = metrics, heartbeat
        self.on_case_done = on_case_done or (lambda row: None)
        self.counts: dict[str, int] = {}

    async def _one(self, case: Case) -> None:
        spec = self.spec
        progress = CaseProgress()
        started = time.time()
        t0 = time.monotonic()
        m = self.metrics
        m.inflight.labels(spec.name).inc()
        try:
            try:
                async with asyncio.timeout(spec.limits.case_timeout_s):
                    fields = await self.runner.run(case, progress)
            except TimeoutError:
                fields = {"status": "timeout", "score": 0.0, "error_type": "case_timeout",
                          "error_message": f"case did not finish within {spec.limits.case_timeout_s:g}s "
                                           f"(after {progress.turns} turns)"}
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken case must not end the shard; recorded
                log.exception("case crashed", extra={"case_id": case.case_id, "model": case.model})
                fields = {"status": "error", "score": 0.0, "error_type": type(exc).__name__,
                          "error_message": str(exc)[:500]}
        finally:
            m.inflight.labels(spec.name).dec()
        elapsed = time.monotonic() - t0
        row = {
            "run": spec.name, "namespace": spec.namespace, "case_id": case.case_id, "suite": spec.suite,
            "model": case.model, "prompt_type": case.prompt_type, "difficulty": case.difficulty,
            "task_type": case.task_type, "instance": case.instance, "shard": self.shard,
            "latency_s": round(elapsed, 4), "turns": progress.turns, "tool_calls": progress.tool_calls,
            "prompt_tokens": progress.prompt_tokens, "completion_tokens": progress.completion_tokens,
            "started_at": _utc(started), "finished_at": _utc(time.time()), **fields,
        }
        self.sink.add(row)
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        m.cases.labels(spec.name, case.model, case.prompt_type, row["status"]).inc()
        m.case_seconds.labels(spec.name, case.model).observe(elapsed)
        self.heartbeat.beat()
        if row["status"] in ("error", "timeout"):
            log.warning("case failed", extra={k: row[k] for k in (
                "case_id", "model", "prompt_type", "task_type", "status", "error_type", "error_message")})
        self.on_case_done(row)

    async def run(self, cases: Iterable[Case], stop: asyncio.Event) -> int:
        """Run ``cases``; returns how many finished. Stops early when ``stop`` is set."""
        it = iter(cases)
        finished = 0

        async def worker() -> None:
            nonlocal finished
            for case in it:
                if stop.is_set():
                    return
                await self._one(case)
                finished += 1

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        stopper = asyncio.create_task(stop.wait())
        try:
            pending = set(workers)
            while pending:
                done, pending = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                    break
                pending.discard(stopper)
                for w in done:
                    if w is not stopper and w.exception() is not None:
                        raise w.exception()
        finally:
            stopper.cancel()
            for w in workers:
                w.cancel()
        return finished
