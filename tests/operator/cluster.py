"""A Kubernetes API for operator tests: kmock's emulator over HTTP, driven as a cluster would be.

The emulator stores objects as JSON: it runs no controllers, validates nothing and collects no
garbage. The test plays the Job controller and the kubelet: it creates pods for Jobs and moves
Job and pod status (Complete, Failed with OOMKilled, DeadlineExceeded) through the API, so the
operator sees watch events exactly as from a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid

import aiohttp
import kmock

RUNS = "benchpilot.io/v1alpha1/benchmarkruns"
VERBS = {"list", "watch", "get", "create", "patch", "update", "delete"}
RESOURCES = {
    RUNS: ("BenchmarkRun", True, {"status"}),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, set()),
    "v1/namespaces": ("Namespace", False, set()),
    "v1/events": ("Event", True, set()),
    "batch/v1/jobs": ("Job", True, {"status"}),
    "v1/pods": ("Pod", True, {"status"}),
    "v1/configmaps": ("ConfigMap", True, set()),
    "events.k8s.io/v1/events": ("Event", True, set()),
}


def register(k: kmock.KubernetesEmulator) -> None:
    for res, (kind, namespaced, sub) in RESOURCES.items():
        k.resources[res] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=VERBS, subresources=sub)


class Cluster:
    def __init__(self, emulator: kmock.KubernetesEmulator, url: str):
        self.k = emulator
        self.url = url.rstrip("/")
        # no keep-alive: a connection kept across an operator restart can hang on the emulator
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                             timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.session.close()

    async def _req(self, method: str, path: str, body=None, ok=(200, 201)) -> dict:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else None
        async with self.session.request(method, self.url + path, json=body, headers=headers) as r:
            data = await r.json(content_type=None)
            assert r.status in ok, (method, path, r.status, data)
            return data

    # ------------------------------------------------------------------ runs
    async def apply_run(self, doc: dict) -> dict:
        doc = copy.deepcopy(doc)
        md = doc["metadata"]
        md.setdefault("namespace", "default")
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("resourceVersion", "1")  # kopf's JSON-patch test needs one; the emulator sets none
        md.setdefault("generation", 1)
        md.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return await self._req("POST", f"/apis/benchpilot.io/v1alpha1/namespaces/{md['namespace']}/benchmarkruns", doc)

    async def run(self, ns: str, name: str) -> dict:
        return await self._req("GET", f"/apis/benchpilot.io/v1alpha1/namespaces/{ns}/benchmarkruns/{name}")

    async def patch_run(self, ns: str, name: str, body: dict) -> dict:
        return await self._req("PATCH", f"/apis/benchpilot.io/v1alpha1/namespaces/{ns}/benchmarkruns/{name}", body)

    async def delete_run(self, ns: str, name: str) -> None:
        await self._req("DELETE", f"/apis/benchpilot.io/v1alpha1/namespaces/{ns}/benchmarkruns/{name}")

    # ------------------------------------------------------------------ children
    async def jobs(self, ns: str, run: str | None = None) -> list[dict]:
        data = await self._req("GET", f"/apis/batch/v1/namespaces/{ns}/jobs")
        items = data.get("items") or []
        if run is not None:
            items = [j for j in items if j["metadata"].get("labels", {}).get("benchpilot.io/run") == run]
        return sorted(items, key=lambda j: int(j["metadata"]["labels"]["benchpilot.io/shard"]))

    async def configmaps(self, ns: str) -> list[dict]:
        return (await self._req("GET", f"/api/v1/namespaces/{ns}/configmaps")).get("items") or []

    async def events(self, ns: str) -> list[dict]:
        return (await self._req("GET", f"/api/v1/namespaces/{ns}/events")).get("items") or []

    async def job_status(self, job: dict, status: dict) -> None:
        md = job["metadata"]
        await self._req("PATCH", f"/apis/batch/v1/namespaces/{md['namespace']}/jobs/{md['name']}/status",
                        {"status": status})

    async def start_pod(self, job: dict, *, port: int = 8080, ip: str = "127.0.0.1") -> dict:
        """Play the Job controller and kubelet: a Running pod for ``job``, and the Job's active count."""
        md = job["metadata"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{md['name']}-{uuid.uuid4().hex[:5]}", "namespace": md["namespace"],
                            "uid": str(uuid.uuid4()), "labels": dict(job["spec"]["template"]["metadata"]["labels"]),
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": md["name"],
                                                 "uid": md.get("uid", ""), "controller": True}]},
               "spec": copy.deepcopy(job["spec"]["template"]["spec"]),
               "status": {"phase": "Running", "podIP": ip}}
        pod["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": port}]
        await self._req("POST", f"/api/v1/namespaces/{md['namespace']}/pods", pod)
        await self.job_status(job, {"active": 1, "startTime": "2026-01-01T00:00:00Z"})
        return pod

    async def pod_status(self, pod: dict, status: dict) -> None:
        md = pod["metadata"]
        await self._req("PATCH", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/status",
                        {"status": status})

    async def complete(self, job: dict) -> None:
        await self.job_status(job, {"active": 0, "succeeded": 1, "conditions": [
            {"type": "Complete", "status": "True", "reason": "Completed"}]})

    async def fail(self, job: dict, reason: str, message: str = "") -> None:
        await self.job_status(job, {"active": 0, "failed": 1, "conditions": [
            {"type": "Failed", "status": "True", "reason": reason, "message": message}]})

    async def terminate(self, pod: dict, exit_code: int, message: dict) -> None:
        """Play the kubelet: the runner exited with ``exit_code`` and wrote ``message`` to its termination log."""
        await self.pod_status(pod, {"phase": "Succeeded" if exit_code == 0 else "Failed", "containerStatuses": [
            {"name": "runner", "state": {"terminated": {"exitCode": exit_code, "finishedAt": "2026-01-01T00:01:00Z",
                                                        "message": json.dumps(message)}}}]})

    async def oom_kill(self, job: dict, pod: dict) -> None:
        await self.pod_status(pod, {"phase": "Failed", "containerStatuses": [{"name": "runner", "state": {
            "terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})
        await self.job_status(job, {"active": 0, "failed": 1})

    def posts(self, fragment: str) -> int:
        return self.requests("POST", fragment)

    def requests(self, method: str, fragment: str) -> int:
        """How many ``method`` requests whose URL holds ``fragment`` the API has served so far."""
        reqs = getattr(self.k, "requests", None) or self.k._requests
        return sum(1 for r in reqs if str(r.method).upper().endswith(method) and fragment in str(r.url))


@contextlib.asynccontextmanager
async def operator(url: str, **config):
    """The real kopf operator with benchpilot's handlers, against ``url``, until the block ends.

    Yields its :class:`OperatorState` (configuration, metrics): built here, handed in through kopf's memo."""
    import kopf

    from benchpilot_operator import handlers  # noqa: F401 - registers the handlers
    from benchpilot_operator.config import OperatorConfig
    from benchpilot_operator.state import OperatorState

    state = OperatorState.build(OperatorConfig.from_env().with_(api__server=url, serving__metrics_port=0,
                                                                serving__liveness_port=0, **config))
    from kopf._cogs.structs.credentials import Vault  # not exported; kopf.operator accepts one

    stop = asyncio.Event()
    ready = asyncio.Event()
    vault = Vault()
    task = asyncio.create_task(kopf.operator(clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready,
                                             memo=kopf.Memo(state=state), vault=vault))
    try:
        await asyncio.wait_for(ready.wait(), 15)
        yield state
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        # kopf closes its API sessions when it ends, but a timer's last patch can open one after that;
        # close it too, or its finalizer logs "Unclosed client session" into whichever test runs next
        await vault.close()
