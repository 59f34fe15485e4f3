"""Operator settings, from the environment (the chart sets them). One docstring per field."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from benchpilot_runner.contract.sizing import BASE_MIB, HEADROOM_MIN_MIB, HEADROOM_RATIO, LIMIT_FACTOR


@dataclass(frozen=True)
class OperatorConfig:
    image: str = "ghcr.io/benchpilot/runner:0.1.0"
    """Runner image of the shard Jobs (BENCHPILOT_RUNNER_IMAGE)."""
    image_pull_policy: str = "IfNotPresent"
    """imagePullPolicy of the runner container (BENCHPILOT_IMAGE_PULL_POLICY)."""
    namespace: str = ""
    """Watch only this namespace; empty means cluster-wide (BENCHPILOT_WATCH_NAMESPACE)."""
    resync_seconds: float = 10.0
    """How often each run is reconciled and its status refreshed (BENCHPILOT_RESYNC_SECONDS)."""
    metrics_port: int = 8000
    """Port of the operator's /metrics; 0 disables it (BENCHPILOT_METRICS_PORT)."""
    liveness_port: int = 8081
    """Port of the operator's /healthz liveness endpoint; 0 disables it (BENCHPILOT_LIVENESS_PORT)."""
    base_mib: float = BASE_MIB
    """Memory of a runner process before the cache and workers: interpreter, libraries (BENCHPILOT_BASE_MIB).
    Measured by `benchpilot footprint` (baseMiB)."""
    headroom_ratio: float = HEADROOM_RATIO
    """Request headroom as a fraction of the computed need (BENCHPILOT_HEADROOM_RATIO)."""
    headroom_min_mib: float = HEADROOM_MIN_MIB
    """Smallest headroom added to a request (BENCHPILOT_HEADROOM_MIN_MIB)."""
    limit_factor: float = LIMIT_FACTOR
    """Memory limit = request × this factor, capped at spec.resources.maxPodMemory (BENCHPILOT_LIMIT_FACTOR)."""
    oom_memory_factor: float = 1.5
    """An OOMKilled shard is re-created with its memory × this factor (BENCHPILOT_OOM_MEMORY_FACTOR)."""
    max_oom_retries: int = 3
    """How often one shard may be re-created after an OOM kill before it is Failed (BENCHPILOT_MAX_OOM_RETRIES)."""
    cpu_request: str = "250m"
    """CPU request of a runner pod (BENCHPILOT_CPU_REQUEST)."""
    runner_service_account: str = ""
    """ServiceAccount of runner pods; empty uses the namespace default (BENCHPILOT_RUNNER_SERVICE_ACCOUNT)."""
    startup_seconds: int = 300
    """Time a pod may take to load the cache before its startup probe fails it (BENCHPILOT_STARTUP_SECONDS)."""
    runner_port: int = 8080
    """Port of the runner's /healthz and /metrics (BENCHPILOT_RUNNER_PORT)."""
    scrape_timeout_s: float = 2.0
    """Timeout of one progress scrape of a runner pod's /metrics (BENCHPILOT_SCRAPE_TIMEOUT_SECONDS)."""
    api_concurrency: int = 32
    """Kubernetes API requests in flight at once per reconcile (BENCHPILOT_API_CONCURRENCY)."""
    api_server: str = ""
    """Talk to this API server URL without credentials (development and tests) (BENCHPILOT_API_SERVER)."""
    log_level: str = "INFO"
    """Log level (BENCHPILOT_LOG_LEVEL)."""

    @classmethod
    def from_env(cls, env: dict | None = None) -> "OperatorConfig":
        env = dict(os.environ if env is None else env)
        values = {}
        for f in fields(cls):
            doc_env = env_name(f.name)
            if doc_env in env and env[doc_env] != "":
                raw = env[doc_env]
                typ = type(getattr(cls, f.name))
                try:
                    values[f.name] = typ(raw)
                except ValueError:
                    raise ValueError(f"{doc_env}={raw!r} is not a valid {typ.__name__}") from None
        return cls(**values)


# Every field is read from BENCHPILOT_<FIELD NAME>, but for these three.
_ENV_EXCEPTIONS = {"image": "BENCHPILOT_RUNNER_IMAGE", "namespace": "BENCHPILOT_WATCH_NAMESPACE",
                   "scrape_timeout_s": "BENCHPILOT_SCRAPE_TIMEOUT_SECONDS"}


def env_name(field_name: str) -> str:
    return _ENV_EXCEPTIONS.get(field_name, "BENCHPILOT_" + field_name.upper())
