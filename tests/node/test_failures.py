"""Failures the real node stages on its own: a hung runner killed by its liveness probe, a real OOM
kill, a Job's deadline, a deleted pod; each recovered (or reported) by the operator."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.node.datasets import heavy_dataset
from tests.node.runs import BUCKET

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
FINAL = ("success", "partial", "failure")


def endpoint(servers, **over) -> dict:
    return {"baseURL": servers["llm_relay"].url + "/v1", "requestTimeoutSeconds": 600, "maxRetries": 0, **over}


def test_a_hung_runner_is_killed_by_its_liveness_probe_and_the_job_retries_it(runs, servers):
    """(2) The endpoint stops answering (requests are accepted, nothing comes back): no case finishes,
    the runner's /healthz fails after hangTimeoutSeconds, the kubelet's liveness probe kills it, the
    Job makes a new pod, which finds the endpoint answering again and runs every case once."""
    relay = servers["llm_relay"]
    relay.freeze()
    doc = runs.doc("hung", matrix={"models": ["openai/follow"], "promptTypes": ["optimal"], "difficulties": ["easy"],
                                   "taskTypes": ["simple_task", "basic_task"], "instances": 3},
                   endpoint=endpoint(servers), limits={"hangTimeoutSeconds": 10, "caseTimeoutSeconds": 600,
                                                        "backoffLimit": 2})
    try:
        runs.apply(doc)
        first = runs.node.wait_for(lambda: next(iter(runs.watch.terminations().items()), None), 240,
                                   "the liveness probe to kill the hung runner", 1.0)
    finally:
        relay.thaw()
    pod, term = first
    events = runs.node.get("events", "-n", runs.ns, "--field-selector", f"involvedObject.name={pod}")["items"]
    said = {(e["reason"], e["message"].split(":")[0]) for e in events}
    assert ("Unhealthy", "Liveness probe failed") in said and "Killing" in {r for r, _ in said}, said
    assert term["exitCode"] in (137, 143), term  # SIGTERM (flushed, exit 143) or SIGKILL after the grace period
    st = runs.wait_phase("hung", "Succeeded", 300)
    rows = runs.rows("hung")
    total = 6
    finals = Counter(r["case_id"] for r in rows if r["status"] in FINAL)
    assert st["cases"]["completed"] == total and len(finals) == total and set(finals.values()) == {1}, rows
    assert len(runs.watch.pods()) == 2, "one hung pod, one that finished"


def test_a_real_oom_kill_is_recreated_with_more_memory_and_completes(runs, servers, tmp_path):
    """(3) The footprint was set for small data; the questions file is BIRD-sized (200 MiB of evidence,
    which the runner parses and keeps): the memory cgroup kills the runner (reason OOMKilled), the
    operator re-creates the shard's Job with 1.5 x the memory until it fits, and the run completes."""
    data = heavy_dataset(tmp_path / "heavy", evidence_mib=200)
    s3 = servers["s3"].client()
    for f in sorted(p for p in data.rglob("*") if p.is_file()):
        s3.upload_file(str(f), BUCKET, f"datasets/heavy/{f.relative_to(data).as_posix()}")
    doc = runs.doc("oom", suite="text2sql", suiteConfig={"dataset": f"s3://{BUCKET}/datasets/heavy"},
                   matrix={"models": ["sim/strong"], "promptTypes": ["zero_shot"], "taskTypes": ["aggregate"],
                           "difficulties": ["simple"], "instances": 4},
                   resources={"footprint": {"sharedMiB": 1, "perWorkerMiB": 0.1}, "maxPodMemory": "4Gi"})
    runs.apply(doc)
    first = runs.node.wait_for(lambda: runs.job("oom") if runs.node.kubectl(
        "get", "job", "oom-s0", "-n", runs.ns, check=False).returncode == 0 else None, 60, "the shard's Job")
    before = _memory(first)
    st = runs.wait_phase("oom", "Succeeded", 600)
    ooms = [t for t in runs.watch.terminations().values() if t.get("reason") == "OOMKilled"]
    assert ooms and all(t["exitCode"] == 137 for t in ooms), runs.watch.terminations()
    retries = st["shardRetries"]["0"]["oomKilled"]  # (the Job may retry a pod itself before it is replaced)
    assert 1 <= retries <= len(ooms), (retries, len(ooms))
    after = _memory(runs.job("oom"))
    assert after["request"] >= before["request"] * 1.5 ** retries * 0.99, (before, after)
    print(f"\nOOM: first limit {before['limit']} MiB, killed {len(ooms)}x, completed with limit {after['limit']} MiB")
    assert st["cases"]["completed"] == st["cases"]["total"] == 4


