"""PURE: the child objects of a BenchmarkRun as plain dicts. No API calls."""

from __future__ import annotations

import json

from benchpilot_runner.spec import CONFIG_ERROR_EXIT, RunSpec

from . import GROUP, KIND, VERSION
from .config import OperatorConfig
from .plan import fmt_mib
from .shares import limits_for

RUN_LABEL = "benchpilot.io/run"
SHARD_LABEL = "benchpilot.io/shard"
OOM_ANNOTATION = "benchpilot.io/oom-retries"
SPEC_MOUNT = "/etc/benchpilot"
CACHE_MOUNT = "/cache"
RUNNER_UID = 10001
SHARES_MOUNT = "/etc/benchpilot-shares"
DATA_MOUNT = "/var/lib/benchpilot/data"
SHARES_FILE = "shares.json"
TERMINATION_LOG = "/dev/termination-log"  # the runner says there why it ended; the operator reads it


def labels(run: str, shard: int | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": "benchpilot", "app.kubernetes.io/component": "runner",
           "app.kubernetes.io/managed-by": "benchpilot-operator", RUN_LABEL: run}
    if shard is not None:
        out[SHARD_LABEL] = str(shard)
    return out


def job_name(run: str, shard: int) -> str:
    return f"{run}-s{shard}"


def configmap_name(run: str) -> str:
    return f"{run}-spec"


def owner_reference(meta: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def owned_by(obj: dict, uid: str) -> bool:
    """True when ``obj`` has a controller owner reference to the run with ``uid``."""
    return any(ref.get("uid") == uid and ref.get("kind") == KIND
               for ref in (obj.get("metadata", {}).get("ownerReferences") or []))


def resolved_spec(spec: RunSpec, meta: dict) -> dict:
    """What the pods read from /etc/benchpilot/run.json: the spec as a manifest with every default
    and the run's uid, read back by the runner's one parser."""
    data = spec.to_resolved()
    data["metadata"]["uid"] = meta["uid"]
    data["metadata"]["namespace"] = meta.get("namespace") or spec.namespace
    return data


def shares_configmap_name(run: str) -> str:
    return f"{run}-shares"


def build_shares_configmap(meta: dict, spec: RunSpec, shares: dict[int, float]) -> dict:
    """Each running shard's fraction of the run's endpoint limits; pods re-read it (shares.py)."""
    body = {"shards": {str(i): round(f, 6) for i, f in sorted(shares.items())},
            "endpoints": {e.name: {str(i): limits_for(f, e.limits.requests_per_minute, e.limits.tokens_per_minute,
                                                       e.limits.max_concurrency) for i, f in sorted(shares.items())}
                          for e in spec.endpoints}}
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": shares_configmap_name(meta["name"]), "namespace": meta["namespace"],
                     "labels": labels(meta["name"]), "ownerReferences": [owner_reference(meta)]},
        "data": {SHARES_FILE: json.dumps(body, sort_keys=True)},
    }


def build_configmap(meta: dict, spec: RunSpec) -> dict:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": configmap_name(meta["name"]), "namespace": meta["namespace"],
                     "labels": labels(meta["name"]), "ownerReferences": [owner_reference(meta)]},
        "data": {"run.json": json.dumps(resolved_spec(spec, meta), indent=1, sort_keys=True)},
    }


def _probe(path: str, *, period: int, failures: int, timeout: int = 3) -> dict:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


