"""`benchpilot run` killed with SIGKILL and run again at once, N times: is the rerun ever refused?

Each try starts a run of a small manifest (simulated models, so it is busy when killed), waits for
its writer lease, kills it with SIGKILL and — without reaping it, as a container's PID 1 often does
not, so the killed run stays a zombie — runs the same command again. Printed: how many reruns were
refused ("another writer"), their exit codes, and, as the baseline, in how many tries the killed run
was still a zombie when the rerun started (there `kill(pid, 0)`, the check before, says "alive").
    .venv/bin/python bench/lease_rerun.py [--tries 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = [sys.executable, "-m", "benchpilot_runner", "run"]


def manifest() -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun",
            "metadata": {"name": "lease-rerun", "namespace": "bench"},
            "spec": {"matrix": {"models": ["sim/slow"], "promptTypes": ["baseline", "optimal"],
                                "difficulties": ["easy"], "taskTypes": ["simple_task", "basic_task"],
                                "instances": 10},
                     "simulation": {"sim/slow": {"accuracy": 0.7, "latencySeconds": 0.05}},
                     "sharding": {"shards": 2, "concurrencyPerShard": 4},
                     "output": {"flushEveryRows": 5, "flushEverySeconds": 1}}}


def state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()[0]


def one_try(path: Path, out: Path) -> dict:
    first = subprocess.Popen([*RUN, str(path), "--output", str(out), "--no-progress"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(out.rglob("_writers/*.json")):
        if time.monotonic() > deadline or first.poll() is not None:
            raise RuntimeError("the first run never wrote its lease")
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    while state(first.pid) not in ("Z", None):  # dying: wait until it is a zombie (never reaped here)
        time.sleep(0.005)
    zombie = state(first.pid) == "Z"
    t0 = time.monotonic()
    rerun = subprocess.run([*RUN, str(path), "--output", str(out), "--no-progress"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - t0
    first.wait()
    return {"zombie": zombie, "exit": rerun.returncode, "refused": "another writer" in rerun.stderr,
            "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=20)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        path = Path(tmp) / "run.yaml"
        path.write_text(yaml.safe_dump(manifest()))
        for i in range(args.tries):
            results.append(one_try(path, Path(tmp) / f"out-{i}"))
            r = results[-1]
            print(f"try {i + 1:2d}: killed run a zombie at rerun: {r['zombie']}  rerun exit {r['exit']}  "
                  f"refused: {r['refused']}  rerun {r['wall_s']:.1f}s", flush=True)
    refused = sum(r["refused"] for r in results)
    zombies = sum(r["zombie"] for r in results)
    print(f"refused {refused} of {len(results)} reruns; rerun exit codes {dict(Counter(r['exit'] for r in results))}; "
          f"median rerun {statistics.median(r['wall_s'] for r in results):.1f}s; baseline: the killed run was "
          f"still a zombie at {zombies} of {len(results)} reruns (kill(pid, 0) says alive there)")


if __name__ == "__main__":
    main()
