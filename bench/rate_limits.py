"""Run-wide rate limits across shard processes, against a server that enforces its own limit.

A local OpenAI-compatible server (tests/servers/fake_llm.py) answers 429 with Retry-After above
LIMIT requests per sliding WINDOW seconds (a provider's per-minute limit, scaled down so the bench
takes a minute or two). 4 `benchpilot shard` processes run one endpoint's cases (one request each,
0.2 s latency), each holding its share of the run's limit, as the operator hands it out.

Scenarios, all measured in this run:
  shares     requestsPerMinute = the server's limit, each shard 1/4 of it     goal: rate >= 0.95, 429 <= 2 %
  adaptive   requestsPerMinute = 2 × the server's real limit (429s teach it)  goal: rate >= 0.85, 429 <= 10 %
  naive      each shard at the full limit (what 0.1 did: qps per shard)       the baseline

Printed per scenario: achieved rate / the server's limit over the steady state (the middle 80 % of
the requests), the share of requests answered 429, and the tail: how long the last 10 % of cases
took against the time the limit alone allows for them.
    .venv/bin/python bench/rate_limits.py [--limit 40 --window 10 --cases 400]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARDS = 4


def manifest(base_url: str, rpm: float, cases: int, name: str) -> dict:
    per_model = 10 * 5 * 3  # prompt types × task types × difficulties
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun",
            "metadata": {"name": name, "namespace": "bench", "uid": uuid.uuid4().hex},
            "spec": {"matrix": {"models": [{"name": "m", "endpoint": "api", "model": "fixed-200"}],
                                "promptTypes": ["baseline", "optimal", "cot", "flawed_sequence_disorder",
                                                "flawed_tool_misuse", "flawed_parameter_error", "flawed_missing_step",
                                                "flawed_redundant_operations", "flawed_logical_inconsistency",
                                                "flawed_semantic_drift"],
                                "difficulties": ["easy", "medium", "hard"],
                                "taskTypes": ["simple_task", "basic_task", "data_pipeline", "api_integration",
                                              "multi_stage_pipeline"],
                                "instances": max(1, -(-cases // per_model))},
                     "endpoints": [{"name": "api", "baseURL": base_url, "limits": {"requestsPerMinute": rpm},
                                    "maxRetries": 3, "requestTimeoutSeconds": 10}],
                     "sharding": {"shards": SHARDS, "concurrencyPerShard": 8},
                     "limits": {"caseTimeoutSeconds": 600},
                     "output": {"flushEveryRows": 200, "flushEverySeconds": 5}}}


def scenario(server, tmp: Path, *, name: str, rpm: float, share: float, cases: int, limit_rps: float) -> dict:
    from benchpilot_runner import spec as S

    spec = S.parse_manifest(manifest(server.url("api"), rpm, cases, name))
    spec_path = tmp / f"{name}.json"
    doc = spec.to_resolved()
    doc["spec"]["output"]["uri"] = str(tmp / name)
    spec_path.write_text(json.dumps(doc))
    fake = server.fake
    start_log, start_429 = len(fake.requests_log), fake.throttled["api"]
    from benchpilot_operator.shares import allocate

    shares_file = tmp / f"{name}-shares.json"
    shares = {i: share for i in range(SHARDS)}
    write_shares(shares_file, shares)
    procs = []
    t0 = time.monotonic()
    for i in range(SHARDS):
        env = {**os.environ, "BENCHPILOT_SHARD": str(i), "BENCHPILOT_SHARDS": str(SHARDS),
               "BENCHPILOT_HEALTH_HOST": "127.0.0.1", "BENCHPILOT_HEALTH_PORT": str(free_port()),
               "BENCHPILOT_LIMIT_SHARE": str(share)}
        if share < 1:  # as the operator does: the run's shares, grown as shards finish
            env["BENCHPILOT_SHARES_FILE"] = str(shares_file)
        procs.append(subprocess.Popen([sys.executable, "-m", "benchpilot_runner", "--log-level", "WARNING", "shard",
                                       "--spec", str(spec_path)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    while any(p.poll() is None for p in procs):
        running = {i for i, p in enumerate(procs) if p.poll() is None}
        if share < 1 and running != set(shares):
            shares = allocate(shares, running, [], all_started=True)
            write_shares(shares_file, shares)
        time.sleep(0.2)
    codes = [p.returncode for p in procs]
    wall = time.monotonic() - t0
    log = [t for t, prefix, _ in fake.requests_log[start_log:] if prefix == "api"]
    throttled = fake.throttled["api"] - start_429
    answered = len(log) - throttled
    steady = sorted(log)[len(log) // 10: len(log) * 9 // 10]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    # the tail: the last 10 % of successful answers, against what the limit allows for them
    ok_times = sorted(log)
    tail_n = max(1, answered // 10)
    tail_s = ok_times[-1] - ok_times[-tail_n] if len(ok_times) > tail_n else 0.0
    return {"scenario": name, "exit_codes": codes, "requests": len(log), "throttled": throttled,
            "rate_ratio": round(rate / limit_rps, 3), "share_429": round(throttled / max(1, len(log)), 4),
            "tail_s": round(tail_s, 2), "tail_bound_s": round(tail_n / limit_rps, 2), "wall_s": round(wall, 1)}


def write_shares(path: Path, shares: dict[int, float]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"shards": {str(i): f for i, f in shares.items()}}))
    os.replace(tmp, path)


def free_port() -> int:
    from tests.servers.s3 import free_port as fp

    return fp()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=40, help="the server's limit: requests per window")
    ap.add_argument("--window", type=float, default=10.0, help="the window, in seconds")
    ap.add_argument("--cases", type=int, default=400, help="cases per scenario")
    args = ap.parse_args()
    from tests.servers.fake_llm import ServerThread

    server = ServerThread().start()
    server.fake.limit("api", args.limit, args.window)
    limit_rps = args.limit / args.window
    real_rpm = limit_rps * 60
    print(f"server limit: {args.limit} requests per {args.window:g} s ({real_rpm:g} per minute); "
          f"{SHARDS} shard processes; {args.cases} cases of one 0.2 s request each per scenario")
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-rates-") as tmp:
            for name, rpm, share in (("shares", real_rpm, 1 / SHARDS), ("adaptive", 2 * real_rpm, 1 / SHARDS),
                                     ("naive", real_rpm, 1.0)):
                r = scenario(server, Path(tmp), name=name, rpm=rpm, share=share, cases=args.cases,
                             limit_rps=limit_rps)
                results.append(r)
                print(f"{name:9s} rate/limit {r['rate_ratio']:.3f}  429s {r['share_429']:.1%} "
                      f"({r['throttled']}/{r['requests']})  tail {r['tail_s']:.1f}s vs bound {r['tail_bound_s']:.1f}s  "
                      f"wall {r['wall_s']:.0f}s  exit {r['exit_codes']}", flush=True)
    finally:
        server.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
