"""Small fluent builders for Jobs, pods and shard observations (in the manner of jobset's wrappers.go)."""

from __future__ import annotations

import copy
import json

from benchpilot_operator.manifests import OOM_ANNOTATION
from benchpilot_operator.status import ShardObs


class JobB:
    def __init__(self, run: str = "r", index: int = 0):
        self.obj = {"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"name": f"{run}-s{index}", "labels": {"benchpilot.io/shard": str(index)},
                                 "annotations": {OOM_ANNOTATION: "0"}},
                    "spec": {"suspend": False}, "status": {}}

    def active(self) -> "JobB":
        self.obj["status"]["active"] = 1
        return self

    def succeeded(self) -> "JobB":
        self.obj["status"].update(active=0, succeeded=1,
                                  conditions=[{"type": "Complete", "status": "True"}])
        return self

    def failed(self, reason: str, message: str = "") -> "JobB":
        self.obj["status"].update(active=0, failed=1, conditions=[
            {"type": "Failed", "status": "True", "reason": reason, "message": message}])
        return self

    def suspended(self) -> "JobB":
        self.obj["spec"]["suspend"] = True
        self.obj["status"]["conditions"] = [{"type": "Suspended", "status": "True"}]
        return self

    def oom_retries(self, n: int) -> "JobB":
        self.obj["metadata"]["annotations"][OOM_ANNOTATION] = str(n)
        return self

    def build(self) -> dict:
        return copy.deepcopy(self.obj)


class PodB:
    def __init__(self, name: str = "p"):
        self.obj = {"metadata": {"name": name}, "status": {"phase": "Pending"}}

    def running(self) -> "PodB":
        self.obj["status"]["phase"] = "Running"
        return self

    def terminated(self, code: int, reason: str | None = None, *, message: str = "", done: int | None = None,
                   failed: int | None = None, total: int | None = None,
                   finished: str = "2026-01-01T00:00:00Z") -> "PodB":
        body = {"reason": reason, "message": message}
        for key, value in (("done", done), ("failed", failed), ("total", total)):
            if value is not None:
                body[key] = value
        self.obj["status"] = {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [
            {"name": "runner", "state": {"terminated": {"exitCode": code, "finishedAt": finished,
                                                        "message": json.dumps(body) if reason else ""}}}]}
        return self

    def evicted(self, message: str) -> "PodB":
        # what the kubelet writes: the pod's own reason, the container killed (137) with no runner message
        self.obj["status"] = {"phase": "Failed", "reason": "Evicted", "message": message, "containerStatuses": [
            {"name": "runner", "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}
        return self

    def oom_killed(self) -> "PodB":
        self.obj["status"] = {"phase": "Failed", "containerStatuses": [
            {"name": "runner", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}
        return self

    def build(self) -> dict:
        return copy.deepcopy(self.obj)


def obs(index: int, job: JobB | None = None, *pods: PodB, done: int | None = None,
        failed_cases: int | None = None) -> ShardObs:
    return ShardObs(index, job.build() if job else None, [p.build() for p in pods], done, failed_cases)
