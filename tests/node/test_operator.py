"""(8) The operator as the chart deploys it — a pod logged in with the chart's ServiceAccount (kopf's
in-cluster login) — and outside the cluster with a kubeconfig that embeds the CA and a client
certificate, as kind, EKS and GKE write them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tests.node.runs import OP_NS, RELEASE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
DEPLOYMENT = f"deployment/{RELEASE}-benchpilot-operator"


def test_the_operator_pod_and_an_operator_with_an_embedded_kubeconfig(node, chart, runs, tmp_path):
    (pod,) = node.get("pods", "-n", OP_NS)["items"]
    spec = pod["spec"]
    assert spec["serviceAccountName"] == f"{RELEASE}-benchpilot-operator"
    assert any(v.get("projected") for v in spec["volumes"]), "the ServiceAccount token is mounted by the kubelet"
    assert not any(e["name"] == "KUBECONFIG" for e in spec["containers"][0].get("env", []))
    assert all(c["ready"] for c in pod["status"]["containerStatuses"])
    # the pod is what reconciles runs: a run succeeds through it
    runs.apply(runs.doc("by-pod"))
    runs.wait_phase("by-pod", "Succeeded", 240)
    log = node.kubectl("logs", pod["metadata"]["name"], "-n", OP_NS).stdout
    refused = [line[:600] for line in log.splitlines() if "is forbidden" in line or "HTTP 403" in line]
    assert not refused, f"every call was allowed by the chart's RBAC; refused: {refused[:3]}"

    node.kubectl("scale", DEPLOYMENT, "-n", OP_NS, "--replicas=0")
    try:
        node.wait_for(lambda: not node.get("pods", "-n", OP_NS)["items"], 120, "the operator pod to go", 1.0)
        kubeconfig = node.kubeconfig("kind-admin", cert=node.dir / "admin.crt", key=node.dir / "admin.key", embed=True)
        env = {**node.env(kubeconfig), "BENCHPILOT_METRICS_PORT": "0", "BENCHPILOT_LIVENESS_PORT": "0",
               "BENCHPILOT_RESYNC_SECONDS": "1", "BENCHPILOT_API_SERVER": "", "BENCHPILOT_WATCH_NAMESPACE": runs.ns,
               "BENCHPILOT_RUNNER_IMAGE": node.runner_image, "BENCHPILOT_IMAGE_PULL_POLICY": "Never"}
        out = tmp_path / "operator.log"
        proc = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], cwd=ROOT, env=env,
                                stdout=open(out, "w"), stderr=subprocess.STDOUT)
        try:
            runs.apply(runs.doc("by-kubeconfig", sharding={"shards": 2, "concurrencyPerShard": 4}))
            st = runs.wait_phase("by-kubeconfig", "Succeeded", 240)
            assert st["cases"]["completed"] == 8
            text = out.read_text()
            assert "Traceback" not in text and "decode" not in text, text[-3000:]
        finally:
            proc.terminate()
            proc.wait(20)
    finally:
        node.kubectl("scale", DEPLOYMENT, "-n", OP_NS, "--replicas=1")
        node.kubectl("rollout", "status", DEPLOYMENT, "-n", OP_NS, "--timeout=180s")