def build_job(meta: dict, spec: RunSpec, shard: int, *, concurrency: int, request_bytes: int, limit_bytes: int,
              cfg: OperatorConfig, oom_retries: int = 0, suspend: bool = False, share: float | None = None) -> dict:
    run = meta["name"]
    env = [
        {"name": "BENCHPILOT_SHARD", "value": str(shard)},
        {"name": "BENCHPILOT_SHARDS", "value": str(spec.sharding.shards)},
        {"name": "BENCHPILOT_SPEC", "value": f"{SPEC_MOUNT}/run.json"},
        {"name": "BENCHPILOT_CONCURRENCY", "value": str(concurrency)},
        {"name": "BENCHPILOT_HEALTH_PORT", "value": str(cfg.runner_port)},
        {"name": "BENCHPILOT_MEMORY_REQUEST_BYTES", "value": str(request_bytes)},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "BENCHPILOT_TERMINATION_LOG", "value": TERMINATION_LOG},
        {"name": "HOME", "value": "/tmp"},
        {"name": "BENCHPILOT_DATA_DIR", "value": DATA_MOUNT},
    ]
    volumes = [{"name": "spec", "configMap": {"name": configmap_name(run)}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
               # what a suite copies in (a remote dataset); outgrowing it evicts the pod (status says so)
               {"name": "data", "emptyDir": {"sizeLimit": f"{-(-spec.resources.scratch_bytes // 2**20)}Mi"}}]
    mounts = [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"},
              {"name": "data", "mountPath": DATA_MOUNT}]
    if spec.cache_claim:
        env.append({"name": "BENCHPILOT_CACHE_DIR", "value": CACHE_MOUNT})
        volumes.append({"name": "cache", "persistentVolumeClaim": {"claimName": spec.cache_claim, "readOnly": True}})
        mounts.append({"name": "cache", "mountPath": CACHE_MOUNT, "readOnly": True})
    if share is not None:  # the shard's fraction of the run's endpoint limits; the ConfigMap may raise it
        env += [{"name": "BENCHPILOT_LIMIT_SHARE", "value": f"{share:.6f}"},
                {"name": "BENCHPILOT_SHARES_FILE", "value": f"{SHARES_MOUNT}/{SHARES_FILE}"}]
        volumes.append({"name": "shares", "configMap": {"name": shares_configmap_name(run), "optional": True}})
        mounts.append({"name": "shares", "mountPath": SHARES_MOUNT, "readOnly": True})
    used = {m.endpoint for m in spec.models if not m.simulated}
    for ep in spec.endpoints:  # each endpoint's key from its Secret, never in the spec or the ConfigMap
        if ep.api_key_secret and ep.name in used:
            env.append({"name": ep.key_env, "valueFrom": {"secretKeyRef": {
                "name": ep.api_key_secret["name"], "key": ep.api_key_secret["key"]}}})
    env_from = []
    if spec.output.credentials_secret:
        env_from.append({"secretRef": {"name": spec.output.credentials_secret}})
    container = {
        "name": "runner", "image": cfg.image, "imagePullPolicy": cfg.image_pull_policy,
        "args": ["shard"], "env": env,
        "ports": [{"name": "http", "containerPort": cfg.runner_port, "protocol": "TCP"}],
        "resources": {"requests": {"memory": fmt_mib(request_bytes), "cpu": cfg.cpu_request},
                      "limits": {"memory": fmt_mib(limit_bytes)}},
        # /healthz fails once nothing progressed for hangTimeoutSeconds: the kubelet then kills the pod
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "startupProbe": _probe("/healthz", period=5, failures=max(1, -(-cfg.startup_seconds // 5))),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    if env_from:
        container["envFrom"] = env_from
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 15,  # the runner flushes and exits within 10 s of SIGTERM
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
                            "fsGroup": RUNNER_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if cfg.runner_service_account:
        pod_spec["serviceAccountName"] = cfg.runner_service_account
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(run, shard), "namespace": meta["namespace"], "labels": labels(run, shard),
                     "annotations": {OOM_ANNOTATION: str(oom_retries)},
                     "ownerReferences": [owner_reference(meta)]},
        "spec": {
            "completions": 1, "parallelism": 1, "suspend": suspend,
            "backoffLimit": spec.limits.backoff_limit,
            "activeDeadlineSeconds": spec.limits.active_deadline_s,
            "podReplacementPolicy": "Failed",  # never two pods of one shard at once
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "runner", "operator": "In",
                                                      "values": [CONFIG_ERROR_EXIT]}},
            ]},
            "template": {"metadata": {"labels": labels(run, shard)}, "spec": pod_spec},
        },
    }
