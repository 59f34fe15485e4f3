"""Reading big results: `report` and resume over 1,000,000 rows, against the 0.1 way (a dict per row).

Writes 1,000,000 result rows (200 parts of 5,000, 3 % of them error rows later retried) once into a
temporary folder, then measures, each in a fresh process so peak RSS is its own:

  report (Arrow)     benchpilot_runner.report.load + summarize         goal: <= 3 s, <= 500 MB
  report (0.1)       every row to a dict, dedupe and group in Python   (the baseline)
  resume state       sink.read_state: final case ids + attempt counts  (what a restarted run keeps)

Prints seconds and peak RSS for each, and the ratios. Not a test: figures, measured here.
    .venv/bin/python bench/results_scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_rows(folder: str, rows: int, per_part: int = 5000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchpilot_runner.sink import SCHEMA

    rng = random.Random(7)
    models = [f"sim/m{i}" for i in range(5)]
    prompts = ["baseline", "optimal", "cot", "flawed_tool_misuse"]
    now = dt.datetime.now(dt.timezone.utc)
    n = 0
    part = 0
    while n < rows:
        k = min(per_part, rows - n)
        ids = [f"{i:024x}" for i in range(n, n + k)]
        statuses = [rng.choice(("success", "partial", "failure")) if rng.random() > 0.03 else "error"
                    for _ in range(k)]
        cols = {
            "run": ["big"] * k, "namespace": ["default"] * k, "case_id": ids, "suite": ["workflow"] * k,
            "model": [models[i % 5] for i in range(n, n + k)], "prompt_type": [prompts[i % 4] for i in range(n, n + k)],
            "difficulty": ["easy"] * k, "task_type": ["simple_task"] * k, "instance": list(range(k)),
            "shard": [part % 16] * k, "attempt": [1] * k, "status": statuses,
            "score": [rng.random() for _ in range(k)], "error_type": [None] * k,
            "error_message": ["connection refused" if s == "error" else None for s in statuses],
            "latency_s": [rng.random() for _ in range(k)], "turns": [3] * k, "tool_calls": [2] * k,
            "prompt_tokens": [500] * k, "completion_tokens": [50] * k, "cost_usd": [0.0001] * k,
            "started_at": [now] * k, "finished_at": [now] * k, "details": [None] * k,
        }
        table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in SCHEMA}, schema=SCHEMA)
        shard_dir = os.path.join(folder, "default", "big", "uid-1", f"shard-{part % 16:05d}")
        os.makedirs(shard_dir, exist_ok=True)
        pq.write_table(table, os.path.join(shard_dir, f"part-00001-{part:05d}-bench.parquet"), compression="zstd")
        # the retried error rows: a later attempt with a final outcome
        errs = [i for i, s in enumerate(statuses) if s == "error"]
        if errs:
            retried = table.take(errs)
            retried = retried.set_column(SCHEMA.get_field_index("status"), "status",
                                         pa.array(["success"] * len(errs), pa.string()))
            retried = retried.set_column(SCHEMA.get_field_index("attempt"), "attempt",
                                         pa.array([2] * len(errs), pa.int32()))
            pq.write_table(retried, os.path.join(shard_dir, f"part-00002-{part:05d}-bench.parquet"))
        n += k
        part += 1


CHILD = {
    "arrow": """
from benchpilot_runner import report
s = report.summarize(report.load(FOLDER))
out = {"cases": s["total"], "final": s["final"], "dropped": s["duplicate_rows_dropped"]}
""",
    "dicts": """
import pyarrow as pa, pyarrow.parquet as pq, glob
from collections import defaultdict
tables = [pq.read_table(p) for p in sorted(glob.glob(FOLDER + "/**/part-*.parquet", recursive=True))]
raw = pa.concat_tables(tables).to_pylist()
best = {}
for row in raw:
    key = (row["namespace"], row["run"], row["case_id"])
    old = best.get(key)
    if old is None or (row["status"] != "error", row["attempt"]) > (old["status"] != "error", old["attempt"]):
        best[key] = row
groups = defaultdict(list)
for r in best.values():
    groups[(r["model"], r["prompt_type"])].append(r)
summary = {k: sum(1 for r in v if r["status"] == "success") / len(v) for k, v in groups.items()}
out = {"cases": len(best), "final": sum(1 for r in best.values() if r["status"] != "error"),
       "dropped": len(raw) - len(best)}
""",
    "resume": """
from benchpilot_runner import sink
import fsspec
st = sink.read_state(fsspec.filesystem("file"), FOLDER, recursive=True)
out = {"cases": len(st.done), "final": len(st.done), "dropped": len(st.tries)}
""",
}


def measure(kind: str, folder: str) -> dict:
    code = (f"import json, resource, time, sys\nFOLDER = {folder!r}\nt0 = time.perf_counter()\n" + CHILD[kind]
            + "\nout['seconds'] = time.perf_counter() - t0\n"
              "out['peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\nprint(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-results-") as folder:
        t0 = time.perf_counter()
        write_rows(folder, args.rows)
        print(f"wrote {args.rows} rows (+3 % retried) in {time.perf_counter() - t0:.1f}s")
        base = measure("dicts", folder)
        arrow = measure("arrow", folder)
        resume = measure("resume", folder)
    for name, r in (("report, 0.1 (dict per row)", base), ("report, Arrow", arrow), ("resume state", resume)):
        print(f"{name:28s} {r['seconds']:6.2f} s  peak RSS {r['peak_mib']:7.0f} MiB  cases {r['cases']}")
    assert base["cases"] == arrow["cases"] == args.rows and base["final"] == arrow["final"]
    print(f"report: {base['seconds'] / arrow['seconds']:.1f}x faster, "
          f"{base['peak_mib'] / arrow['peak_mib']:.1f}x less memory than 0.1 "
          f"(goal for 1,000,000 rows: <= 3 s and <= 500 MB)")


if __name__ == "__main__":
    main()
