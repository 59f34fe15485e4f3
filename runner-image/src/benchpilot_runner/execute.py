"""Running shards: shared by the local sweep (every shard in one process) and the pod (one shard).

For each shard: read what its parts already hold, run the rest, flush, and write the shard's
``_SUCCESS`` once every case has a row; the run's ``_SUCCESS`` follows when all shards have theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

import fsspec

from . import sink as sinkmod
from .health import Heartbeat
from .metrics import RunnerMetrics
from .scheduler import ShardScheduler
from .spec import RunSpec, SUITE_VERSION, memory_request_mib, shard_cases
from .suites.workflow.case import CaseRunner

log = logging.getLogger("benchpilot.execute")
FINAL_FLUSH_S = 8.0  # on SIGTERM the pod has 10 s; flushing may take this long


def local_uid(spec: RunSpec, retrieval: str = "lexical") -> str:
    """A stable run uid for runs without a cluster: the same manifest resumes into the same folder.

    It hashes what changes results but not case ids (suite version, tool success rate, simulated
    model parameters, how tools are retrieved: lexically, or by embeddings from a cache), so
    editing the matrix adds cases to the same run, while changing how cases behave starts a
    fresh one.
    """
    basis = {"suite": SUITE_VERSION, "tsr": spec.matrix.tool_success_rate, "retrieval": retrieval,
             "sim": {k: [v.accuracy, v.latency_s] for k, v in sorted(spec.simulation.items())}}
    return "local-" + hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:10]


def retrieval_kind(retriever) -> str:
    """How a run retrieves candidate tools: 'lexical', or 'embedding:<model>' through a cache."""
    cache = getattr(retriever, "cache", None)
    return f"embedding:{cache.manifest['model']['name']}" if cache is not None else "lexical"


@dataclass
class ShardResult:
    shard: int
    total: int
    already_done: int
    ran: int
    complete: bool
    counts: dict = field(default_factory=dict)
    write_failures: int = 0


async def run_shard(spec: RunSpec, shard: int, shards: int, *, fs: fsspec.AbstractFileSystem, run_dir: str,
                    runner: CaseRunner, metrics: RunnerMetrics, heartbeat: Heartbeat, stop: asyncio.Event,
                    concurrency: int, skip: set[str] | frozenset = frozenset(),
                    on_case_done: Callable[[dict], None] | None = None,
                    known_parts: Mapping[str, list[str]] | None = None) -> ShardResult:
    cases = shard_cases(spec.matrix, shard, shards)
    sink = sinkmod.ShardSink(fs, run_dir, shard, flush_rows=spec.output.flush_every_rows,
                             flush_s=spec.output.flush_every_s,
                             on_flushed=lambda n: (metrics.rows_flushed.labels(spec.name).inc(n), heartbeat.beat()))
    done = await asyncio.to_thread(sink.load_existing, known_parts)
    done |= set(skip)
    todo = [c for c in cases if c.case_id not in done]
    already = len(cases) - len(todo)
    request_env = os.environ.get("BENCHPILOT_MEMORY_REQUEST_BYTES")
    request = int(request_env) if request_env and request_env.isdigit() else memory_request_mib(
        spec.resources.shared_mib, spec.resources.per_worker_mib, concurrency) * 2**20
    metrics.memory_request.labels(spec.name).inc(request)  # per shard: a local run sums its shards
    # per-process progress, scraped by the operator (sums over the shards of a local run)
    metrics.cases_planned.labels(spec.name, "total").inc(len(cases))
    metrics.cases_planned.labels(spec.name, "done").inc(already)
    metrics.cases_planned.labels(spec.name, "failed").inc(0)

    def done_one(row: dict) -> None:
        metrics.cases_planned.labels(spec.name, "done").inc()
        if row["status"] in ("error", "timeout"):
            metrics.cases_planned.labels(spec.name, "failed").inc()
        if on_case_done:
            on_case_done(row)

    log.info("shard start", extra={"run": spec.name, "shard": shard, "shards": shards, "cases": len(cases),
                                   "already_done": already, "attempt": sink.attempt, "dir": run_dir})
    sched = ShardScheduler(spec, shard, runner, sink, concurrency=concurrency, metrics=metrics,
                           heartbeat=heartbeat, on_case_done=done_one)
    flusher_stop = asyncio.Event()
    flusher = asyncio.create_task(sink.run_flusher(flusher_stop))
    try:
        ran = await sched.run(todo, stop)
    finally:
        flusher_stop.set()
        await flusher
        deadline = sink.clock() + FINAL_FLUSH_S if stop.is_set() else None
        flushed = await sink.flush(deadline=deadline)
    ids = {c.case_id for c in cases}
    have = ids & (sink.done | set(skip))
    complete = flushed and len(have) == len(ids)
    if complete and not stop.is_set():
        await asyncio.to_thread(sink.write_success, len(ids))
    result = ShardResult(shard, len(cases), already, ran, complete, dict(sched.counts), sink.stats.write_failures)
    log.info("shard finish", extra={"run": spec.name, "shard": shard, "complete": complete, "ran": ran,
                                    "already_done": already, "counts": sched.counts,
                                    "parts_written": len(sink.stats.parts), "unwritten_rows": len(sink.buffer)})
    return result


async def finish_run(spec: RunSpec, fs: fsspec.AbstractFileSystem, run_dir: str, uid: str) -> bool:
    return await asyncio.to_thread(sinkmod.maybe_write_run_success, fs, run_dir, spec.sharding.shards,
                                   run=spec.name, namespace=spec.namespace, uid=uid,
                                   total_cases=spec.total_cases)
