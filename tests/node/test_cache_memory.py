"""(5) The shared cache on a read-only volume, mapped by two runner pods at once, and each pod's real
memory (its memory cgroup's working set, as the kubelet counts it) against the request the operator
set from the footprint formula, with the footprint measured by ``benchpilot footprint`` in the image."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchpilot_runner.contract.sizing import BASE_MIB, memory_request_mib
from tests.helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
MiB = 2**20
CONCURRENCY = 16


@pytest.fixture
def cache_claim(node, runs, tmp_path):
    """A text2sql cache built here, on a hostPath PersistentVolume (ReadOnlyMany), claimed in the test's
    namespace; readable by the image's non-root user."""
    folder = node.host.dir / "volumes" / runs.ns
    folder.parent.mkdir(exist_ok=True)
    res = subprocess.run([sys.executable, "-m", "benchpilot_runner", "cache", "build", "--suite", "text2sql", "--out",
                          str(folder), "--instances", "1"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    pv = f"cache-{runs.ns}"
    node.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": pv,
        "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(folder), "type": "Directory"}}})
    node.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "cache", "namespace": runs.ns},
                "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": pv,
                         "resources": {"requests": {"storage": "1Gi"}}}})
    node.wait_for(lambda: node.get("pvc", "cache", "-n", runs.ns)["status"].get("phase") == "Bound", 60,
                  "the cache claim to bind", 1.0)
    yield "cache"
    runs.close()  # the pods first, then the volume
    node.wait_for(lambda: node.kubectl("get", "namespace", runs.ns, check=False).returncode != 0, 180,
                  "the namespace to go", 1.0)
    node.kubectl("delete", "pv", pv, "--wait=false", check=False)
    shutil.rmtree(folder, ignore_errors=True)


def footprint_in_a_pod(node, ns: str, claim: str, image: str) -> dict:
    """`benchpilot footprint --cache /cache` run by the image itself, on the same volume."""
    node.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "footprint", "namespace": ns}, "spec": {
        "restartPolicy": "Never",
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "runAsNonRoot": True},
        "containers": [{"name": "footprint", "image": image, "imagePullPolicy": "Never",
                        "args": ["footprint", "--cache", "/cache", "--concurrency", str(CONCURRENCY)],
                        "env": [{"name": "BENCHPILOT_DATA_DIR", "value": "/tmp/data"}],
                        "volumeMounts": [{"name": "cache", "mountPath": "/cache", "readOnly": True}]}],
        "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}]}})
    node.wait_for(lambda: node.get("pod", "footprint", "-n", ns)["status"].get("phase") in ("Succeeded", "Failed"),
                  240, "the footprint pod", 1.0)
    out = node.kubectl("logs", "footprint", "-n", ns).stdout
    return json.loads(out[out.index("{"):])


class CgroupSampler:
    """Samples each pod's memory cgroup (v1): working set = usage - inactive file, as the kubelet counts
    it, and the kernel's own peak usage."""

    def __init__(self, node):
        self.root = Path("/sys/fs/cgroup/memory") / node.host.cgroup / "kubepods"
        self.peak: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, pods: dict[str, str]) -> "CgroupSampler":  # pod name -> uid
        self.pods = pods
        self._thread.start()
        return self

    def _sample(self, name: str, uid: str) -> None:
        found = list(self.root.glob(f"**/pod{uid}"))
        if not found:
            return
        d = found[0]
        try:
            usage = int((d / "memory.usage_in_bytes").read_text())
            stat = dict(line.split() for line in (d / "memory.stat").read_text().splitlines())
            max_usage = int((d / "memory.max_usage_in_bytes").read_text())
        except OSError:
            return
        ws = usage - int(stat.get("total_inactive_file", 0))
        p = self.peak.setdefault(name, {"working_set": 0, "max_usage": 0, "rss": 0, "samples": 0})
        p["working_set"] = max(p["working_set"], ws)
        p["max_usage"] = max(p["max_usage"], max_usage)
        p["rss"] = max(p["rss"], int(stat.get("total_rss", 0)))
        p["samples"] += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, uid in self.pods.items():
                self._sample(name, uid)
            time.sleep(0.2)

    def stop(self) -> dict[str, dict]:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def test_two_pods_share_the_read_only_cache_within_their_memory_request(node, runs, cache_claim):
    image = node.runner_image
    fp = footprint_in_a_pod(node, runs.ns, cache_claim, image)
    foot = fp["suggestedSpec"]["resources"]["footprint"]
    doc = runs.doc("shared", "text2sql.yaml", cache={"claimName": cache_claim},
                   sharding={"shards": 2, "concurrencyPerShard": CONCURRENCY},
                   resources={"footprint": foot},
                   simulation={"sim/t2s": {"accuracy": 0.7, "latencySeconds": 1.0}})
    doc["spec"]["matrix"].update(models=["sim/t2s"], instances=8)
    runs.apply(doc)
    pods = node.wait_for(lambda: (ps := [p for p in runs.pods("shared") if p["status"].get("phase") == "Running"])
                         and len(ps) == 2 and ps, 180, "both runner pods running", 1.0)
    sampler = CgroupSampler(node).watch({p["metadata"]["name"]: p["metadata"]["uid"] for p in pods})
    for p in pods:
        name = p["metadata"]["name"]
        node.wait_for(lambda n=name: "/cache/model/model.onnx.data" in _maps(node, runs.ns, n), 120,
                      f"{name} to map the cache and its encoder", 1.0)
        maps = _maps(node, runs.ns, name)
        assert "/cache/embeddings.npy" in maps and "/cache/index.faiss" in maps, maps[-2000:]
        write = node.kubectl("exec", name, "-n", runs.ns, "--", "python", "-c", "open('/cache/probe', 'w')",
                             check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr[-500:]
    st = runs.wait_phase("shared", "Succeeded", 600)
    peaks = sampler.stop()
    assert st["cases"]["completed"] == st["cases"]["total"]
    print(f"\nfootprint measured in the image at concurrency {CONCURRENCY}: base {fp['baseMiB']} MiB, shared "
          f"{fp['sharedMiB']} MiB (cache + encoder), per worker {fp['perWorkerMiB']} MiB")
    formula = memory_request_mib(foot["sharedMiB"], foot["perWorkerMiB"], CONCURRENCY)  # the chart's defaults
    for p in pods:
        name = p["metadata"]["name"]
        request = _mib(p["spec"]["containers"][0]["resources"]["requests"]["memory"])
        peak = peaks[name]
        print(f"{name}: working set peak {peak['working_set'] / MiB:.0f} MiB (rss {peak['rss'] / MiB:.0f}, cgroup max "
              f"usage {peak['max_usage'] / MiB:.0f}; {peak['samples']} samples) against request {request} MiB "
              f"(formula: base {BASE_MIB:g} + shared {foot['sharedMiB']} + {foot['perWorkerMiB']} x {CONCURRENCY} "
              f"+ headroom = {formula:.0f})")
        assert abs(request - formula) <= 1, (request, formula)
        assert peak["samples"] > 10 and 0 < peak["working_set"] < request * MiB, (name, peak, request)


def _maps(node, ns: str, pod: str) -> str:
    """The runner's (PID 1 in its container) memory map: which cache files it has mapped."""
    res = node.kubectl("exec", pod, "-n", ns, "--", "python", "-c", "print(open('/proc/1/maps').read())", check=False)
    return res.stdout


def _mib(q: str) -> int:
    assert q.endswith("Mi"), q
    return int(q[:-2])
