"""PURE: the child objects of a BenchmarkRun as plain dicts. No API calls."""

from __future__ import annotations

import json

from benchpilot_runner.contract.outcomes import ExitCode
from benchpilot_runner.contract.podenv import (CACHE_MOUNT, DATA_MOUNT, SHARES_FILE, SHARES_MOUNT, SPEC_FILE, SPEC_MOUNT,
                                               TERMINATION_LOG, TMP_MOUNT, PodEnv)
from benchpilot_runner.contract.shares import share_of, shown
from benchpilot_runner.contract.types import RunSpec

from . import GROUP, KIND, VERSION
from .config import OperatorConfig
from .plan import fmt_mib

RUN_LABEL = "benchpilot.io/run"
SHARD_LABEL = "benchpilot.io/shard"
OOM_ANNOTATION = "benchpilot.io/oom-retries"
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
            "endpoints": {e.name: {str(i): shown(share_of(e.limits, f)) for i, f in sorted(shares.items())}
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
        "data": {SPEC_FILE: json.dumps(resolved_spec(spec, meta), indent=1, sort_keys=True)},
    }


def _probe(path: str, *, period: int, failures: int, timeout: int = 3) -> dict:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": timeout}


def pod_env(spec: RunSpec, shard: int, *, concurrency: int, request_bytes: int, cfg: OperatorConfig,
            share: float | None) -> PodEnv:
    """What the shard's runner is told (the share, when the run uses an endpoint, may grow through the ConfigMap)."""
    return PodEnv(shard=shard, shards=spec.sharding.shards, spec_path=f"{SPEC_MOUNT}/{SPEC_FILE}",
                  concurrency=concurrency, health_port=cfg.runner.port, memory_request_bytes=request_bytes,
                  termination_log=TERMINATION_LOG, data_dir=DATA_MOUNT,
                  cache_dir=CACHE_MOUNT if spec.cache_claim else None, limit_share=share,
                  shares_file=f"{SHARES_MOUNT}/{SHARES_FILE}" if share is not None else None)


def volumes(spec: RunSpec, run: str, *, share: float | None) -> tuple[list[dict], list[dict]]:
    """The pod's volumes and the runner's mounts: the spec, /tmp, scratch, the cache, the shares."""
    vols = [{"name": "spec", "configMap": {"name": configmap_name(run)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            # what a suite copies in (a remote dataset); outgrowing it evicts the pod (status says so)
            {"name": "data", "emptyDir": {"sizeLimit": f"{-(-spec.resources.scratch_bytes // 2**20)}Mi"}}]
    mounts = [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
              {"name": "tmp", "mountPath": TMP_MOUNT},
              {"name": "data", "mountPath": DATA_MOUNT}]
    if spec.cache_claim:
        vols.append({"name": "cache", "persistentVolumeClaim": {"claimName": spec.cache_claim, "readOnly": True}})
        mounts.append({"name": "cache", "mountPath": CACHE_MOUNT, "readOnly": True})
    if share is not None:
        vols.append({"name": "shares", "configMap": {"name": shares_configmap_name(run), "optional": True}})
        mounts.append({"name": "shares", "mountPath": SHARES_MOUNT, "readOnly": True})
    return vols, mounts


def secret_env(spec: RunSpec) -> list[dict]:
    """Each used endpoint's key from its Secret, never in the spec or the ConfigMap."""
    used = {m.endpoint for m in spec.models if not m.simulated}
    return [{"name": ep.key_env, "valueFrom": {"secretKeyRef": {"name": ep.api_key_secret["name"],
                                                               "key": ep.api_key_secret["key"]}}}
            for ep in spec.endpoints if ep.api_key_secret and ep.name in used]


def runner_container(spec: RunSpec, env: list[dict], mounts: list[dict], *, request_bytes: int, limit_bytes: int,
                     cfg: OperatorConfig) -> dict:
    container = {
        "name": "runner", "image": cfg.runner.image, "imagePullPolicy": cfg.runner.image_pull_policy,
        "args": ["shard"], "env": env,
        "ports": [{"name": "http", "containerPort": cfg.runner.port, "protocol": "TCP"}],
        "resources": {"requests": {"memory": fmt_mib(request_bytes), "cpu": cfg.runner.cpu_request},
                      "limits": {"memory": fmt_mib(limit_bytes)}},
        # /healthz fails once nothing progressed for hangTimeoutSeconds: the kubelet then kills the pod
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "startupProbe": _probe("/healthz", period=5, failures=max(1, -(-cfg.runner.startup_seconds // 5))),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    if spec.output.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": spec.output.credentials_secret}}]
    return container


def build_job(meta: dict, spec: RunSpec, shard: int, *, concurrency: int, request_bytes: int, limit_bytes: int,
              cfg: OperatorConfig, oom_retries: int = 0, suspend: bool = False, share: float | None = None) -> dict:
    run = meta["name"]
    env = pod_env(spec, shard, concurrency=concurrency, request_bytes=request_bytes, cfg=cfg, share=share).to_env()
    vols, mounts = volumes(spec, run, share=share)
    container = runner_container(spec, env + secret_env(spec), mounts, request_bytes=request_bytes,
                                 limit_bytes=limit_bytes, cfg=cfg)
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 15,  # the runner flushes and exits within 10 s of SIGTERM
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
                            "fsGroup": RUNNER_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": vols,
    }
    if cfg.runner.service_account:
        pod_spec["serviceAccountName"] = cfg.runner.service_account
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
                                                      "values": [int(ExitCode.CONFIG_ERROR)]}},
            ]},
            "template": {"metadata": {"labels": labels(run, shard)}, "spec": pod_spec},
        },
    }
