"""`benchpilot shard` as a pod runs it: real S3 (SeaweedFS, moto), a real local LLM server, real signals."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchpilot_runner import manifest as L
from benchpilot_runner.contract import layout as S_
from benchpilot_runner.contract.cases import expand, shard_cases
from benchpilot_runner.contract.outcomes import ExitCode
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.suites.workflow import vocab as W
from tests.helpers import BENCHPILOT, ROOT, manifest, run_cli, wait_for
from tests.servers.fake_llm import EXPECTED_KEY
from tests.servers.s3 import free_port

pytestmark = pytest.mark.slow


class Shard:
    """One shard process with its own spec file, output prefix and health port."""

    def __init__(self, tmp: Path, doc: dict, *, shard: int = 0, env: dict | None = None):
        doc.setdefault("metadata", {})["uid"] = doc["metadata"].get("uid") or str(uuid.uuid4())
        self.spec = parse_manifest(doc)
        self.path = tmp / f"run-{uuid.uuid4().hex[:6]}.json"
        self.path.write_text(json.dumps(self.spec.to_resolved()))
        self.port = free_port()
        self.env = {**os.environ, "BENCHPILOT_SHARD": str(shard),
                    "BENCHPILOT_SHARDS": str(self.spec.sharding.shards),
                    "BENCHPILOT_HEALTH_HOST": "127.0.0.1", "BENCHPILOT_HEALTH_PORT": str(self.port), **(env or {})}
        self.shard = shard
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen([*BENCHPILOT, "shard", "--spec", str(self.path)], env=self.env, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return self.proc

    def run(self, timeout: float = 180) -> tuple[int, str]:
        self.start()
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def fs_exists(self, path: str) -> bool:
        import fsspec

        return fsspec.core.url_to_fs(self.spec.output.uri)[0].exists(path)

    @property
    def shard_dir(self) -> str:
        s = self.spec
        root = s.output.uri.split("://", 1)[1]
        return f"{root}/{s.namespace}/{s.name}/{s.uid}/shard-{self.shard:05d}"

    def cases_done(self) -> int:
        """Cases with a row so far, from the shard's /metrics (0 while it is not serving yet)."""
        return metric_cases_done(self.port)

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def metric_cases_done(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0
    found = re.search(r'^benchpilot_shard_cases\{[^}]*state="done"[^}]*\} ([0-9.e+]+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def read_parts(fs, shard_dir: str) -> dict[str, list[dict]]:
    fs.invalidate_cache()
    if not fs.exists(shard_dir):
        return {}
    out = {}
    for p in sorted(fs.ls(shard_dir, detail=False)):
        if p.rsplit("/", 1)[-1].startswith("part-"):
            with fs.open(p, "rb") as fh:
                out[p] = pq.read_table(fh).to_pylist()
    return out


def s3_doc(bucket: str, name: str, **spec) -> dict:
    doc = manifest(**spec)
    doc["metadata"]["name"] = name
    doc["spec"].setdefault("output", {})["uri"] = f"s3://{bucket}/results"
    return doc


def test_shard_writes_parts_and_manifests_to_s3(tmp_path, moto_s3):
    bucket = moto_s3.bucket("pod-basic")
    doc = s3_doc(bucket, "basic", sharding={"shards": 2, "concurrencyPerShard": 4})
    fs = moto_s3.fs()
    total = 0
    for shard in (0, 1):
        sh = Shard(tmp_path, json.loads(json.dumps(doc)) | {"metadata": {**doc["metadata"], "uid": "uid-1"}},
                   shard=shard, env=moto_s3.env())
        code, err = sh.run()
        assert code == 0, err[-3000:]
        rows = [r for part in read_parts(fs, sh.shard_dir).values() for r in part]
        expected = {c.case_id for c in shard_cases(sh.spec.matrix, shard, 2)}
        assert {r["case_id"] for r in rows} == expected and len(rows) == len(expected)
        assert {r["shard"] for r in rows} == {shard} and {r["attempt"] for r in rows} == {1}
        manifest_ = json.loads(fs.cat_file(f"{sh.shard_dir}/_SUCCESS"))
        assert manifest_["rows"] == len(expected) and manifest_["parts"]
        total += len(rows)
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert [e["msg"] for e in events if e["msg"].startswith("shard ")] == ["shard start", "shard finish"]
    run_dir = sh.shard_dir.rsplit("/", 1)[0]
    assert json.loads(fs.cat_file(f"{run_dir}/_SUCCESS"))["rows"] == total == sh.spec.total_cases


def test_sigkill_at_20_random_moments_loses_and_repeats_nothing(tmp_path, moto_s3):
    bucket = moto_s3.bucket("pod-kill")
    doc = s3_doc(bucket, "killme", sharding={"shards": 1, "concurrencyPerShard": 2},
                 output={"flushEveryRows": 3, "flushEverySeconds": 0.3},
                 simulation={"sim/k": {"accuracy": 0.7, "latencySeconds": 0.1}})
    doc["spec"]["matrix"].update(models=["sim/k"], promptTypes=["baseline", "optimal", "cot", "flawed_missing_step"],
                                 taskTypes=list(W.TASK_TYPES), instances=8)
    sh = Shard(tmp_path, doc, env=moto_s3.env())
    total = sh.spec.total_cases  # 160
    fs = moto_s3.fs()
    rng = random.Random(20)
    seen_counts = []
    for i in range(20):
        proc = sh.start()
        time.sleep(rng.uniform(0.5, 3.0))  # the random moment of the kill is the point of this test
        proc.kill()
        proc.communicate(timeout=30)
        parts = read_parts(fs, sh.shard_dir)
        ids = [r["case_id"] for rows in parts.values() for r in rows]
        assert len(ids) == len(set(ids)), f"after kill {i + 1}: a flushed case was run and written again"
        seen_counts.append(len(ids))
    assert seen_counts[-1] < total, "the kills should have interrupted the shard"
    assert seen_counts[-1] > 0, "progress survives kills"
    sh.env["BENCHPILOT_CONCURRENCY"] = "16"  # finish the rest quickly
    code, err = sh.run()
    assert code == 0, err[-3000:]
    parts = read_parts(fs, sh.shard_dir)
    ids = Counter(r["case_id"] for rows in parts.values() for r in rows)
    assert set(ids) == {c.case_id for c in expand(sh.spec.matrix)}
    assert max(ids.values()) == 1
    attempts = {S_.PART_RE.match(p.rsplit("/", 1)[-1]).group(1) for p in parts}
    assert len(attempts) > 5, "parts of many attempts, each attempt numbered apart"
    assert {r["attempt"] for rows in parts.values() for r in rows} == {1}, "every case final on its first try"


def test_s3_refusing_writes_for_30s_loses_no_row(tmp_path, seaweedfs):
    bucket = seaweedfs.bucket("pod-outage")
    doc = s3_doc(bucket, "outage", sharding={"shards": 1, "concurrencyPerShard": 2},
                 output={"flushEveryRows": 5, "flushEverySeconds": 1},
                 simulation={"sim/o": {"accuracy": 0.7, "latencySeconds": 0.08}})
    doc["spec"]["matrix"].update(models=["sim/o"], promptTypes=["baseline", "optimal"],
                                 taskTypes=list(W.TASK_TYPES), instances=16)
    sh = Shard(tmp_path, doc, env=seaweedfs.env())
    fs = seaweedfs.fs()
    proc = sh.start()
    try:
        wait_for(lambda: read_parts(fs, sh.shard_dir), timeout=60, what="the first part on S3")
        seaweedfs.stop()
        down_at = time.monotonic()
        wait_for(lambda: sh.health()[1].get("busy") is not None, timeout=10, what="health endpoint")
        time.sleep(30)  # the outage itself: S3 refuses every write for 30 s
        assert proc.poll() is None, "the shard must wait for storage, not give up"
        seaweedfs.start()
        _, err = proc.communicate(timeout=120)
    finally:
        if seaweedfs.proc is None:
            seaweedfs.start()
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert time.monotonic() - down_at >= 30
    assert "part write failed; rows kept, retrying" in err
    rows = [r for part in read_parts(fs, sh.shard_dir).values() for r in part]
    ids = Counter(r["case_id"] for r in rows)
    assert set(ids) == {c.case_id for c in expand(sh.spec.matrix)} and max(ids.values()) == 1


def openai_doc(tmp_path: Path, fake_llm, model: str, **spec) -> dict:
    doc = manifest(**spec)
    doc["metadata"]["name"] = "llm-" + model.replace("/", "-").lower()[:20]
    doc["spec"]["matrix"].update(models=[f"openai/{model}"], promptTypes=["optimal"], instances=2,
                                 taskTypes=["simple_task", "basic_task"])
    doc["spec"]["endpoint"] = {"baseURL": fake_llm.base_url, "qps": 200, "requestTimeoutSeconds": 5,
                               "maxRetries": 2, **doc["spec"].get("endpoint", {})}
    doc["spec"].setdefault("output", {})["uri"] = f"file://{tmp_path}/out"
    doc["spec"]["sharding"] = {"shards": 1, "concurrencyPerShard": 4}
    return doc


def local_rows(sh: Shard) -> list[dict]:
    import fsspec

    return [r for part in read_parts(fsspec.filesystem("file"), sh.shard_dir).values() for r in part]


def test_server_that_never_answers_ends_in_timeouts(tmp_path, fake_llm):
    doc = openai_doc(tmp_path, fake_llm, "hang", limits={"caseTimeoutSeconds": 2},
                     endpoint={"requestTimeoutSeconds": 60})
    sh = Shard(tmp_path, doc)
    t0 = time.monotonic()
    code, err = sh.run(timeout=60)
    assert code == int(ExitCode.INCOMPLETE), err[-3000:]  # timeouts are not results: the Job's next pod retries them
    assert "ended without a final outcome" in err
    rows = local_rows(sh)
    assert len(rows) == sh.spec.total_cases
    assert {r["status"] for r in rows} == {"timeout"}
    assert all(2.0 <= r["latency_s"] <= 2.0 + 1.0 for r in rows), [r["latency_s"] for r in rows]
    assert all("within 2s" in r["error_message"] for r in rows)
    assert time.monotonic() - t0 < 30
    assert err.count('"msg": "case failed; a rerun retries it"') == len(rows), "one log line per failed case"
    assert not sh.fs_exists(f"{sh.shard_dir}/_SUCCESS"), "no _SUCCESS for a shard without final outcomes"


@pytest.mark.parametrize("model", ["flaky429", "flaky500", "garbage-once"])
def test_transient_failures_are_retried(tmp_path, fake_llm, model):
    sh = Shard(tmp_path, openai_doc(tmp_path, fake_llm, model))
    code, err = sh.run(timeout=90)
    assert code == 0, err[-3000:]
    rows = local_rows(sh)
    assert {r["status"] for r in rows} <= {"success", "partial", "failure"}
    assert all(r["turns"] >= 1 for r in rows)
    if model == "flaky429":  # Retry-After: 1 honoured on every turn
        assert all(r["latency_s"] >= r["turns"] * 1.0 for r in rows)


def test_persistent_garbage_becomes_error_rows(tmp_path, fake_llm):
    before = fake_llm.fake.requests["garbage"]
    sh = Shard(tmp_path, openai_doc(tmp_path, fake_llm, "garbage"))
    code, err = sh.run(timeout=90)
    assert code == int(ExitCode.INCOMPLETE), err[-3000:]
    rows = local_rows(sh)
    assert {r["status"] for r in rows} == {"error"} and {r["error_type"] for r in rows} == {"bad_response"}
    assert fake_llm.fake.requests["garbage"] - before == len(rows) * 3, "1 try + maxRetries 2, per case"


def test_api_key_from_environment_never_logged(tmp_path, fake_llm):
    doc = openai_doc(tmp_path, fake_llm, "auth",
                     endpoint={"apiKeySecretRef": {"name": "llm-key", "key": "token"}, "apiKeyEnv": "LLM_KEY"})
    sh = Shard(tmp_path, doc, env={"LLM_KEY": EXPECTED_KEY})
    code, err = sh.run(timeout=60)
    assert code == 0, err[-3000:]
    assert {r["status"] for r in local_rows(sh)} <= {"success", "partial", "failure"}
    assert f"Bearer {EXPECTED_KEY}" in fake_llm.fake.auth_headers
    assert EXPECTED_KEY not in err and EXPECTED_KEY not in sh.path.read_text()

    wrong = Shard(tmp_path, openai_doc(tmp_path, fake_llm, "auth", endpoint={
        "apiKeySecretRef": {"name": "llm-key"}, "apiKeyEnv": "LLM_KEY"}), env={"LLM_KEY": "sk-wrong-secret-999"})
    code, err = wrong.run(timeout=60)
    rows = local_rows(wrong)
    # a refused key stops the endpoint after a few 401s: a configuration error naming it, cases left unrun
    assert code == 2 and {r["error_type"] for r in rows} <= {"auth_error"}, err[-2000:]
    assert len(rows) <= 4 and "refused the API key" in err and "'default'" in err
    assert all("401" in r["error_message"] for r in rows)
    assert "sk-wrong-secret-999" not in err + json.dumps([r["error_message"] for r in rows])

    missing = Shard(tmp_path, openai_doc(tmp_path, fake_llm, "auth", endpoint={
        "apiKeySecretRef": {"name": "llm-key"}, "apiKeyEnv": "LLM_KEY_UNSET"}))
    code, err = missing.run(timeout=60)
    assert code == 2 and "LLM_KEY_UNSET" in err


def test_healthz_turns_unhealthy_when_progress_stops(tmp_path, fake_llm):
    hang = 3
    doc = openai_doc(tmp_path, fake_llm, "hang", limits={"caseTimeoutSeconds": 120, "hangTimeoutSeconds": hang},
                     endpoint={"requestTimeoutSeconds": 100})
    sh = Shard(tmp_path, doc)
    proc = sh.start()
    try:
        status, body = wait_for(lambda: _try(sh.health), timeout=30, what="/healthz to answer")
        assert status == 200 and body["healthy"]
        healthy_at = time.monotonic()
        status, body = wait_for(lambda: (r := _try(sh.health)) and r[0] == 503 and r, timeout=hang + 10,
                                what="/healthz to turn unhealthy")
        assert time.monotonic() - healthy_at <= hang + 5
        assert body["stalled_s"] >= hang and body["busy"]
        probe = run_cli("healthcheck", "--url", f"http://127.0.0.1:{sh.port}/healthz")
        assert probe.returncode == 1 and '"healthy": false' in probe.stdout
    finally:
        proc.kill()
        proc.communicate()


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


def test_metrics_endpoint_serves_the_contract_names(tmp_path, fake_llm):
    doc = openai_doc(tmp_path, fake_llm, "slow-300", limits={"hangTimeoutSeconds": 60})
    doc["spec"]["matrix"]["instances"] = 6
    sh = Shard(tmp_path, doc)
    proc = sh.start()
    try:
        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{sh.port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return None
            return text if "benchpilot_cases_total{" in text and "benchpilot_llm_requests_total{" in text else None
        text = wait_for(scrape, timeout=60, what="metrics with finished cases")
    finally:
        _, err = proc.communicate(timeout=60)
    for name in ("benchpilot_cases_total", "benchpilot_case_seconds_bucket", "benchpilot_llm_requests_total",
                 "benchpilot_llm_request_seconds_bucket", "benchpilot_inflight_cases",
                 "benchpilot_last_progress_timestamp_seconds", "benchpilot_rows_flushed_total"):
        assert name in text, name
    requests = [ln for ln in text.splitlines() if ln.startswith("benchpilot_llm_requests_total{")]
    assert any('code="200"' in ln and 'model="openai/slow-300"' in ln for ln in requests), requests
    assert proc.returncode == 0, err[-2000:]


def test_sigterm_flushes_and_exits_within_10s(tmp_path, moto_s3):
    bucket = moto_s3.bucket("pod-term")
    doc = s3_doc(bucket, "term", sharding={"shards": 1, "concurrencyPerShard": 4},
                 output={"flushEveryRows": 1000, "flushEverySeconds": 600},
                 simulation={"sim/t": {"accuracy": 0.7, "latencySeconds": 0.1}})
    doc["spec"]["matrix"].update(models=["sim/t"], taskTypes=list(W.TASK_TYPES), instances=20)
    sh = Shard(tmp_path, doc, env=moto_s3.env())
    proc = sh.start()
    wait_for(lambda: sh.cases_done() >= 8, timeout=60, what="8 cases done (buffered: the flush thresholds are huge)")
    assert not read_parts(moto_s3.fs(), sh.shard_dir)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 143, err[-2000:]
    rows = [r for part in read_parts(moto_s3.fs(), sh.shard_dir).values() for r in part]
    assert 0 < len(rows) < sh.spec.total_cases, "what was done is flushed on SIGTERM"


@pytest.mark.parametrize("env,path_text,words", [
    ({"BENCHPILOT_SHARD": None}, None, ["BENCHPILOT_SHARD", "not set"]),
    ({"BENCHPILOT_SHARD": "5"}, None, ["shard 5 of 2"]),
    ({}, "{not json or yaml: [", ["not valid YAML"]),
    ({}, json.dumps({"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "x"},
                     "spec": {"matrix": {"models": ["sim/weak"], "promptTypes": ["nope"]}}}),
     ["spec.matrix.promptTypes[0]"]),
], ids=["no-shard", "shard-out-of-range", "bad-json", "bad-spec"])
def test_configuration_errors_exit_2(tmp_path, env, path_text, words):
    sh = Shard(tmp_path, manifest())
    if path_text is not None:
        sh.path.write_text(path_text)
    for k, v in env.items():
        if v is None:
            sh.env.pop(k, None)
        else:
            sh.env[k] = v
    code, err = sh.run(timeout=60)
    assert code == 2, err[-2000:]
    assert all(w in err for w in words), err[-2000:]


@pytest.mark.parametrize("command", ["shard", "run"])
def test_sigterm_exits_within_10s_while_storage_is_frozen(tmp_path, seaweedfs, command):
    """S3 accepts connections but never answers: the stop must not wait for it."""
    bucket = seaweedfs.bucket(f"frozen-{command}")
    doc = s3_doc(bucket, f"frozen-{command}", sharding={"shards": 1, "concurrencyPerShard": 4},
                 output={"flushEveryRows": 1000, "flushEverySeconds": 600},
                 simulation={"sim/t": {"accuracy": 0.7, "latencySeconds": 0.05}})
    doc["spec"]["matrix"].update(models=["sim/t"], taskTypes=list(W.TASK_TYPES), instances=40)
    sh = Shard(tmp_path, doc, env=seaweedfs.env())
    if command == "run":
        path = tmp_path / "m.yaml"
        path.write_text(json.dumps(doc))
        proc = subprocess.Popen([*BENCHPILOT, "run", str(path), "--no-progress", "--metrics-port", str(sh.port)],
                                env=sh.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    else:
        proc = sh.start()
    try:
        # started, some cases done and buffered (nothing flushed: the thresholds are huge)
        wait_for(lambda: sh.cases_done() >= 8 or proc.poll() is not None, timeout=60, what="8 cases done")
        assert proc.poll() is None
        seaweedfs.freeze()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        seaweedfs.thaw()
        proc.kill()
    assert took <= 10, f"exited {took:.1f}s after SIGTERM"
    assert proc.returncode == 143, err[-2000:]
    assert "not written" in err, "says what was not flushed"
