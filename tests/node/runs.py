"""Helpers of the node tier's tests: runs in their own namespace, their status, their results in S3."""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from tests.helpers import EXAMPLES
from tests.servers.s3 import KEY, SECRET

RELEASE, OP_NS = "bp", "benchpilot"  # the chart's release and the operator's namespace
BUCKET = "results"


class Runs:
    """A namespace with the S3 credentials Secret; applies runs whose results go to SeaweedFS."""

    def __init__(self, node, servers):
        self.node, self.servers = node, servers
        self.ns = f"n-{uuid.uuid4().hex[:6]}"
        node.kubectl("create", "namespace", self.ns)
        node.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3", "namespace": self.ns},
                    "stringData": {"AWS_ENDPOINT_URL": servers["s3_relay"].url, "AWS_ACCESS_KEY_ID": KEY,
                                   "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}})
        self.watch = PodWatch(node, self.ns)

    @property
    def uri(self) -> str:
        return f"s3://{BUCKET}/{self.ns}"

    def doc(self, name: str, example: str | None = None, **spec) -> dict:
        """A run named ``name``: an example manifest (or a small workflow run), results to S3."""
        if example:
            doc = yaml.safe_load((EXAMPLES / example).read_text())
        else:
            doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "spec": {
                "suite": "workflow", "matrix": {"models": ["sim/strong"], "promptTypes": ["baseline", "optimal"],
                                                "difficulties": ["easy"], "taskTypes": ["simple_task", "basic_task"],
                                                "instances": 2},
                "sharding": {"shards": 1, "concurrencyPerShard": 4}, "output": {}}}
        doc["metadata"] = {"name": name, "namespace": self.ns}
        doc["spec"].update(copy.deepcopy(spec))
        doc["spec"]["output"] = {**doc["spec"].get("output", {}), "uri": self.uri,
                                 "credentialsSecretRef": {"name": "s3"}}
        return doc

    def apply(self, doc: dict) -> dict:
        self.node.apply(doc)
        return doc

    def status(self, name: str) -> dict:
        return self.node.get("benchmarkrun", name, "-n", self.ns).get("status") or {}

    def wait(self, name: str, predicate, timeout: float, what: str) -> dict:
        """Wait for ``predicate(status)``; on time-out, say what the namespace looked like."""
        try:
            return self.node.wait_for(lambda: (s := self.status(name)) and predicate(s) and s, timeout, what, 1.0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus: {json.dumps(self.status(name))[:3000]}\n"
                                 f"{describe(self.node, self.ns)}") from None

    def wait_phase(self, name: str, phase: str, timeout: float) -> dict:
        return self.wait(name, lambda s: s.get("phase") == phase, timeout, f"{self.ns}/{name} {phase}")

    def pods(self, name: str) -> list[dict]:
        return self.node.get("pods", "-n", self.ns, "-l", f"benchpilot.io/run={name}")["items"]

    def rows(self, name: str) -> list[dict]:
        """Every result row the run's pods wrote to S3 (all attempts); ``pod_attempt`` is the attempt
        number of the pod that wrote it (from the part's name)."""
        fs = self.servers["s3"].fs()
        parts = fs.glob(f"{BUCKET}/{self.ns}/{self.ns}/{name}/*/shard-*/part-*.parquet")
        out = []
        for part in parts:
            writer_attempt = int(Path(part).name.split("-")[1])  # part-<attempt>-<seq>-<writer>: one per pod
            with fs.open(part, "rb") as fh:
                rows = pq.read_table(fh, columns=["case_id", "status", "attempt", "shard"]).to_pylist()
            out += [{**r, "pod_attempt": writer_attempt} for r in rows]
        return out

    def job(self, name: str, shard: int = 0) -> dict:
        return self.node.get("job", f"{name}-s{shard}", "-n", self.ns)

    def success_markers(self, name: str) -> list[str]:
        fs = self.servers["s3"].fs()
        return [Path(p).relative_to(f"{BUCKET}/{self.ns}/{self.ns}/{name}").as_posix()
                for p in fs.glob(f"{BUCKET}/{self.ns}/{self.ns}/{name}/**/_SUCCESS")]

    def close(self) -> None:
        self.watch.close()
        self.node.kubectl("delete", "namespace", self.ns, "--wait=false", check=False)


def terminated(pod: dict) -> dict | None:
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        if c["name"] == "runner":
            return (c.get("state") or {}).get("terminated") or (c.get("lastState") or {}).get("terminated")
    return None


def describe(node, ns: str) -> str:
    """Pods, events and the last log lines of a namespace: what a failed wait shows."""
    out = [node.kubectl("get", "pods,jobs", "-n", ns, "-o", "wide", check=False).stdout,
           node.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout[-3000:]]
    for pod in node.get("pods", "-n", ns)["items"][:6]:
        name = pod["metadata"]["name"]
        out.append(f"--- {name}: " + node.kubectl("logs", name, "-n", ns, "--tail=30", "--all-containers",
                                                    check=False).stdout[-2500:])
    return "\n".join(out)



class PodWatch:
    """Every state the pods of a namespace went through, from ``kubectl get pods --watch``: a pod that
    is deleted right after it terminated (a re-created Job's, a deleted one's) is still seen."""

    def __init__(self, node, ns: str):
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen([str(node.bin / "kubectl"), "get", "pods", "-n", ns, "--watch", "-o", "json",
                                      "--output-watch-events"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=node.env())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        dec, buf = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            buf += line
            while buf.strip():
                try:
                    obj, end = dec.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                with self._lock:
                    self.events.append(obj.get("object", obj))

    def pods(self) -> dict[str, dict]:
        """The last state seen of every pod, by name."""
        with self._lock:
            return {e["metadata"]["name"]: e for e in self.events}

    def terminations(self) -> dict[str, dict]:
        """Pod name -> the runner container's terminated state, for every pod seen to terminate."""
        out = {}
        with self._lock:
            for e in self.events:
                term = terminated(e)
                if term:
                    out[e["metadata"]["name"]] = term
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
