"""Operator scale: time from creating a 1,000-shard run to all Jobs existing; peak RSS with 100 runs.

The operator runs as its own process (``python -m benchpilot_operator``) against kmock's
Kubernetes emulator served from this process on 127.0.0.1. The emulator is single-threaded
Python, so the timing is an upper bound set partly by the emulator, not only by the operator.
Figures, not a verdict. Last line: {"jobs_1000_s": …, "rss_mib_100_runs": …}
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def vm(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(key + ":"))


def count_jobs(k, namespace: str) -> int:
    return sum(1 for (res, ns, _), obj in list(k.objects.items())
               if res.plural == "jobs" and ns == namespace and not obj.deleted)


def doc(name: str, ns: str, shards: int, instances: int) -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"matrix": {"models": ["sim/strong", "sim/weak"],
                                "promptTypes": ["baseline", "optimal", "cot", "flawed_missing_step",
                                                "flawed_tool_misuse", "flawed_sequence_disorder",
                                                "flawed_parameter_error", "flawed_redundant_operations",
                                                "flawed_logical_inconsistency", "flawed_semantic_drift"],
                                "taskTypes": ["simple_task", "basic_task", "data_pipeline", "api_integration",
                                              "multi_stage_pipeline"], "instances": instances},
                     "sharding": {"shards": shards, "concurrencyPerShard": 4, "maxParallelShards": shards}}}


async def main() -> None:
    import kmock

    from tests.operator.cluster import Cluster, register

    async with kmock.KubernetesEmulator() as k, kmock.Server(k) as srv:
        register(k)
        c = Cluster(k, str(srv.url))
        env = {**os.environ, "BENCHPILOT_API_SERVER": str(srv.url), "BENCHPILOT_METRICS_PORT": "0",
               "BENCHPILOT_LIVENESS_PORT": "0", "BENCHPILOT_RESYNC_SECONDS": "2", "BENCHPILOT_LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(ROOT)}
        op = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], env=env, cwd=ROOT)
        try:
            await asyncio.sleep(2)
            t0 = time.monotonic()
            await c.apply_run(doc("big", "scale", 1000, 10))  # 2 × 10 × 5 × 10 = 1000 cases
            while True:  # count in-process: listing 1,000 Jobs over HTTP would load the emulator itself
                n = count_jobs(k, "scale")
                if n >= 1000:
                    break
                if time.monotonic() - t0 > 900:
                    raise SystemExit(f"only {n} jobs after 900 s")
                await asyncio.sleep(0.5)
            jobs_s = round(time.monotonic() - t0, 2)
            print(f"1,000-shard run: all 1,000 Jobs exist {jobs_s}s after the run was created "
                  f"(operator RSS now {vm(op.pid, 'VmRSS') / 1024:.0f} MiB)")
            await c.delete_run("scale", "big")
            rss_before = vm(op.pid, "VmRSS")
            for i in range(100):
                await c.apply_run(doc(f"r{i:03d}", f"many-{i % 10}", 4, 1))
            t1 = time.monotonic()
            while True:
                counted = sum(count_jobs(k, f"many-{ns}") for ns in range(10))
                if counted >= 400 or time.monotonic() - t1 > 300:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(6)  # a few resync beats over all 100 runs
            peak = vm(op.pid, "VmHWM")
            print(f"100 runs × 4 shards: {counted} Jobs; operator RSS {vm(op.pid, 'VmRSS') / 1024:.0f} MiB, "
                  f"peak {peak / 1024:.0f} MiB (was {rss_before / 1024:.0f} MiB before the 100 runs)")
        finally:
            op.terminate()
            op.wait(30)
            await c.close()
    print(json.dumps({"jobs_1000_s": jobs_s, "rss_mib_100_runs": round(peak / 1024, 1)}))


if __name__ == "__main__":
    asyncio.run(main())
