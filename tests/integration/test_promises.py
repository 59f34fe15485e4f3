"""Nothing lost, nothing silent, nothing leaked — `benchpilot run` against a hostile world.

Each test is a scenario that broke an earlier version: an endpoint that is down, a gateway's 429
window, a server that echoes the key, a second writer, a 750,000-case matrix, mixed settings under
one root, more workers than cases, malformed answers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchpilot_runner.contract.cases import expand
from benchpilot_runner.contract.outcomes import ExitCode, FINAL_STATUSES
from benchpilot_runner.contract.parse import parse_manifest

from benchpilot_runner.suites.workflow import vocab as W
from tests.helpers import BENCHPILOT, ROOT, manifest, run_cli, wait_for, write_manifest
from tests.servers.s3 import free_port

pytestmark = pytest.mark.slow


def rows_under(root: Path) -> list[dict]:
    return [r for p in sorted(root.rglob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def llm_doc(tmp_path: Path, base_url: str, model: str, *, name: str, instances: int = 4, **spec) -> Path:
    doc = manifest(**spec)
    doc["metadata"]["name"] = name
    doc["spec"]["matrix"].update(models=[f"openai/{model}", "sim/strong"], promptTypes=["optimal"],
                                 instances=instances, taskTypes=["simple_task", "basic_task"])
    doc["spec"]["endpoint"] = {"baseURL": base_url, "requestTimeoutSeconds": 3, "maxRetries": 1,
                               **doc["spec"].get("endpoint", {})}
    doc["spec"]["sharding"] = {"shards": 2, "concurrencyPerShard": 3}
    return write_manifest(tmp_path / f"{name}.yaml", doc)


def test_endpoint_down_stops_early_then_a_rerun_retries_only_what_is_missing(tmp_path, fake_llm):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    path = llm_doc(tmp_path, dead, "follow", name="down", instances=30)  # 60 LLM cases + 60 simulated
    spec = parse_manifest(__import__("yaml").safe_load(path.read_text()))
    out = tmp_path / "out"
    first = run_cli("run", str(path), "--output", str(out), "--no-progress", env={"BENCHPILOT_API_KEY": ""})
    assert first.returncode == int(ExitCode.INCOMPLETE), first.stderr[-2000:]
    assert "never answered" in first.stderr and "cases not run" in first.stderr
    assert "no API key" in first.stderr, "a missing key variable is warned about"
    rows = rows_under(out)
    llm_rows = [r for r in rows if r["model"] == "openai/follow"]
    assert len(llm_rows) <= 12, "stopped early instead of burning all 60 cases"
    assert {r["status"] for r in llm_rows} <= {"error"} and {r["attempt"] for r in llm_rows} == {1}
    assert len([r for r in rows if r["model"] == "sim/strong"]) == 60, "other models' cases finish"
    assert not list(out.rglob("_SUCCESS")) or all("shard-" in str(p) for p in out.rglob("_SUCCESS"))
    assert not (next(out.glob("default/down/*")) / "_SUCCESS").exists(), "never a run _SUCCESS in silence"
    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    assert summary["retryable"] == len(llm_rows)

    again_path = llm_doc(tmp_path, fake_llm.base_url, "follow", name="down", instances=30)
    again = run_cli("run", str(again_path), "--output", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{60} cases run now, {60} were already done" in again.stderr
    rows = rows_under(out)
    final = [r for r in rows if r["status"] in FINAL_STATUSES]
    assert Counter(r["case_id"] for r in final).most_common(1)[0][1] == 1, "one final row per case"
    assert {r["case_id"] for r in final} == {c.case_id for c in expand(spec.matrix)}
    retried = {r["case_id"] for r in llm_rows}
    assert {r["attempt"] for r in final if r["case_id"] in retried} == {2}, "the retry is attempt 2"
    assert (next(out.glob("default/down/*")) / "_SUCCESS").exists()
    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    assert summary["total"] == summary["final"] == 120 and summary["retryable"] == 0


def test_a_gateways_429_window_is_waited_out(tmp_path, fake_llm):
    """The wait is only in llm_provider-retry-after, and the window is longer than 3 retries' backoff."""
    path = llm_doc(tmp_path, fake_llm.base_url, "window-5", name="window", instances=2)
    out = tmp_path / "out"
    t0 = time.monotonic()
    done = run_cli("run", str(path), "--output", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.monotonic() - t0 >= 5
    rows = rows_under(out)
    assert {r["status"] for r in rows} <= set(FINAL_STATUSES)
    assert fake_llm.fake.requests["window-5"] < 60, "waited as told, did not hammer the gateway"


def test_an_echoed_api_key_appears_nowhere(tmp_path, fake_llm):
    canary = "canaryKEY7q2w9e4r1t8y"
    path = llm_doc(tmp_path, fake_llm.base_url, "echo401", name="canary", instances=6)
    out = tmp_path / "out"
    port = free_port()
    proc = subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(out), "--no-progress",
                             "--metrics-port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**__import__("os").environ,
                                                                     "BENCHPILOT_API_KEY": canary})
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr[-2000:]
    assert "refused the API key" in stderr
    assert f"Bearer {canary}" in fake_llm.fake.auth_headers, "the key was sent, and echoed back"
    rows = rows_under(out)
    assert rows and any(r["error_type"] == "auth_error" for r in rows), "the 401s were recorded"
    assert any("REDACTED" in (r["error_message"] or "") for r in rows), "the echo was there, and scrubbed"
    texts = [stdout, stderr, json.dumps(rows, default=str)]
    texts += [p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()]
    assert not any(canary in t for t in texts)
    llm_rows = [r for r in rows if r["model"] == "openai/echo401"]
    assert len(llm_rows) < 12, "a refused key is not retried case after case"


