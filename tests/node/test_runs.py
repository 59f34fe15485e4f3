"""Runs that succeed on the real node: the examples users apply, through real Jobs, pods and S3."""

from __future__ import annotations

import json

import pytest

from benchpilot_runner.contract.parse import parse_manifest
from tests.node.runs import terminated

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_quickstart_and_text2sql_examples_succeed_in_real_pods(runs, node):
    """(1) examples/quickstart.yaml and examples/text2sql.yaml as users apply them: the operator (a pod)
    makes the Jobs, the scheduler binds their pods to the node, the kubelet runs benchpilot's image,
    the runners write Parquet parts to S3, and each run ends Succeeded with every case once."""
    docs = [runs.apply(runs.doc("quickstart", "quickstart.yaml")), runs.apply(runs.doc("text2sql", "text2sql.yaml"))]
    for doc in docs:
        name = doc["metadata"]["name"]
        total = parse_manifest(doc).total_cases
        st = runs.wait_phase(name, "Succeeded", 600)
        assert st["cases"]["completed"] == st["cases"]["total"] == total, st["cases"]
        rows = runs.rows(name)
        assert len({r["case_id"] for r in rows}) == len(rows) == total, "each case once, every case"
        shards = doc["spec"]["sharding"]["shards"]
        markers = runs.success_markers(name)
        assert len(markers) == shards + 1, markers  # one per shard and the run's
        pods = runs.pods(name)
        assert len(pods) == shards and all(p["spec"]["nodeName"] == "localhost" for p in pods)
        for pod in pods:
            term = terminated(pod)
            assert term and term["exitCode"] == 0 and term.get("containerID", "").startswith("containerd://"), term
            assert pod["status"]["podIP"].startswith(node.gateway.rsplit(".", 1)[0] + "."), pod["status"]


def test_termination_messages_and_failed_cases_reach_the_run_status(runs, servers):
    """(7) A shard whose endpoint answers garbage: its simulated cases finish, the endpoint's end as
    errors; the runner's termination message (written to /dev/termination-log, copied by the kubelet
    into the pod's status) becomes the run's failedShards reason and message and cases.failed."""
    doc = runs.doc("partial", matrix={"models": ["sim/strong", "openai/garbage"], "promptTypes": ["baseline"],
                                      "difficulties": ["easy"], "taskTypes": ["simple_task", "basic_task"],
                                      "instances": 3},
                   endpoint={"baseURL": servers["llm_relay"].url + "/v1", "requestTimeoutSeconds": 10,
                             "maxRetries": 1},
                   limits={"backoffLimit": 0, "caseTimeoutSeconds": 60})
    runs.apply(doc)
    st = runs.wait("partial", lambda s: s.get("failedShards") and s.get("phase") == "Failed", 240,
                   "the shard to fail with its reason")
    terms = list(runs.watch.terminations().values())
    assert len(terms) == 1 and terms[0]["exitCode"] == 3, terms
    said = json.loads(terms[0]["message"])  # what the runner wrote, as the kubelet reported it
    (failed,) = st["failedShards"]
    assert said["reason"] == failed["reason"] == "CasesUnfinished", (said, failed)
    assert said["message"][:80] in failed["message"], (said, failed)
    assert st["cases"]["completed"] == said["done"] == 6, (st["cases"], said)
    assert st["cases"]["failed"] == said["failed"] > 0, (st["cases"], said)
    assert st["cases"]["total"] == said["total"] == 12
