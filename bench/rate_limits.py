"""Rate limits against the throttling real providers do: random 429s, a limit below ours, stated limits.

Everything runs against the local OpenAI-compatible server (tests/servers/fake_llm.py and its
throttling behaviours, tests/servers/throttling.py), and every figure is measured in this run.

Goodput scenarios (the issue's reference setup): one `benchpilot run` of 200 workflow cases, 2 shards
× 4 concurrent, `qps: 50`, `caseTimeoutSeconds: 10`, 50 ms answers (`requestTimeoutSeconds: 1`, so a
hung request is retried in time). Goodput = cases with a final outcome per second of the run's wall
time, against the same run with no faults measured here first:
  random3   3 % of requests answered 429 (Retry-After: 1), independent of the rate   goal ≥ 0.90× clean
  random10  10 % of them                                                             goal ≥ 0.75× clean
  hostile   5 % hang, 10 % 429, 5 % 500, 3 % garbage          goal: every case final or retried, ≥ 0.6×
For each: no case may time out in the limiter's queue (`error_type: limiter_timeout`).

Limit scenarios: 4 `benchpilot shard` processes run one endpoint's cases (one 0.2 s request each),
each holding its share of the run's limit as the operator hands it out:
  half      the server allows LIMIT requests per sliding WINDOW s (429 + Retry-After above it), the
            run is configured at twice that (0.1's "adaptive" case)
            goal: achieved ≤ limit + 5 %, ≤ 5 % 429s, ≥ 0.9 of the limit within 60 s
  stated    the server enforces the same limit per minute and states it in OpenAI's headers; the run
            is configured at twice it                          goal: ≤ 1 % 429s, ≥ 0.95 of its limit
Printed: achieved = requests per second (429s included) over the steady state (the middle 80 % of
requests) / the limit; 429s = their share of all requests (and of the steady state's); first ≥ 0.9 =
when the answered rate over the trailing WINDOW first reached 0.9 of the limit.
    .venv/bin/python bench/rate_limits.py [--only random3,half] [--limit 40 --window 10 --cases 400]
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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARDS = 4
GOODPUT = {"clean": {}, "random3": {"throttle": 0.03}, "random10": {"throttle": 0.10},
           "hostile": {"hang": 0.05, "throttle": 0.10, "error": 0.05, "garbage": 0.03}}


# ------------------------------------------------------------------ goodput: one local run


def goodput_manifest(base_url: str, name: str) -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun",
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"matrix": {"models": ["openai/slow-50"], "promptTypes": ["baseline", "optimal"],
                                "difficulties": ["hard"],
                                "taskTypes": ["simple_task", "basic_task", "data_pipeline", "api_integration",
                                              "multi_stage_pipeline"], "instances": 20},
                     "endpoint": {"baseURL": base_url, "qps": 50, "requestTimeoutSeconds": 1, "maxRetries": 3},
                     "sharding": {"shards": 2, "concurrencyPerShard": 4},
                     "limits": {"caseTimeoutSeconds": 10},
                     "output": {"flushEveryRows": 50, "flushEverySeconds": 2}}}


def rows_of(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for p in sorted(out.rglob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def goodput_run(server, tmp: Path, name: str) -> dict:
    import yaml

    from benchpilot_runner.contract.outcomes import FINAL_STATUSES

    fake = server.fake
    if GOODPUT[name]:
        fake.faults(name, seed=18, **GOODPUT[name])
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(goodput_manifest(server.url(name), name)))
    out = tmp / f"out-{name}"
    start_log, start_429 = len(fake.requests_log), fake.throttled[name]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "benchpilot_runner", "--log-level", "ERROR", "run", str(path),
                           "--output", str(out), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "BENCHPILOT_API_KEY": ""})
    wall = time.monotonic() - t0
    rows = rows_of(out)
    final = sum(r["status"] in FINAL_STATUSES for r in rows)
    requests = sum(1 for _, prefix, _ in fake.requests_log[start_log:] if prefix == name)
    errors = Counter(r["error_type"] for r in rows if r["status"] not in FINAL_STATUSES)
    return {"scenario": name, "exit": proc.returncode, "wall_s": round(wall, 1), "cases": len(rows),
            "final": final, "retryable": len(rows) - final, "goodput": round(final / wall, 3),
            "requests": requests, "share_429": round((fake.throttled[name] - start_429) / max(1, requests), 4),
            "limiter_timeouts": errors.get("limiter_timeout", 0), "errors": dict(errors)}


# ------------------------------------------------------------------ limits: 4 shard processes


def pods_manifest(base_url: str, rpm: float, cases: int, name: str) -> dict:
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


def pods_run(server, tmp: Path, *, name: str, prefix: str, rpm: float, cases: int, limit_rps: float,
             window_s: float) -> dict:
    from benchpilot_operator.shares import allocate
    from benchpilot_runner.contract.parse import parse_manifest

    spec = parse_manifest(pods_manifest(server.url(prefix), rpm, cases, name))
    spec_path = tmp / f"{name}.json"
    doc = spec.to_resolved()
    doc["spec"]["output"]["uri"] = str(tmp / name)
    spec_path.write_text(json.dumps(doc))
    fake = server.fake
    start_log, start_429 = len(fake.requests_log), fake.throttled[prefix]
    start_status = len(fake.throttling.statuses)
    shares_file = tmp / f"{name}-shares.json"
    shares = {i: 1 / SHARDS for i in range(SHARDS)}
    write_shares(shares_file, shares)
    procs = []
    for i in range(SHARDS):  # as the operator does: each pod its share, grown as shards finish
        env = {**os.environ, "BENCHPILOT_SHARD": str(i), "BENCHPILOT_SHARDS": str(SHARDS),
               "BENCHPILOT_HEALTH_HOST": "127.0.0.1", "BENCHPILOT_HEALTH_PORT": str(free_port()),
               "BENCHPILOT_LIMIT_SHARE": str(1 / SHARDS), "BENCHPILOT_SHARES_FILE": str(shares_file)}
        procs.append(subprocess.Popen([sys.executable, "-m", "benchpilot_runner", "--log-level", "WARNING", "shard",
                                       "--spec", str(spec_path)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs):
        running = {i for i, p in enumerate(procs) if p.poll() is None}
        if running != set(shares):
            shares = allocate(shares, running, [], all_started=True)
            write_shares(shares_file, shares)
        time.sleep(0.2)
    wall = time.monotonic() - t0
    log = sorted(t for t, p, _ in fake.requests_log[start_log:] if p == prefix)
    throttled = fake.throttled[prefix] - start_429
    steady = log[len(log) // 10: len(log) * 9 // 10]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    answers = sorted((t, code) for t, p, code in fake.throttling.statuses[start_status:] if p == prefix)
    middle = answers[len(answers) // 10: len(answers) * 9 // 10]
    return {"scenario": name, "exit_codes": [p.returncode for p in procs], "requests": len(log),
            "throttled": throttled, "achieved": round(rate / limit_rps, 3),
            "share_429": round(throttled / max(1, len(log)), 4),
            "steady_429": round(sum(code == 429 for _, code in middle) / max(1, len(middle)), 4),
            "first_0.9_s": first_at(fake, prefix, start_status, 0.9 * limit_rps, window_s), "wall_s": round(wall, 1)}


def first_at(fake, prefix: str, start: int, rate: float, window_s: float) -> float | None:
    """Seconds from the first request until answers (not 429s) over the trailing window first reached ``rate``."""
    answers = [(t, status) for t, p, status in fake.throttling.statuses[start:] if p == prefix]
    ok = sorted(t for t, status in answers if status != 429)
    if not ok:
        return None
    t_first = min(t for t, _ in answers)
    lo = 0
    for hi, t in enumerate(ok):
        while ok[lo] < t - window_s:
            lo += 1
        if t - t_first >= window_s and (hi - lo + 1) / window_s >= rate:
            return round(t - t_first, 1)
    return None


def write_shares(path: Path, shares: dict[int, float]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"shards": {str(i): f for i, f in shares.items()}}))
    os.replace(tmp, path)


def free_port() -> int:
    from tests.servers.s3 import free_port as fp

    return fp()


# ------------------------------------------------------------------ main


def print_goodput(r: dict, clean: dict | None) -> None:
    ratio = f"{r['goodput'] / clean['goodput']:.2f}× clean" if clean and clean is not r else "baseline"
    print(f"{r['scenario']:9s} goodput {r['goodput']:.2f}/s ({ratio})  final {r['final']}/{r['cases']} "
          f"retryable {r['retryable']}  429s {r['share_429']:.1%} of {r['requests']} requests  "
          f"limiter timeouts {r['limiter_timeouts']}  wall {r['wall_s']:.0f}s  exit {r['exit']}  {r['errors'] or ''}",
          flush=True)


def print_pods(r: dict) -> None:
    print(f"{r['scenario']:9s} achieved {r['achieved']:.3f} of the limit  429s {r['share_429']:.1%} "
          f"({r['throttled']}/{r['requests']}; {r['steady_429']:.1%} in the steady state)  first ≥ 0.9 at {r['first_0.9_s']}s  wall {r['wall_s']:.0f}s  "
          f"exit {r['exit_codes']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated scenarios (clean always runs with a goodput one)")
    ap.add_argument("--limit", type=int, default=40, help="the half scenario's limit: requests per window")
    ap.add_argument("--window", type=float, default=10.0, help="the half scenario's window, in seconds")
    ap.add_argument("--cases", type=int, default=400, help="cases per limit scenario")
    args = ap.parse_args()
    wanted = set(filter(None, args.only.split(","))) or {*GOODPUT, "half", "stated"}
    from tests.servers.fake_llm import ServerThread

    server = ServerThread().start()
    limit_rps = args.limit / args.window
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-rates-") as tmp:
            goodput = [n for n in GOODPUT if n in wanted and n != "clean"]
            clean = None
            if goodput or "clean" in wanted:
                clean = goodput_run(server, Path(tmp), "clean")
                results.append(clean)
                print_goodput(clean, None)
            for name in goodput:
                results.append(goodput_run(server, Path(tmp), name))
                print_goodput(results[-1], clean)
            if "half" in wanted:
                server.fake.limit("half", args.limit, args.window)
                results.append(pods_run(server, Path(tmp), name="half", prefix="half", rpm=2 * limit_rps * 60,
                                        cases=args.cases, limit_rps=limit_rps, window_s=args.window))
                print_pods(results[-1])
            if "stated" in wanted:
                server.fake.stated_limit("stated", limit_rps * 60, burst_s=2.0, style="openai")
                results.append(pods_run(server, Path(tmp), name="stated", prefix="stated", rpm=2 * limit_rps * 60,
                                        cases=args.cases, limit_rps=limit_rps, window_s=args.window))
                print_pods(results[-1])
    finally:
        server.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
