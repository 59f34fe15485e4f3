"""Operator scale: time from creating a 1,000-shard run to all Jobs existing; peak RSS with 100 runs.

The operator runs as its own process (``python -m benchpilot_operator``), first against kmock's
Kubernetes emulator served from this process on 127.0.0.1 (a fresh pair per phase; the emulator is
single-threaded Python on the same 2 cores, so that timing is partly the emulator's), then against
a real control plane (etcd, kube-apiserver, kube-controller-manager built by scripts/k8s-bin.sh),
where the Job controller also creates a pod per Job, as on a cluster.
Figures, not a verdict. Last line: {"jobs_1000_s": …, "rss_mib_100_runs": …, "real": {...}}
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


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


class Stack:
    """A fresh emulator and a fresh operator process (each phase gets its own)."""

    def __init__(self, resync: str):
        self.resync = resync

    async def __aenter__(self):
        import kmock

        from tests.operator.cluster import Cluster, register

        self.k = kmock.KubernetesEmulator()
        await self.k.__aenter__()
        self.srv = kmock.Server(self.k)
        await self.srv.__aenter__()
        register(self.k)
        self.c = Cluster(self.k, str(self.srv.url))
        env = {**os.environ, "BENCHPILOT_API_SERVER": str(self.srv.url), "BENCHPILOT_METRICS_PORT": "0",
               "BENCHPILOT_LIVENESS_PORT": "0", "BENCHPILOT_RESYNC_SECONDS": self.resync,
               "BENCHPILOT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
        self.op = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], env=env, cwd=ROOT)
        self.trimmer = asyncio.create_task(self._trim())
        await asyncio.sleep(2)
        return self

    async def _trim(self) -> None:
        """kmock keeps every request and matches each new one by scanning them all (quadratic);
        keep only the recent tail (requests in flight are always recent)."""
        while True:
            await asyncio.sleep(0.5)
            del self.k._requests[:-500]

    async def __aexit__(self, *exc):
        self.trimmer.cancel()
        self.op.terminate()
        self.op.wait(30)
        await self.c.close()
        await self.srv.__aexit__(*exc)
        await self.k.__aexit__(*exc)


async def main() -> None:
    async with Stack(resync="2") as st:
        cpu0, wall_cpu0 = cpu_s(st.op.pid), time.process_time()
        t0 = time.monotonic()
        await st.c.apply_run(doc("big", "scale", 1000, 10))  # 2 × 10 × 5 × 10 = 1000 cases
        while True:  # count in-process: listing 1,000 Jobs over HTTP would load the emulator itself
            n = count_jobs(st.k, "scale")
            if n >= 1000:
                break
            if time.monotonic() - t0 > 900:
                raise SystemExit(f"only {n} jobs after 900 s")
            await asyncio.sleep(0.5)
        jobs_s = round(time.monotonic() - t0, 2)
        print(f"1,000-shard run: all 1,000 Jobs exist {jobs_s}s after the run was created "
              f"(operator RSS {vm(st.op.pid, 'VmRSS') / 1024:.0f} MiB, peak {vm(st.op.pid, 'VmHWM') / 1024:.0f} MiB); "
              f"CPU in that time: operator {cpu_s(st.op.pid) - cpu0:.1f}s, emulator {time.process_time() - wall_cpu0:.1f}s")
    async with Stack(resync="10") as st:
        rss_before = vm(st.op.pid, "VmRSS")
        t1 = time.monotonic()
        for i in range(100):
            await st.c.apply_run(doc(f"r{i:03d}", f"many-{i % 10}", 4, 1))
        while True:
            counted = sum(count_jobs(st.k, f"many-{ns}") for ns in range(10))
            if counted >= 400 or time.monotonic() - t1 > 600:
                break
            await asyncio.sleep(0.5)
        all_s = round(time.monotonic() - t1, 1)
        await asyncio.sleep(25)  # a couple of resync beats over all 100 runs
        peak = vm(st.op.pid, "VmHWM")
        print(f"100 runs × 4 shards: {counted} Jobs after {all_s}s; operator RSS {vm(st.op.pid, 'VmRSS') / 1024:.0f} "
              f"MiB, peak {peak / 1024:.0f} MiB (idle operator: {rss_before / 1024:.0f} MiB)")
    real = real_api_server()
    print(json.dumps({"jobs_1000_s": jobs_s, "rss_mib_100_runs": round(peak / 1024, 1), "real": real}))


def real_api_server() -> dict | None:
    """The same two phases against a real API server (None when the binaries are not built)."""
    from tests.cluster.control_plane import ControlPlane, k8s_bin

    bin_dir = k8s_bin(build=False)
    if bin_dir is None:
        print("real API server: skipped (run scripts/k8s-bin.sh to build the control plane)")
        return None
    cp = ControlPlane(bin_dir).start()
    try:
        cp.kubectl("apply", "-f", str(ROOT / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd/benchmarkruns.benchpilot.io", "--timeout=60s")
        for ns in ["scale", *[f"many-{i}" for i in range(10)]]:
            cp.kubectl("create", "namespace", ns)
        env = {**cp.env(), "BENCHPILOT_API_SERVER": "", "BENCHPILOT_METRICS_PORT": "0", "BENCHPILOT_LIVENESS_PORT": "0",
               "BENCHPILOT_RESYNC_SECONDS": "2", "BENCHPILOT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}

        def jobs_in(*namespaces: str) -> int:
            return sum(len(cp.kubectl("get", "jobs", "-n", ns, "-o", "name").stdout.split()) for ns in namespaces)

        op = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], env=env, cwd=ROOT)
        try:
            time.sleep(3)
            cpu0 = cpu_s(op.pid)
            t0 = time.monotonic()
            cp.apply(doc("big", "scale", 1000, 10))
            n = 0
            while n < 1000 and time.monotonic() - t0 < 900:
                time.sleep(1)
                n = jobs_in("scale")
            jobs_s = round(time.monotonic() - t0, 1)
            print(f"real API server, 1,000-shard run: {n} Jobs exist {jobs_s}s after the run was created "
                  f"(operator CPU {cpu_s(op.pid) - cpu0:.1f}s, peak RSS {vm(op.pid, 'VmHWM') / 1024:.0f} MiB)")
        finally:
            op.terminate()
            op.wait(30)
        cp.kubectl("delete", "benchmarkrun", "big", "-n", "scale", "--wait=false")
        env["BENCHPILOT_RESYNC_SECONDS"] = "10"
        op = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], env=env, cwd=ROOT)
        try:
            time.sleep(3)
            idle = vm(op.pid, "VmRSS")
            t1 = time.monotonic()
            for i in range(100):
                cp.apply(doc(f"r{i:03d}", f"many-{i % 10}", 4, 1))
            counted = 0
            while counted < 400 and time.monotonic() - t1 < 600:
                time.sleep(2)
                counted = jobs_in(*[f"many-{i}" for i in range(10)])
            all_s = round(time.monotonic() - t1, 1)
            time.sleep(25)
            peak = vm(op.pid, "VmHWM")
            print(f"real API server, 100 runs × 4 shards: {counted} Jobs after {all_s}s; operator peak RSS "
                  f"{peak / 1024:.0f} MiB (idle {idle / 1024:.0f} MiB)")
        finally:
            op.terminate()
            op.wait(30)
        return {"jobs_1000": n, "jobs_1000_s": jobs_s, "runs_100_jobs": counted, "rss_mib_100_runs": round(peak / 1024, 1)}
    finally:
        cp.stop()


if __name__ == "__main__":
    asyncio.run(main())