def test_a_second_writer_is_refused_and_no_row_is_lost(tmp_path):
    doc = manifest(sharding={"shards": 2, "concurrencyPerShard": 2},
                   output={"flushEveryRows": 3, "flushEverySeconds": 0.5},
                   simulation={"sim/slow": {"accuracy": 0.7, "latencySeconds": 0.05}})
    doc["metadata"]["name"] = "writers"
    doc["spec"]["matrix"].update(models=["sim/slow"], instances=20)
    path = write_manifest(tmp_path / "w.yaml", doc)
    out = tmp_path / "out"
    first = subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(out), "--no-progress"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: list(out.rglob("_writers/*.json")), timeout=30, what="the first writer's lease")
        second = run_cli("run", str(path), "--output", str(out), "--no-progress")
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert second.returncode == 2 and "another writer" in second.stderr, second.stderr[-1500:]
    assert first.returncode == 0, err[-1500:]
    ids = Counter(r["case_id"] for r in rows_under(out))
    assert len(ids) == parse_manifest(doc).total_cases and max(ids.values()) == 1
    assert not list(out.rglob("_writers/*.json")), "a clean exit releases its lease"


def test_a_750000_case_matrix_starts_at_once_and_stops_at_once(tmp_path):
    doc = manifest(sharding={"shards": 16, "concurrencyPerShard": 2},
                   output={"flushEveryRows": 1, "flushEverySeconds": 1})
    doc["metadata"]["name"] = "huge"
    doc["spec"]["matrix"] = {"models": ["sim/oracle", "sim/strong", "sim/medium", "sim/weak", "sim/random"],
                             "promptTypes": list(W.PROMPT_TYPES), "difficulties": list(W.DIFFICULTIES),
                             "taskTypes": list(W.TASK_TYPES), "instances": 1000}
    assert parse_manifest(doc).total_cases == 750_000
    path = write_manifest(tmp_path / "huge.yaml", doc)
    out = tmp_path / "out"
    proc = subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(out), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = time.monotonic()
        wait_for(lambda: any(out.rglob("part-*.parquet")), timeout=30, what="the first part")
        first_part = time.monotonic() - started
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        stop_s = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-1500:]
    assert stop_s < 5, f"SIGINT took {stop_s:.1f}s"
    # python start-up and imports take ~2 s here; the cases themselves must start within 2 s of that
    assert first_part < 6, f"first part after {first_part:.1f}s"


def test_report_never_merges_results_of_different_settings(tmp_path):
    out = tmp_path / "out"
    for rate in (0.8, 0.5):
        doc = manifest()
        doc["spec"]["matrix"]["toolSuccessRate"] = rate
        path = write_manifest(tmp_path / f"m{rate}.yaml", doc)
        assert run_cli("run", str(path), "--output", str(out), "--no-progress").returncode == 0
    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    assert summary["warning"] and len(summary["result_sets"]) == 2
    n = parse_manifest(manifest()).total_cases
    assert summary["total"] == 2 * n and all(s["cases"] == n for s in summary["result_sets"])
    assert {g["uid"] for g in summary["by_model_prompt_type"]} == {s["uid"] for s in summary["result_sets"]}
    table = run_cli("report", str(out))
    assert "warning" in table.stdout and "result set" in table.stdout


def test_never_more_workers_than_cases(tmp_path):
    doc = manifest(sharding={"shards": 400, "concurrencyPerShard": 4096})
    doc["metadata"]["name"] = "wide"
    doc["spec"]["matrix"].update(models=["sim/oracle", "sim/weak"], promptTypes=["baseline", "optimal"],
                                 difficulties=["easy", "medium"], taskTypes=list(W.TASK_TYPES), instances=10)
    path = write_manifest(tmp_path / "wide.yaml", doc)
    # the run's own peak RSS (VmHWM of its memory map), reported by the process itself: ru_maxrss would
    # carry the pytest parent's RSS over the fork, and RUSAGE_CHILDREN other tests' children
    code = ("import re, sys; from benchpilot_runner.cli import main; c = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print('MAXRSS', hwm, file=sys.stderr); sys.exit(c)")
    done = subprocess.run([sys.executable, "-c", code, "run", str(path), "--output", str(tmp_path / "out"),
                           "--no-progress"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-1500:]
    peak_mib = int(done.stderr.rsplit("MAXRSS", 1)[1].split()[0]) / 1024
    assert peak_mib < 600, f"peak RSS {peak_mib:.0f} MiB for 400 cases"


def test_malformed_answers_are_retried_never_stored_as_exceptions(tmp_path, fake_llm):
    path = llm_doc(tmp_path, fake_llm.base_url, "badshape-once", name="badshape", instances=3)
    out = tmp_path / "out"
    done = run_cli("run", str(path), "--output", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = rows_under(out)
    assert {r["status"] for r in rows} <= set(FINAL_STATUSES)
    assert not any(word in json.dumps(rows, default=str) for word in ("AttributeError", "ValueError", "TypeError"))
