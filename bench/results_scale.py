"""Reading big results: `report` over 1,000,000 rows with every statistic, its HTML page, and resume.

Writes 1,000,000 result rows once into a temporary folder — a real matrix: 5 models × 4 prompt types ×
3 difficulties × 5 task types × instances, success depending on model, prompt type and an item effect,
200 parts of 5,000, 3 % of them error rows later retried — then measures, each in a fresh process so
peak RSS is its own:

  report before          the report of the commit before intervals (no statistics): the baseline
  report, all stats      load + summarize with intervals, pairs, robustness, cost, case list; the JSON
                                                                   goal: <= 3 s, <= 500 MB
  report --html          the same, written as the HTML page        goal: <= 20 MB
  report, 0.1            every row to a dict, dedupe and group in Python
  resume state           results.resume.read_state: final case ids + attempt counts  (what a restarted run keeps)
  the page in Chromium   load time of the HTML (Navigation Timing)  goal: <= 3 s

Prints seconds and peak RSS for each, and the ratios. Not a test: figures, measured here.
    .venv/bin/python bench/results_scale.py [--rows 1000000] [--no-dicts] [--no-browser]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE_COMMIT = "da2db92"  # the last commit whose report had no statistics
MODELS = {f"sim/m{i}": a for i, a in enumerate((1.5, 1.0, 0.5, 0.5, -0.5))}
PROMPTS = {"optimal": 0.5, "baseline": 0.0, "cot": 0.3, "flawed_tool_misuse": -0.6}
DIFFICULTIES = ("easy", "medium", "hard")
TASKS = ("simple_task", "basic_task", "data_pipeline", "api_integration", "multi_stage_pipeline")


def _cases(rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The matrix's first ``rows`` positions (instance innermost, as spec.case_at orders them)."""
    cells = len(MODELS) * len(PROMPTS) * len(DIFFICULTIES) * len(TASKS)
    instances = -(-rows // cells)
    pos = np.arange(rows)
    rest, inst = np.divmod(pos, instances)
    rest, task = np.divmod(rest, len(TASKS))
    model, rest = np.divmod(rest, len(PROMPTS) * len(DIFFICULTIES))
    prompt, diff = np.divmod(rest, len(DIFFICULTIES))
    item = (diff * len(TASKS) + task) * instances + inst
    u = rng.normal(0, 1.2, len(DIFFICULTIES) * len(TASKS) * instances)
    eta = np.array(list(MODELS.values()))[model] + np.array(list(PROMPTS.values()))[prompt] + u[item]
    draw = rng.random(rows)
    p = 1 / (1 + np.exp(-eta))
    status = np.where(draw < p, 0, np.where(draw < p + (1 - p) * 0.3, 1, 2))  # success, partial, failure
    status[rng.random(rows) < 0.03] = 3  # error (retried later)
    return {"model": model, "prompt": prompt, "diff": diff, "task": task, "inst": inst, "status": status,
            "score": np.where(status == 0, 1.0, np.where(status == 1, 0.5 + 0.4 * rng.random(rows), 0.0)),
            "latency": rng.random(rows)}


def write_rows(folder: str, rows: int, per_part: int = 5000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchpilot_runner.results.rows import SCHEMA

    rng = np.random.default_rng(7)
    c = _cases(rows, rng)
    names = {"model": list(MODELS), "prompt": list(PROMPTS), "diff": list(DIFFICULTIES), "task": list(TASKS),
             "status": ["success", "partial", "failure", "error"]}
    now = dt.datetime.now(dt.timezone.utc)
    for part, n in enumerate(range(0, rows, per_part)):
        sl = slice(n, min(rows, n + per_part))
        k = sl.stop - n
        status = np.array(names["status"], dtype=object)[c["status"][sl]]
        cols = {
            "run": ["big"] * k, "namespace": ["default"] * k, "case_id": [f"{i:024x}" for i in range(n, n + k)],
            "suite": ["workflow"] * k, "model": np.array(names["model"])[c["model"][sl]].tolist(),
            "prompt_type": np.array(names["prompt"])[c["prompt"][sl]].tolist(),
            "difficulty": np.array(names["diff"])[c["diff"][sl]].tolist(),
            "task_type": np.array(names["task"])[c["task"][sl]].tolist(), "instance": c["inst"][sl].tolist(),
            "shard": [part % 16] * k, "attempt": [1] * k, "status": status.tolist(), "score": c["score"][sl].tolist(),
            "error_type": ["ConnectionError" if s == "error" else None for s in status],
            "error_message": ["connection refused" if s == "error" else None for s in status],
            "latency_s": c["latency"][sl].tolist(), "turns": [3] * k, "tool_calls": [2] * k,
            "prompt_tokens": [500] * k, "completion_tokens": [50] * k, "cost_usd": [0.0001] * k,
            "started_at": [now] * k, "finished_at": [now] * k, "details": [None] * k,
        }
        table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in SCHEMA}, schema=SCHEMA)
        shard_dir = os.path.join(folder, "default", "big", "uid-1", f"shard-{part % 16:05d}")
        os.makedirs(shard_dir, exist_ok=True)
        pq.write_table(table, os.path.join(shard_dir, f"part-00001-{part:05d}-bench.parquet"), compression="zstd")
        errs = np.flatnonzero(status == "error")  # the retried error rows: a later attempt with a final outcome
        if len(errs):
            retried = table.take(errs)
            retried = retried.set_column(SCHEMA.get_field_index("status"), "status",
                                         pa.array(["success"] * len(errs), pa.string()))
            retried = retried.set_column(SCHEMA.get_field_index("attempt"), "attempt",
                                         pa.array([2] * len(errs), pa.int32()))
            pq.write_table(retried, os.path.join(shard_dir, f"part-00002-{part:05d}-bench.parquet"))


