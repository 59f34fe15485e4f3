"""``benchpilot footprint``: measure what one shard costs in memory, as the operator's formula needs.

Reads ``/proc/self/smaps_rollup`` (RSS and PSS) at three points:
- base: the interpreter with the runner imported, before the cache is opened;
- shared: after opening the cache as a shard does, reading every page of it (file-backed pages,
  shared by every worker and process) and loading its query encoder (the ONNX export, once per
  process; a runner loads it on the first text its cache lacks) — counted once per pod;
- per worker: the peak while ``concurrency`` simulated cases of the cache's suite (its own
  ``suiteConfig``; the workflow suite without a cache) run at once, above the shared level,
  divided by the concurrency.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

MiB = 1024 * 1024


def smaps_rollup(pid: int | str = "self") -> dict[str, int]:
    """Rss, Pss, Pss_Anon, Pss_File, ... of a process in bytes."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def _spec(cache_dir: str | None, concurrency: int, latency_s: float):
    """A simulated run of the cache's suite (and suiteConfig) with at least 2 × concurrency cases."""
    from .contract.cases import iter_cases
    from .contract.parse import parse_manifest
    from .contract.registry import find_suite

    suite, config = "workflow", {}
    if cache_dir:
        m = json.loads((Path(cache_dir) / "manifest.json").read_text())
        suite, config = m.get("suite") or "workflow", m.get("config") or {}
    v = find_suite(suite).vocabulary
    cells = len(v.task_types) * len(v.difficulties) * len(v.prompt_types[:2])
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "footprint"},
           "spec": {"suite": suite, "suiteConfig": config,
                    "matrix": {"models": ["sim/footprint"], "promptTypes": list(v.prompt_types[:2]),
                               "taskTypes": list(v.task_types), "difficulties": list(v.difficulties),
                               "instances": max(1, -(-concurrency * 2 // cells))},
                    "simulation": {"sim/footprint": {"accuracy": 0.8, "latencySeconds": latency_s}},
                    "sharding": {"shards": 1, "concurrencyPerShard": concurrency}}}
    return parse_manifest(doc)


async def _run_cases(cache_dir: str | None, concurrency: int, latency_s: float) -> tuple[int, int]:
    import fsspec

    from .contract.cases import iter_cases
    from .health import Heartbeat
    from .metrics import RunnerMetrics
    from .resources import open_cache
    from .scheduler import Context, ShardScheduler
    from .results.sink import ShardSink
    from .cases import make_runner
    from .suites.base import Retrieval

    spec = _spec(cache_dir, concurrency, latency_s)
    cases = [c for _, c in zip(range(concurrency * 2), iter_cases(spec.matrix))]
    runner = make_runner(spec, retrieval=Retrieval(open_cache(cache_dir, suite=spec.suite) if cache_dir else None))
    sink = ShardSink(fsspec.filesystem("memory"), "/footprint", 0, flush_rows=10**6, flush_s=10**6)
    ctx = Context(spec=spec, runner=runner, metrics=RunnerMetrics(), heartbeat=Heartbeat(600))
    sched = ShardScheduler(ctx, 0, sink, concurrency=concurrency)
    peak = [0, 0]

    async def sample() -> None:
        while True:
            m = smaps_rollup()
            peak[0], peak[1] = max(peak[0], m["Rss"]), max(peak[1], m["Pss"])
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    await sched.run(cases, asyncio.Event())
    sampler.cancel()
    return peak[0], peak[1]


def measure(cache_dir: str | None, concurrency: int = 32, latency_s: float = 0.3) -> dict:
    import faiss  # noqa: F401 - the library itself is per process, not part of the shared cache

    from . import scheduler  # noqa: F401 - import everything a shard imports before "base"
    from .resources import open_cache

    base = smaps_rollup()
    t0 = time.monotonic()
    if cache_dir:
        cache = open_cache(cache_dir)
        cache.touch()
    pages = smaps_rollup()
    if cache_dir:
        cache.embed("benchpilot footprint: a text no cache holds, so the query encoder is loaded")
    load_s = time.monotonic() - t0
    shared = smaps_rollup()
    peak_rss, peak_pss = asyncio.run(_run_cases(cache_dir, concurrency, latency_s))
    shared_b = max(0, shared["Rss"] - base["Rss"])
    per_worker = max(0, peak_rss - shared["Rss"]) / concurrency
    return {
        "baseMiB": round(base["Rss"] / MiB, 1),
        "sharedMiB": round(shared_b / MiB, 1),
        "encoderMiB": round(max(0, shared["Rss"] - pages["Rss"]) / MiB, 1),  # of sharedMiB
        "perWorkerMiB": round(per_worker / MiB, 3),
        "concurrency": concurrency,
        "rssMiB": {"base": round(base["Rss"] / MiB, 1), "afterCache": round(shared["Rss"] / MiB, 1),
                   "peak": round(peak_rss / MiB, 1)},
        "pssMiB": {"base": round(base["Pss"] / MiB, 1), "afterCache": round(shared["Pss"] / MiB, 1),
                   "peak": round(peak_pss / MiB, 1)},
        "cacheLoadSeconds": round(load_s, 3),
        "cache": cache_dir,
        "suggestedSpec": {"resources": {"footprint": {
            "sharedMiB": round(shared_b / MiB, 1), "perWorkerMiB": round(max(per_worker / MiB, 0.5), 2)}}},
    }


def main(cache_dir: str | None, concurrency: int) -> int:
    print(json.dumps(measure(cache_dir, concurrency), indent=1))
    return 0
