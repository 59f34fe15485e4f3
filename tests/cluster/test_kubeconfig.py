"""The operator outside the cluster with a kubeconfig as kind, EKS and GKE write it: the CA and the client
certificate embedded as base64 ``*-data`` fields, not file paths. Every reconcile failed on it
(``'str' object has no attribute 'decode'``) and embedded client certificates were ignored."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.helpers import ROOT, manifest

pytestmark = pytest.mark.slow


def test_an_operator_with_embedded_ca_and_client_certificate_reconciles(installed, tmp_path):
    cp = installed
    kubeconfig = cp.kubeconfig("kind-admin", cert=cp.dir / "admin.crt", key=cp.dir / "admin.key", embed=True)
    cfg = json.loads(kubeconfig.read_text())
    assert "certificate-authority-data" in cfg["clusters"][0]["cluster"]
    assert set(cfg["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
    ns = f"kc-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", ns)
    log = tmp_path / "operator.log"
    env = {**cp.env(kubeconfig), "BENCHPILOT_METRICS_PORT": "0", "BENCHPILOT_LIVENESS_PORT": "0",
           "BENCHPILOT_RESYNC_SECONDS": "1", "BENCHPILOT_API_SERVER": "", "BENCHPILOT_WATCH_NAMESPACE": ns}
    proc = subprocess.Popen([sys.executable, "-m", "benchpilot_operator"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        doc = manifest(sharding={"shards": 2})
        doc["metadata"] = {"name": "kind", "namespace": ns}
        cp.apply(doc)
        try:  # the operator's own client (not only kopf's) made the Jobs and wrote the status
            st = cp.wait_for(lambda: (s := cp.get("benchmarkrun", "kind", "-n", ns).get("status") or {})
                             .get("shards", {}).get("total") == 2 and s, 60, "a reconciled status")
        except AssertionError:
            raise AssertionError(f"operator log:\n{log.read_text()[-3000:]}") from None
        jobs = cp.get("jobs", "-n", ns, "-l", "benchpilot.io/run=kind")["items"]
        assert sorted(j["metadata"]["name"] for j in jobs) == ["kind-s0", "kind-s1"]
        assert st["cases"]["total"] == 16 and st["phase"] in ("Pending", "Running")
        text = log.read_text()
        assert "decode" not in text and "Traceback" not in text, text[-3000:]
        assert proc.poll() is None, "the operator keeps running"
    finally:
        proc.terminate()
        proc.wait(20)
        cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)
