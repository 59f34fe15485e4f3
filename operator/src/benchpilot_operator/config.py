"""Operator settings, grouped by concern as kopf's own settings are; read from the environment (the
chart sets it). Each field names its variable in ``metadata`` and says, in its docstring, its unit
and why it has its default. ``OperatorConfig.from_env`` reads them all; nothing else reads env."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields

from benchpilot_runner.contract.podenv import DEFAULT_HEALTH_PORT
from benchpilot_runner.contract.sizing import BASE_MIB, HEADROOM_MIN_MIB, HEADROOM_RATIO, LIMIT_FACTOR


def _env(name: str, default):
    return field(default=default, metadata={"env": name})


@dataclass(frozen=True)
class RunnerPods:
    """The shard Jobs' pods."""

    image: str = _env("BENCHPILOT_RUNNER_IMAGE", "ghcr.io/benchpilot/runner:0.1.0")
    """Runner image (an image reference). The chart sets it from image.repository and the chart's version."""
    image_pull_policy: str = _env("BENCHPILOT_IMAGE_PULL_POLICY", "IfNotPresent")
    """imagePullPolicy of the runner container. IfNotPresent: a tagged release never changes under a node."""
    cpu_request: str = _env("BENCHPILOT_CPU_REQUEST", "250m")
    """CPU request (a Kubernetes quantity). A runner waits on the network most of the time: a quarter core."""
    service_account: str = _env("BENCHPILOT_RUNNER_SERVICE_ACCOUNT", "")
    """ServiceAccount of runner pods; empty: the namespace's default. Runners never call the API."""
    startup_seconds: int = _env("BENCHPILOT_STARTUP_SECONDS", 300)
    """Seconds a pod may take to load the cache before its startup probe fails it: a large cache on a
    cold network volume takes minutes."""
    port: int = _env("BENCHPILOT_RUNNER_PORT", DEFAULT_HEALTH_PORT)
    """Port of the runner's /healthz and /metrics (the probes and the progress scrape)."""


@dataclass(frozen=True)
class Memory:
    """A runner pod's memory: the footprint formula (benchpilot_runner.contract.sizing) and OOM retries."""

    base_mib: float = _env("BENCHPILOT_BASE_MIB", BASE_MIB)
    """MiB of a runner process before the cache and workers (interpreter, libraries), as measured by
    `benchpilot footprint` (baseMiB)."""
    headroom_ratio: float = _env("BENCHPILOT_HEADROOM_RATIO", HEADROOM_RATIO)
    """Request headroom as a fraction of the computed need: allocator slack and large answers."""
    headroom_min_mib: float = _env("BENCHPILOT_HEADROOM_MIN_MIB", HEADROOM_MIN_MIB)
    """Smallest headroom in MiB: small pods vary by tens of MiB whatever their size."""
    limit_factor: float = _env("BENCHPILOT_LIMIT_FACTOR", LIMIT_FACTOR)
    """Memory limit = request × this (capped at spec.resources.maxPodMemory): a spike is tolerated, a leak is not."""
    oom_factor: float = _env("BENCHPILOT_OOM_MEMORY_FACTOR", 1.5)
    """An OOMKilled shard is re-created with its memory × this: three retries reach 3.4× the first request."""
    max_oom_retries: int = _env("BENCHPILOT_MAX_OOM_RETRIES", 3)
    """Re-creations of one shard after OOM kills before it is Failed: beyond that the footprint is wrong."""


@dataclass(frozen=True)
class Watching:
    """What the operator watches and how often it looks."""

    namespace: str = _env("BENCHPILOT_WATCH_NAMESPACE", "")
    """Watch only this namespace; empty means cluster-wide."""
    resync_seconds: float = _env("BENCHPILOT_RESYNC_SECONDS", 10.0)
    """Seconds between reconciles of each run (status and progress); spec edits are handled at once."""
    scrape_timeout_s: float = _env("BENCHPILOT_SCRAPE_TIMEOUT_SECONDS", 2.0)
    """Seconds one progress scrape of a runner pod's /metrics may take: a busy pod is skipped, not waited for."""


@dataclass(frozen=True)
class Api:
    """The Kubernetes API."""

    concurrency: int = _env("BENCHPILOT_API_CONCURRENCY", 32)
    """API requests in flight at once per reconcile: a 1,000-shard run's Jobs are created in seconds
    without a burst that the API server's priority and fairness would throttle."""
    server: str = _env("BENCHPILOT_API_SERVER", "")
    """Talk to this API server URL without credentials (development and tests); empty: in-cluster or kubeconfig."""


@dataclass(frozen=True)
class Serving:
    """What the operator itself serves and logs."""

    metrics_port: int = _env("BENCHPILOT_METRICS_PORT", 8000)
    """Port of the operator's /metrics; 0 disables it."""
    liveness_port: int = _env("BENCHPILOT_LIVENESS_PORT", 8081)
    """Port of the operator's /healthz liveness endpoint; 0 disables it."""
    log_level: str = _env("BENCHPILOT_LOG_LEVEL", "INFO")
    """Log level: DEBUG, INFO, WARNING or ERROR."""


GROUPS = {"runner": RunnerPods, "memory": Memory, "watching": Watching, "api": Api, "serving": Serving}


@dataclass(frozen=True)
class OperatorConfig:
    runner: RunnerPods = RunnerPods()
    memory: Memory = Memory()
    watching: Watching = Watching()
    api: Api = Api()
    serving: Serving = Serving()

    @classmethod
    def from_env(cls, env: dict | None = None) -> "OperatorConfig":
        env = dict(os.environ if env is None else env)
        return cls(**{name: _group_from_env(group, env) for name, group in GROUPS.items()})

    def with_(self, **changes) -> "OperatorConfig":
        """A copy with fields changed, named ``group__field`` (``api__server="http://..."``)."""
        groups = {name: getattr(self, name) for name in GROUPS}
        for key, value in changes.items():
            group, _, name = key.partition("__")
            groups[group] = dataclasses.replace(groups[group], **{name: value})
        return OperatorConfig(**groups)


def _group_from_env(group: type, env: dict):
    values = {}
    for f in fields(group):
        name = f.metadata["env"]
        if env.get(name, "") != "":
            typ = type(f.default)
            try:
                values[f.name] = typ(env[name])
            except ValueError:
                raise ValueError(f"{name}={env[name]!r} is not a valid {typ.__name__}") from None
    return group(**values)


def env_names() -> dict[str, str]:
    """Every setting's variable, as ``group.field -> BENCHPILOT_...``."""
    return {f"{g}.{f.name}": f.metadata["env"] for g, cls in GROUPS.items() for f in fields(cls)}
