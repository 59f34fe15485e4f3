"""Cache footprint: time to the first case, and summed PSS of 1, 8 and 32 processes.

Builds (or reuses, with --cache) a cache holding at least 95 MiB of embeddings, then:
- first_case_s: from process start (``/proc/self/stat`` start time) to the first finished case,
  with the cache opened and verified as a shard does (no encoder load), median of 5 runs;
- pss_mib_N: summed PSS of N live processes that each open the cache and read every page;
- baseline_pss_mib_8: the same for 8 processes that each unpickle their own copy of the
  embeddings and the index (what the origin runner did per worker).
Prints figures, not a verdict. Last line:
{"first_case_s": …, "pss_mib_1": …, "pss_mib_8": …, "pss_mib_32": …, "baseline_pss_mib_8": …}
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_EMBEDDINGS_MIB = 96

FIRST_CASE = textwrap.dedent("""
    import asyncio, os, sys, time
    def since_start():
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    from benchpilot_runner.contract.cases import expand
    from benchpilot_runner.contract.parse import parse_manifest
    from benchpilot_runner.suites.workflow import vocab as W
    from benchpilot_runner.resources import open_cache
    from benchpilot_runner.cases import CaseProgress, make_runner
    from benchpilot_runner.suites.base import Retrieval
    cache = open_cache(sys.argv[1])
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "b"},
           "spec": {"matrix": {"models": ["sim/b"], "promptTypes": ["optimal"], "taskTypes": ["data_pipeline"],
                               "difficulties": ["medium"], "instances": 1},
                    "simulation": {"sim/b": {"accuracy": 0.9, "latencySeconds": 0}}}}
    spec = parse_manifest(doc)
    row = asyncio.run(make_runner(spec, retrieval=Retrieval(cache)).run(expand(spec.matrix)[0], CaseProgress()))
    assert not cache.encoder_loaded
    print(round(since_start(), 4), row["status"])
""")

HOLD = textwrap.dedent("""
    import sys
    import faiss, numpy
    from benchpilot_runner.resources import open_cache
    from benchpilot_runner.suites.workflow.registry import TOOLS
    c = open_cache(sys.argv[1]); c.touch(); c.search("tools", TOOLS[0].text(), 5)
    print("ready", flush=True); sys.stdin.read()
""")

NAIVE = textwrap.dedent("""
    import pickle, sys
    import faiss, numpy
    with open(sys.argv[1], "rb") as fh:
        blob = pickle.load(fh)
    index = faiss.deserialize_index(blob["index"])
    emb = blob["embeddings"]; emb.sum(); del blob
    print("ready", flush=True); sys.stdin.read()
""")


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("Pss:"))


def summed_pss_mib(code: str, arg: str, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, arg], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(n)]
    try:
        for p in procs:
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise SystemExit(f"child failed: {line!r}")
        return round(sum(pss_kib(p.pid) for p in procs) / 1024, 1)
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="an existing cache folder (default: build one in a temp folder)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-cache-")
    cache = Path(args.cache) if args.cache else Path(tmp.name) / "cache"
    if not args.cache:
        subprocess.run([sys.executable, "-m", "benchpilot_runner", "--log-level", "WARNING", "cache", "build",
                        "--out", str(cache), "--synthetic-size", str(MIN_EMBEDDINGS_MIB)], check=True)
    manifest = json.loads((cache / "manifest.json").read_text())
    files_mib = sum((cache / f).stat().st_size for f in ("embeddings.npy", "index.faiss")) / 2**20
    print(f"cache: {manifest['embeddings_mib']} MiB of embeddings ({manifest['rows']['total']} rows), "
          f"embeddings + index files {files_mib:.1f} MiB")

    times = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", FIRST_CASE, str(cache)], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        times.append(float(out.stdout.split()[0]))
    first = round(statistics.median(times), 3)
    print(f"process start -> first case (cache opened and sha256-verified, no encoder): median {first}s "
          f"of {[round(t, 2) for t in times]}")

    pss = {n: summed_pss_mib(HOLD, str(cache), n) for n in (1, 8, 32)}
    for n, v in pss.items():
        print(f"{n:2d} processes sharing the mmap'd cache: summed PSS {v} MiB ({v / n:.1f} MiB each)")

    import faiss
    import numpy as np

    blob_path = Path(tmp.name) / "naive.pkl"
    emb = np.load(cache / "embeddings.npy")
    index = faiss.read_index(str(cache / "index.faiss"))
    with open(blob_path, "wb") as fh:
        pickle.dump({"embeddings": emb, "index": faiss.serialize_index(index)}, fh, protocol=5)
    del emb, index
    baseline = summed_pss_mib(NAIVE, str(blob_path), 8)
    print(f" 8 processes each unpickling a copy (baseline): summed PSS {baseline} MiB "
          f"({baseline / pss[8]:.1f}x the shared cache)")
    tmp.cleanup()
    print(json.dumps({"first_case_s": first, "pss_mib_1": pss[1], "pss_mib_8": pss[8], "pss_mib_32": pss[32],
                      "baseline_pss_mib_8": baseline}))


if __name__ == "__main__":
    main()
