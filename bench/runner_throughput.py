"""Runner throughput against Little's law, and memory per in-flight case.

A local OpenAI-compatible server (tests/servers/fake_llm.py, its own process) answers every
request after exactly L = 0.5 s. A shard with concurrency c then cannot do better than c / L
cases per second (one request per case). For c = 64, 256, 1024, each in a fresh process, this
runs one untimed warm-up round (c cases: the connection pool opens), then times 8 rounds (8c
cases) and prints the throughput divided by that bound, and the peak RSS; RSS growth per
in-flight case is the slope of peak RSS over c. The server runs in its own process on the same
2 cores. Figures, not a pass/fail test.

Last line: {"ratio_c64": …, "ratio_c256": …, "ratio_c1024": …, "rss_kb_per_inflight": …}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LATENCY_MS = 500
ROUNDS = 8


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def child(concurrency: int, base_url: str) -> dict:
    import fsspec

    from benchpilot_runner.contract.cases import expand
    from benchpilot_runner.contract.parse import parse_manifest

    from benchpilot_runner.suites.workflow import vocab as W
    from benchpilot_runner.health import Heartbeat
    from benchpilot_runner.metrics import RunnerMetrics
    from benchpilot_runner.models import build_clients
    from benchpilot_runner.scheduler import Context, ShardScheduler
    from benchpilot_runner.results.sink import ShardSink
    from benchpilot_runner.cases import make_runner

    n_cases = concurrency * (ROUNDS + 1)  # one untimed warm-up round opens the connection pool
    per_instance = len(W.PROMPT_TYPES) * len(W.TASK_TYPES) * len(W.DIFFICULTIES)
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "bench"},
           "spec": {"matrix": {"models": [f"openai/fixed-{LATENCY_MS}"], "promptTypes": list(W.PROMPT_TYPES),
                               "taskTypes": list(W.TASK_TYPES), "difficulties": list(W.DIFFICULTIES),
                               "instances": -(-n_cases // per_instance)},
                    "endpoint": {"baseURL": base_url, "qps": 100000, "requestTimeoutSeconds": 30, "maxRetries": 0},
                    "sharding": {"shards": 1, "concurrencyPerShard": concurrency},
                    "output": {"flushEveryRows": 100000, "flushEverySeconds": 3600}}}
    spec = parse_manifest(doc)
    cases = expand(spec.matrix)[:n_cases]
    metrics = RunnerMetrics()
    hb = Heartbeat(120)
    endpoints = build_clients(spec, metrics, hb, concurrency=concurrency)
    runner = make_runner(spec, endpoints=endpoints, on_progress=hb.beat)
    sink = ShardSink(fsspec.filesystem("memory"), "/bench", 0, flush_rows=10**6, flush_s=10**6)
    sched = ShardScheduler(Context(spec, runner, metrics, hb), 0, sink, concurrency=concurrency)
    base_rss = rss_kb()
    peak = [base_rss]

    async def sample():
        while True:
            peak[0] = max(peak[0], rss_kb())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    await sched.run(cases[:concurrency], asyncio.Event())  # warm-up: connections open, code paths hot
    cases = cases[concurrency:]
    t0 = time.monotonic()
    await sched.run(cases, asyncio.Event())
    elapsed = time.monotonic() - t0
    sampler.cancel()
    await endpoints.close()
    statuses = {}
    for r in sink.buffer:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    bound = concurrency / (LATENCY_MS / 1000)
    return {"concurrency": concurrency, "cases": len(cases), "elapsed_s": round(elapsed, 3),
            "throughput": round(len(cases) / elapsed, 1), "bound": bound,
            "ratio": round(len(cases) / elapsed / bound, 4), "base_rss_mib": round(base_rss / 1024, 1),
            "peak_rss_mib": round(peak[0] / 1024, 1), "peak_rss_kb": peak[0], "statuses": statuses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--levels", default="64,256,1024")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.url))))
        return

    from tests.servers.s3 import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.servers.fake_llm", "--port", str(port)], cwd=ROOT)
    try:
        import urllib.request

        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=1)
            except urllib.error.HTTPError:
                break  # 405 for GET: the server is up
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("fake LLM server did not start")
                time.sleep(0.1)
        results = {}
        for c in [int(x) for x in args.levels.split(",")]:
            out = subprocess.run([sys.executable, __file__, "--child", str(c), "--url",
                                  f"http://127.0.0.1:{port}/v1"], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[c] = r
            print(f"c={c:5d}: {r['cases']} cases in {r['elapsed_s']:.2f}s = {r['throughput']:.0f}/s, "
                  f"Little's-law bound {r['bound']:.0f}/s, ratio {r['ratio']:.3f}, "
                  f"peak RSS {r['peak_rss_mib']} MiB (base {r['base_rss_mib']} MiB), statuses {r['statuses']}")
    finally:
        server.terminate()
        server.wait(10)
    cs = sorted(results)
    # least-squares slope of peak RSS over concurrency
    mean_c = sum(cs) / len(cs)
    mean_r = sum(results[c]["peak_rss_kb"] for c in cs) / len(cs)
    slope = sum((c - mean_c) * (results[c]["peak_rss_kb"] - mean_r) for c in cs) / sum((c - mean_c) ** 2 for c in cs)
    print(f"RSS growth per in-flight case: {slope:.1f} KB (slope of peak RSS over concurrency)")
    final = {f"ratio_c{c}": results[c]["ratio"] for c in cs}
    final["rss_kb_per_inflight"] = round(slope, 1)
    print(json.dumps(final))


if __name__ == "__main__":
    main()
