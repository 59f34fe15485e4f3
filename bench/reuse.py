"""Reuse and rescore (issue 22): what a repeated run and a rescore cost against a first run.

1. Workflow: a CASES-case run (default 20,000; model ``follow`` of the fake endpoint, which replays
   each task's workflow over several turns) against the local fake endpoint (tests/servers/fake_llm.py,
   in this process, counting requests), then the same manifest under a new run name with
   ``--reuse-from`` the first's results. Printed: provider calls of each, wall time and peak RSS of
   each ``benchpilot run`` process (os.wait4), the ratios (goals: 0 calls, >= 20x faster, RSS not
   above the first's); and the transcripts' storage: the zstd Parquet bytes per case of the first
   run's parts with and without the ``transcript`` column (goal: transcript <= 2x the row without it).
2. Spider dev (972 questions, /work/shared/data/spider-dev): one run answered with the gold SQL, then
   ``benchpilot rescore`` under a scoring change (``suiteConfig.scoring: bird`` instead of ``spider``,
   through ``--manifest``) against the endpoint now refusing everything. Printed: calls during the
   rescore (goal 0), its wall time (goal <= 10 s), and whether every verdict was recomputed.

    .venv/bin/python bench/reuse.py [--cases 20000] [--latency-ms 0] [--skip-spider] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SPIDER = ROOT.parent / "shared" / "data" / "spider-dev"
BENCHPILOT = [sys.executable, "-m", "benchpilot_runner"]


def timed(*args: str) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS MiB, stderr tail) of one benchpilot process."""
    err = tempfile.TemporaryFile()
    t0 = time.monotonic()
    proc = subprocess.Popen([*BENCHPILOT, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    tail = err.read().decode(errors="replace")[-1500:]
    return proc.returncode, wall, usage.ru_maxrss / 1024, tail


def workflow_doc(base_url: str, name: str, cases: int, latency_ms: int = 0) -> dict:
    task_types = ["simple_task", "basic_task", "data_pipeline", "api_integration", "multi_stage_pipeline"]
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": name},
            "spec": {"endpoint": {"baseURL": base_url, "qps": 100000},
                     "matrix": {"models": [{"name": "agent", "model": f"slow-{latency_ms}" if latency_ms else "follow"}],
                                "promptTypes": ["baseline", "optimal"], "difficulties": ["easy"],
                                "taskTypes": task_types, "instances": max(1, cases // 10)},
                     "sharding": {"shards": 4, "concurrencyPerShard": 64},
                     "output": {"flushEveryRows": 2000, "flushEverySeconds": 10}}}


def part_bytes(root: Path) -> tuple[int, int, int, int]:
    """(rows, bytes of the parts as written, the same parts written without the transcript column as
    rows were written before it, the transcripts' JSON text)."""
    rows = full = bare = text = 0
    for part in root.rglob("part-*.parquet"):
        table = pq.read_table(part)
        rows += table.num_rows
        full += part.stat().st_size
        text += sum(len(t.encode()) for t in table.column("transcript").to_pylist() if t)
        buf = io.BytesIO()
        pq.write_table(table.drop_columns(["transcript"]), buf, compression="zstd")
        bare += len(buf.getvalue())
    return rows, full, bare, text


def bench_workflow(server, work: Path, cases: int, latency_ms: int) -> None:
    fake = server.fake
    first = work / "first.yaml"
    first.write_text(yaml.safe_dump(workflow_doc(server.base_url, "first", cases, latency_ms)))
    n0 = sum(fake.requests.values())
    code1, wall1, rss1, err1 = timed("run", str(first), "--output", str(work / "a"), "--no-progress")
    calls1 = sum(fake.requests.values()) - n0
    if code1:
        sys.exit(f"first run failed ({code1}): {err1}")
    again = work / "again.yaml"
    again.write_text(yaml.safe_dump(workflow_doc(server.base_url, "again", cases, latency_ms)))
    n1 = sum(fake.requests.values())
    code2, wall2, rss2, err2 = timed("run", str(again), "--output", str(work / "b"), "--no-progress",
                                     "--reuse-from", str(work / "a"))
    calls2 = sum(fake.requests.values()) - n1
    if code2:
        sys.exit(f"repeated run failed ({code2}): {err2}")
    rows, full, bare, text = part_bytes(work / "a")
    per_case, per_transcript = bare / rows, (full - bare) / rows
    print(f"workflow, {rows} cases (fake model {'follow' if not latency_ms else f'slow-{latency_ms}'}: "
          f"{calls1 / rows:.2f} requests a case, {latency_ms} ms an answer; 4 shards x 64 in flight)")
    print(f"  first run:            {calls1:7d} provider calls  {wall1:7.1f} s  peak RSS {rss1:6.1f} MiB")
    print(f"  repeated, reuse on:   {calls2:7d} provider calls  {wall2:7.1f} s  peak RSS {rss2:6.1f} MiB")
    print(f"  repeated/first: {wall1 / wall2:.1f}x faster (goal >= 20x), RSS {rss2 / rss1:.2f}x (goal <= 1), "
          f"calls {calls2} (goal 0)")
    print(f"  storage per case: row without transcript {per_case:.0f} B, transcript {per_transcript:.0f} B "
          f"({per_transcript / per_case:.2f}x the row; goal <= 2x), zstd Parquet as written "
          f"(the transcript's JSON text: {text / rows:.0f} B a case before compression)")


def spider_doc(base_url: str, scoring: str) -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "spider-dev"},
            "spec": {"suite": "text2sql", "suiteConfig": {"dataset": str(SPIDER), "scoring": scoring},
                     "endpoint": {"baseURL": base_url, "qps": 2000},
                     "matrix": {"models": [{"name": "t2s/gold", "model": "t2s.gold.mixed"}],
                                "promptTypes": ["zero_shot"], "instances": 400},
                     "sharding": {"shards": 1, "concurrencyPerShard": 32},
                     "output": {"flushEveryRows": 1000, "flushEverySeconds": 5}}}


def bench_spider(server, work: Path) -> None:
    fake = server.fake
    dev = json.loads((SPIDER / "dev.json").read_text())
    fake.sql_tables["gold"] = {(q["db_id"], q["question"].strip()): q["query"] for q in dev}
    path = work / "spider.yaml"
    path.write_text(yaml.safe_dump(spider_doc(server.url("spider"), "spider")))
    code, wall, _, err = timed("run", str(path), "--output", str(work / "s"), "--no-progress")
    if code:
        sys.exit(f"spider run failed ({code}): {err}")
    changed = work / "spider-bird.yaml"
    changed.write_text(yaml.safe_dump(spider_doc(server.url("spider"), "bird")))
    fake.limit("spider", 0, 3600)  # the endpoint now refuses every request
    seen = sum(1 for _, prefix, _ in fake.requests_log if prefix == "spider")
    code2, wall2, rss2, err2 = timed("rescore", str(work / "s"), "--output", str(work / "s2"), "--manifest",
                                     str(changed), "--no-progress")
    calls = sum(1 for _, prefix, _ in fake.requests_log if prefix == "spider") - seen
    rows = [r for p in (work / "s2").rglob("part-*.parquet") for r in pq.read_table(p).to_pylist()]
    rescored = sum(1 for r in rows if r["reused"] and r["status"] != "error")
    print(f"spider dev rescore under a scoring change (spider -> bird), {len(dev)} questions")
    print(f"  first run {wall:.1f} s; rescore exit {code2}: {calls} provider calls (goal 0), {wall2:.1f} s "
          f"(goal <= 10 s), peak RSS {rss2:.1f} MiB, {rescored}/{len(rows)} verdicts recomputed from transcripts")
    if code2:
        print(err2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--latency-ms", type=int, default=0,
                    help="the fake provider's time per answer (default 0: it answers at once)")
    ap.add_argument("--skip-spider", action="store_true")
    ap.add_argument("--skip-workflow", action="store_true")
    ap.add_argument("--keep", help="keep the results in this folder (default: a temporary one, removed)")
    args = ap.parse_args()
    from tests.servers.fake_llm import ServerThread

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-reuse-"))
    work.mkdir(parents=True, exist_ok=True)
    server = ServerThread().start()
    try:
        if not args.skip_workflow:
            bench_workflow(server, work, args.cases, args.latency_ms)
        if not args.skip_spider:
            if (SPIDER / "dev.json").is_file():
                bench_spider(server, work)
            else:
                print(f"spider dev rescore skipped: no data at {SPIDER}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
