"""`benchpilot run` and `benchpilot report` as a user runs them: real processes, real files, real kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchpilot_runner import manifest as L
from benchpilot_runner.contract.cases import expand
from tests.bad_manifests import BAD, IDS
from tests.helpers import BENCHPILOT, EXAMPLES, ROOT, manifest, run_cli, wait_for, write_manifest

pytestmark = pytest.mark.slow


def parts_under(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def ids_in(parts: list[Path]) -> list[str]:
    return [cid for p in parts for cid in pq.read_table(p, columns=["case_id"]).column("case_id").to_pylist()]


def report_json(uri: str) -> dict:
    out = run_cli("report", uri, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_quickstart_then_rerun_does_nothing(tmp_path):
    out = tmp_path / "results"
    first = run_cli("run", str(EXAMPLES / "quickstart.yaml"), "--output", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Success by model × prompt type" in first.stdout
    summary = report_json(str(out))
    assert summary["total"] == summary["distinct_case_ids"] == 120
    assert summary["duplicate_rows_dropped"] == 0
    assert {g["model"] for g in summary["by_model_prompt_type"]} == {"sim/strong", "sim/weak"}
    assert sum(g["cases"] for g in summary["by_task_type"]) == 120
    run_dir = next(out.glob("default/quickstart/*"))
    assert (run_dir / "_SUCCESS").exists()
    assert json.loads((run_dir / "shard-00001" / "_SUCCESS").read_text())["rows"] == 60
    parts_before = parts_under(out)

    second = run_cli("run", str(EXAMPLES / "quickstart.yaml"), "--output", str(out))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "0 cases run now, 120 were already done" in second.stderr
    assert parts_under(out) == parts_before

    png = tmp_path / "rates.png"
    plotted = run_cli("report", str(out), "--plot", str(png))
    assert plotted.returncode == 0, plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def _slow_manifest(tmp_path: Path, name: str) -> Path:
    doc = manifest(sharding={"shards": 2, "concurrencyPerShard": 3},
                   output={"flushEveryRows": 4, "flushEverySeconds": 0.5},
                   simulation={"sim/slow-a": {"accuracy": 0.8, "latencySeconds": 0.06},
                               "sim/slow-b": {"accuracy": 0.5, "latencySeconds": 0.06}})
    doc["metadata"]["name"] = name
    doc["spec"]["matrix"].update(models=["sim/slow-a", "sim/slow-b"], instances=5,
                                 taskTypes=["simple_task", "basic_task", "data_pipeline"])
    return write_manifest(tmp_path / f"{name}.yaml", doc)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_sweep_resumes_exactly_once(tmp_path, sig):
    path = _slow_manifest(tmp_path, "resume")
    total = L.load_manifest(str(path)).total_cases  # 120
    out = tmp_path / "out"
    proc = subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(ids_in(parts_under(out))) >= total // 3 if parts_under(out) else False,
                 timeout=60, what="a third of the cases to be written")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err[-2000:]
        assert "run the same command again to resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    before = ids_in(parts_under(out))
    assert len(before) == len(set(before)) < total, "killed half-way: some but not all written, none twice"

    again = run_cli("run", str(path), "--output", str(out))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{total - len(before)} cases run now, {len(before)} were already done" in again.stderr
    after = ids_in(parts_under(out))
    assert Counter(after).most_common(1)[0][1] == 1, "no case id written twice"
    assert set(after) == {c.case_id for c in expand(L.load_manifest(str(path)).matrix)}
    # the second run wrote only new parts (attempt 2) and never a case that attempt 1 had written
    second = [p for p in parts_under(out) if p.name.startswith("part-00002-")]
    assert second and not set(ids_in(second)) & set(before)
    summary = report_json(str(out))
    assert summary["total"] == summary["distinct_case_ids"] == total


def test_rerun_with_other_shard_count_runs_only_the_missing(tmp_path):
    path = _slow_manifest(tmp_path, "reshard")
    out = tmp_path / "out"
    doc_small = L.load_manifest(str(path))
    first = run_cli("run", str(path), "--output", str(out), "--shards", "3", "--no-progress")
    assert first.returncode == 0, first.stderr[-1500:]
    second = run_cli("run", str(path), "--output", str(out), "--shards", "5", "--no-progress")
    assert second.returncode == 0, second.stderr[-1500:]
    assert f"0 cases run now, {doc_small.total_cases} were already done" in second.stderr


@pytest.mark.parametrize("bad", BAD, ids=IDS)
def test_bad_manifest_exits_2_with_one_message(tmp_path, bad):
    doc = manifest()
    bad.change(doc)
    out = run_cli("run", str(write_manifest(tmp_path / "bad.yaml", doc)), "--output", str(tmp_path / "o"))
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and all(w in lines[0] for w in (bad.path, *bad.words)), out.stderr
    assert not (tmp_path / "o").exists()


def test_malformed_yaml_and_missing_file_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [\n")
    out = run_cli("run", str(bad))
    assert out.returncode == 2 and "not valid YAML" in out.stderr
    missing = run_cli("run", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot be read" in missing.stderr


def test_unwritable_output_fails_before_any_case(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = write_manifest(tmp_path / "m.yaml", manifest())
    t0 = time.monotonic()
    out = run_cli("run", str(path), "--output", str(blocker / "results"))
    assert out.returncode == 2
    assert "is not writable" in out.stderr and str(blocker) in out.stderr
    assert "sweep start" not in out.stderr and time.monotonic() - t0 < 30


def test_report_on_missing_uri_is_a_clear_error(tmp_path):
    out = run_cli("report", str(tmp_path / "nothing"))
    assert out.returncode == 2 and "no results at" in out.stderr


def test_report_dedupes_a_part_written_twice(tmp_path):
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "m.yaml", manifest())
    assert run_cli("run", str(path), "--output", str(out), "--no-progress").returncode == 0
    part = parts_under(out)[0]
    copy = part.with_name("part-00009-00000.parquet")
    copy.write_bytes(part.read_bytes())
    summary = report_json(str(out))
    n = L.load_manifest(str(path)).total_cases
    assert summary["total"] == summary["distinct_case_ids"] == n
    assert summary["duplicate_rows_dropped"] == pq.read_metadata(part).num_rows > 0
    os.remove(copy)


def test_report_says_when_a_part_cannot_be_read(tmp_path):
    out = tmp_path / "out"
    path = write_manifest(tmp_path / "m.yaml", manifest())
    assert run_cli("run", str(path), "--output", str(out), "--no-progress").returncode == 0
    broken = parts_under(out)[0].with_name("part-00009-00000-broken.parquet")
    broken.write_bytes(b"PAR1 not really")
    rep = run_cli("report", str(out), "--format", "json")
    assert rep.returncode == 1 and "could not be read" in rep.stderr and broken.name in rep.stderr
    assert json.loads(rep.stdout)["unreadable_parts"] == [str(broken)]