def baseline_module(folder: str) -> str:
    """The report module of BASELINE_COMMIT, importable as ``report_before`` from ``folder``."""
    text = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:runner-image/src/benchpilot_runner/report.py"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
    # the modules it imported have moved since: point its imports at where the same names live now
    text = text.replace("from .sink import PART_RE, list_parts, open_uri, read_part",
                        "from benchpilot_runner.contract.layout import PART_RE\n"
                        "from benchpilot_runner.results.rows import list_parts, read_part\n"
                        "from benchpilot_runner.results.store import open_uri").replace(
        "from .spec import", "from benchpilot_runner.contract.outcomes import")
    with open(os.path.join(folder, "report_before.py"), "w") as fh:
        fh.write(text)
    return folder


CHILD = {
    "before": """
import sys; sys.path.insert(0, MODULES)
import report_before as report
s = report.summarize(report.load(FOLDER))
out = {"cases": s["total"], "final": s["final"], "dropped": s["duplicate_rows_dropped"]}
""",
    "stats": """
from benchpilot_runner import report
s = report.summarize(report.load(FOLDER), cases=1000)
text = report.to_json(s)
out = {"cases": s["total"], "final": s["final"], "dropped": s["duplicate_rows_dropped"], "json_bytes": len(text),
       "pairs": sum(len(c["pairs"]) for c in s["comparisons"]), "robustness": sum(len(b["rows"]) for b in s["robustness"]),
       "listed": s["cases"]["listed"]}
""",
    "html": """
from benchpilot_runner import report
s = report.summarize(report.load(FOLDER), cases=1000)
report.write_html(s, HTML)
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
from benchpilot_runner.results.resume import read_state
import fsspec
st = read_state(fsspec.filesystem("file"), FOLDER, recursive=True)
out = {"cases": len(st.done), "final": len(st.done), "dropped": len(st.tries)}
""",
}


def measure(kind: str, folder: str, modules: str = "", html: str = "") -> dict:
    code = (f"import json, resource, time, sys\nFOLDER = {folder!r}\nMODULES = {modules!r}\nHTML = {html!r}\n"
            "t0 = time.perf_counter()\n" + CHILD[kind]
            + "\nout['seconds'] = time.perf_counter() - t0\n"
              "out['peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\nprint(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def browser_load_seconds(path: str) -> float:
    """Chromium (headless, Debian's chromium + chromedriver): the page's load time by Navigation Timing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tempfile.mkdtemp(prefix='bench-chromium-')}"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get("file://" + path)
        return driver.execute_script("var t = performance.getEntriesByType('navigation')[0];"
                                     "return t.loadEventEnd / 1000;")
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--no-dicts", action="store_true", help="skip the slow dict-per-row baseline")
    ap.add_argument("--no-browser", action="store_true", help="skip opening the page in Chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-results-") as folder:
        t0 = time.perf_counter()
        write_rows(os.path.join(folder, "rows"), args.rows)
        print(f"wrote {args.rows} rows (+3 % retried) in {time.perf_counter() - t0:.1f}s")
        rows, html = os.path.join(folder, "rows"), os.path.join(folder, "report.html")
        runs = {"before": measure("before", rows, baseline_module(folder)), "stats": measure("stats", rows),
                "html": measure("html", rows, html=html)}
        if not args.no_dicts:
            runs["dicts"] = measure("dicts", rows)
        runs["resume"] = measure("resume", rows)
        size = os.path.getsize(html)
        page = None if args.no_browser else browser_load_seconds(html)
    names = {"before": f"report before ({BASELINE_COMMIT})", "stats": "report, all statistics + JSON",
             "html": "report --html", "dicts": "report, 0.1 (dict per row)", "resume": "resume state"}
    for key, r in runs.items():
        print(f"{names[key]:32s} {r['seconds']:6.2f} s  peak RSS {r['peak_mib']:7.0f} MiB  cases {r['cases']}")
    st, before = runs["stats"], runs["before"]
    assert st["cases"] == before["cases"] == args.rows and st["final"] == before["final"]
    print(f"statistics: {st['pairs']} model pairs, {st['robustness']} robustness rows, {st['listed']} cases listed; "
          f"JSON {st['json_bytes'] / 1e6:.2f} MB")
    print(f"all statistics cost {st['seconds'] / before['seconds']:.2f}x the time and {st['peak_mib'] / before['peak_mib']:.2f}x "
          f"the peak memory of the report before them (goal for 1,000,000 rows: <= 3 s and <= 500 MB)")
    print(f"HTML page {size / 1e6:.2f} MB (goal <= 20 MB)" + ("" if page is None else
                                                               f"; opens in Chromium in {page:.2f} s (goal <= 3 s)"))
    if "dicts" in runs:
        print(f"against 0.1: {runs['dicts']['seconds'] / st['seconds']:.1f}x faster, "
              f"{runs['dicts']['peak_mib'] / st['peak_mib']:.1f}x less memory")


if __name__ == "__main__":
    main()
