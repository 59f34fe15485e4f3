"""Final writes against real S3 behind a fault-injecting proxy, and a writer killed with SIGKILL whose
zombie is still there when the same run starts again."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from benchpilot_runner.results import procs
from benchpilot_runner.contract.outcomes import ExitCode
from tests.helpers import BENCHPILOT, ROOT, manifest, run_cli, wait_for, write_manifest
from tests.servers.s3_faults import S3FaultProxy

pytestmark = pytest.mark.slow


def twenty_cases(name: str, **spec) -> dict:
    doc = manifest(sharding={"shards": 2, "concurrencyPerShard": 4}, **spec)
    doc["metadata"]["name"] = name
    doc["spec"]["matrix"].update(models=["sim/strong"], promptTypes=["baseline", "optimal"], difficulties=["easy"],
                                 taskTypes=["simple_task", "basic_task"], instances=5)
    return doc


def test_a_store_that_keeps_refusing_the_marker_ends_the_run_within_its_budget(tmp_path, moto_s3):
    """S3 answers 503 SlowDown to every _SUCCESS PUT and to nothing else: the run writes every row, gives
    the marker its budget (the client's own retries counted), exits 1 saying the rows are safe, and a
    rerun writes the markers without running a case again. (Before: not done after 300 s.)"""
    bucket = moto_s3.bucket("marker-refused")
    proxy = S3FaultProxy(moto_s3.endpoint).start()
    try:
        path = write_manifest(tmp_path / "m.yaml", twenty_cases("marker"))
        uri = f"s3://{bucket}/results"
        env = {**moto_s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint, "BENCHPILOT_FINAL_WRITE_SECONDS": "4"}
        t0 = time.monotonic()
        first = run_cli("run", str(path), "--output", uri, "--no-progress", env=env, timeout=170)
        elapsed = time.monotonic() - t0
        assert first.returncode == 1, first.stderr[-3000:]
        assert elapsed < 60, f"the run took {elapsed:.0f}s to give up on its markers (budget 4s)"
        said = [line for line in first.stderr.splitlines() if "every result row is written" in line]
        assert len(said) == 1 and "_SUCCESS marker of shards 0, 1" in said[0], first.stderr[-3000:]
        assert "the rows are safe: run the same command again to write it" in said[0]
        assert proxy.seen[("PUT", "refused")] >= 2 and all(p.endswith("/_SUCCESS") for p in proxy.refused_paths)
        fs = moto_s3.fs()
        rows = [p for p in fs.find(f"{bucket}/results") if "/part-" in p]
        assert rows and not [p for p in fs.find(f"{bucket}/results") if p.endswith("_SUCCESS")]
        summary = run_cli("report", uri, "--format", "json", env=moto_s3.env())
        assert '"final": 20' in summary.stdout.replace(" ", "").replace('"final":20', '"final": 20'), summary.stdout

        proxy.enabled = False  # the store recovered
        again = run_cli("run", str(path), "--output", uri, "--no-progress", env=env, timeout=170)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "0 cases run now, 20 were already done" in again.stderr
        fs.invalidate_cache()
        markers = [p for p in fs.find(f"{bucket}/results") if p.endswith("_SUCCESS")]
        assert len(markers) == 3, markers  # two shards' and the run's
    finally:
        proxy.stop()


def test_a_bad_final_write_budget_is_refused_before_any_case(tmp_path):
    path = write_manifest(tmp_path / "m.yaml", twenty_cases("budget"))
    out = tmp_path / "out"
    done = run_cli("run", str(path), "--output", str(out), "--no-progress",
                   env={"BENCHPILOT_FINAL_WRITE_SECONDS": "soon"})
    assert done.returncode == int(ExitCode.CONFIG_ERROR)
    assert "BENCHPILOT_FINAL_WRITE_SECONDS" in done.stderr and "'soon'" in done.stderr
    assert not list(out.rglob("part-*.parquet"))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_run_killed_with_sigkill_runs_again_at_once_while_its_zombie_remains(tmp_path):
    doc = twenty_cases("killed", simulation={"sim/strong": {"accuracy": 0.9, "latencySeconds": 0.1}},
                       output={"flushEveryRows": 2, "flushEverySeconds": 0.5})
    path = write_manifest(tmp_path / "k.yaml", doc)
    out = tmp_path / "out"
    first = subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(out), "--no-progress"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: list(out.rglob("_writers/*.json")), timeout=60, what="the first run's lease")
        os.kill(first.pid, signal.SIGKILL)  # and this test, its parent, does not reap it yet
        wait_for(lambda: (procs._stat_fields(first.pid) or ["?"])[0] == "Z", timeout=20, what="a zombie")
        again = run_cli("run", str(path), "--output", str(out), "--no-progress")
        assert again.returncode == 0 and "another writer" not in again.stderr, again.stderr[-2000:]
        assert "were already done" in again.stderr
    finally:
        first.kill()
        first.wait()