def _memory(job: dict) -> dict:
    res = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    return {k: int(res[n]["memory"].rstrip("Mi")) for k, n in (("request", "requests"), ("limit", "limits"))}


def test_active_deadline_ends_a_shard_as_deadline_exceeded(runs, servers):
    """(4) A shard still running at activeDeadlineSeconds: the Job controller marks FailureTarget
    (DeadlineExceeded) and terminates the pod; Failed comes only once the pod is gone; the run is
    Failed with the shard's reason."""
    doc = runs.doc("deadline", matrix={"models": ["sim/slow"], "promptTypes": ["baseline"], "difficulties": ["easy"],
                                       "taskTypes": ["simple_task"], "instances": 40},
                   simulation={"sim/slow": {"accuracy": 0.9, "latencySeconds": 5}},
                   sharding={"shards": 1, "concurrencyPerShard": 1}, limits={"activeDeadlineSeconds": 25})
    runs.apply(doc)
    st = runs.wait("deadline", lambda s: s.get("failedShards"), 240, "the deadline to fail the shard")
    (failed,) = st["failedShards"]
    assert failed["reason"] == "DeadlineExceeded", failed
    conds = runs.node.wait_for(lambda: (c := {c["type"]: c for c in runs.job("deadline")["status"].get(
        "conditions", [])}) and "Failed" in c and c, 60, "the Job's Failed condition, once its pod is gone", 0.5)
    assert conds["FailureTarget"]["reason"] == conds["Failed"]["reason"] == "DeadlineExceeded", conds
    assert conds["FailureTarget"]["lastTransitionTime"] <= conds["Failed"]["lastTransitionTime"]
    (term,) = runs.watch.terminations().values()
    assert term["finishedAt"] <= conds["Failed"]["lastTransitionTime"], (term, conds["Failed"])
    assert st["phase"] == "Failed"


def test_a_deleted_pod_flushes_its_rows_and_the_replacement_resumes(runs):
    """(6) kubectl delete of a running runner pod: SIGTERM, the rows done so far are flushed within the
    grace period (exit 143), and the Job's new pod runs only the cases that are missing."""
    doc = runs.doc("deleted", matrix={"models": ["sim/steady"], "promptTypes": ["baseline", "optimal"],
                                      "difficulties": ["easy"], "taskTypes": ["simple_task", "basic_task"],
                                      "instances": 30},
                   simulation={"sim/steady": {"accuracy": 0.9, "latencySeconds": 0.5}},
                   sharding={"shards": 1, "concurrencyPerShard": 4},
                   output={"flushEveryRows": 100000, "flushEverySeconds": 3600})  # rows leave only on SIGTERM
    runs.apply(doc)
    pod = runs.node.wait_for(lambda: next((p for p in runs.pods("deleted") if _done(runs.node, p) >= 12), None),
                             180, "the runner to finish some cases", 1.0)
    name, grace = pod["metadata"]["name"], pod["spec"]["terminationGracePeriodSeconds"]
    t0 = time.time()
    runs.node.kubectl("delete", "pod", name, "-n", runs.ns, "--wait=false")
    term = runs.node.wait_for(lambda: runs.watch.terminations().get(name), 60, "the deleted pod to stop", 0.5)
    stopped_after = time.time() - t0
    assert term["exitCode"] == 143 and json.loads(term["message"])["reason"] == "Stopped", term
    assert stopped_after < grace, f"stopped {stopped_after:.1f}s after the delete; grace {grace}s"
    flushed = runs.rows("deleted")
    assert len(flushed) >= 12 and {r["pod_attempt"] for r in flushed} == {1}, "what the deleted pod did is in S3"
    st = runs.wait_phase("deleted", "Succeeded", 300)
    rows = runs.rows("deleted")
    assert st["cases"]["completed"] == 120
    assert len(rows) == len({r["case_id"] for r in rows}) == 120, "the replacement ran only what was missing"
    by_pod = Counter(r["pod_attempt"] for r in rows)
    assert sorted(by_pod) == [1, 2] and by_pod[1] == len(flushed), by_pod
    assert len(runs.watch.pods()) == 2


def _done(node, pod: dict) -> int:
    """Cases the runner has finished, from its own /metrics (the pod IP is reachable over the bridge)."""
    import urllib.request

    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return 0
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("benchpilot_shard_cases{") and 'state="done"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0
