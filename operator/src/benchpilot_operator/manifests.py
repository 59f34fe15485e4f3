"""PURE: the child objects of a BenchmarkRun as plain dicts. No API calls."""

from __future__ import annotations

import json

from benchpilot_runner.spec import CONFIG_ERROR_EXIT, RunSpec

from . import GROUP, KIND, VERSION
from .config import OperatorConfig
from .plan import fmt_mib

RUN_LABEL = "benchpilot.io/run"
SHARD_LABEL = "benchpilot.io/shard"
OOM_ANNOTATION = "benchpilot.io/oom-retries"
SPEC_MOUNT = "/etc/benchpilot"
CACHE_MOUNT = "/cache"
RUNNER_UID = 10001


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
    """What the pods read from /etc/benchpilot/run.json: the spec with defaults and the run's uid."""
    data = spec.to_resolved()
    data["uid"] = meta["uid"]
    data["namespace"] = meta.get("namespace") or spec.namespace
    return data


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
              cfg: OperatorConfig, oom_retries: int = 0, suspend: bool = False) -> dict:
    run = meta["name"]
    env = [
        {"name": "BENCHPILOT_SHARD", "value": str(shard)},
        {"name": "BENCHPILOT_SHARDS", "value": str(spec.sharding.shards)},
        {"name": "BENCHPILOT_SPEC", "value": f"{SPEC_MOUNT}/run.json"},
        {"name": "BENCHPILOT_CONCURRENCY", "value": str(concurrency)},
        {"name": "BENCHPILOT_HEALTH_PORT", "value": str(cfg.runner_port)},
        {"name": "BENCHPILOT_MEMORY_REQUEST_BYTES", "value": str(request_bytes)},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
    ]
    volumes = [{"name": "spec", "configMap": {"name": configmap_name(run)}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    mounts = [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"}]
    if spec.cache_claim:
        env.append({"name": "BENCHPILOT_CACHE_DIR", "value": CACHE_MOUNT})
        volumes.append({"name": "cache", "persistentVolumeClaim": {"claimName": spec.cache_claim, "readOnly": True}})
        mounts.append({"name": "cache", "mountPath": CACHE_MOUNT, "readOnly": True})
    if spec.endpoint.api_key_secret:
        ref = spec.endpoint.api_key_secret
        env.append({"name": spec.endpoint.api_key_env,
                    "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}}})
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
