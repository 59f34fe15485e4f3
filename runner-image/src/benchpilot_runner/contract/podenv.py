"""What a runner pod is told by the operator: its environment and where its volumes are mounted. Pure.

:class:`PodEnv` is the only place the names of the pod's environment variables exist: the operator
writes them with :meth:`PodEnv.to_env`, the runner reads them with :meth:`PodEnv.from_env` (every
value checked, a bad one named: exit 2). Endpoint keys are not here: each endpoint names its own
variable (:attr:`types.Endpoint.key_env`), filled by the operator from a Secret.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

from .fields import SpecError, check_number

SPEC_MOUNT = "/etc/benchpilot"  # the resolved spec (ConfigMap <run>-spec)
SPEC_FILE = "run.json"
CACHE_MOUNT = "/cache"  # the shared read-only cache (spec.cache.claimName)
SHARES_MOUNT = "/etc/benchpilot-shares"  # the run's limit shares (ConfigMap <run>-shares), re-read while running
SHARES_FILE = "shares.json"
DATA_MOUNT = "/var/lib/benchpilot/data"  # scratch: what a suite copies in (spec.resources.scratch)
TMP_MOUNT = "/tmp"
TERMINATION_LOG = "/dev/termination-log"  # the runner says there why it ended; the operator reads it
DEFAULT_HEALTH_PORT = 8080

# the variable of each field; DATA_DIR is also honoured outside a pod (where a suite keeps what it makes)
ENV = {
    "shard": "BENCHPILOT_SHARD", "shards": "BENCHPILOT_SHARDS", "spec_path": "BENCHPILOT_SPEC",
    "concurrency": "BENCHPILOT_CONCURRENCY", "health_host": "BENCHPILOT_HEALTH_HOST",
    "health_port": "BENCHPILOT_HEALTH_PORT", "memory_request_bytes": "BENCHPILOT_MEMORY_REQUEST_BYTES",
    "termination_log": "BENCHPILOT_TERMINATION_LOG", "data_dir": "BENCHPILOT_DATA_DIR",
    "cache_dir": "BENCHPILOT_CACHE_DIR", "limit_share": "BENCHPILOT_LIMIT_SHARE",
    "shares_file": "BENCHPILOT_SHARES_FILE",
}
DATA_DIR_ENV = ENV["data_dir"]
CONTAINER_ENV = {"HF_HUB_OFFLINE": "1", "HOME": TMP_MOUNT}  # for the libraries in the image: no hub, a writable home


@dataclass(frozen=True)
class PodEnv:
    shard: int
    shards: int
    spec_path: str = f"{SPEC_MOUNT}/{SPEC_FILE}"
    concurrency: int | None = None  # the operator's plan (may be lower than the spec's, to fit memory)
    health_host: str = "0.0.0.0"
    health_port: int = DEFAULT_HEALTH_PORT
    memory_request_bytes: int | None = None  # what the pod requested (reported as a metric)
    termination_log: str | None = None  # the container's terminationMessagePath
    data_dir: str | None = None
    cache_dir: str | None = None
    limit_share: float | None = None  # this shard's fraction of the run's endpoint limits (None: all of them)
    shares_file: str | None = None  # the shares ConfigMap's file, re-read: a share only grows

    @property
    def share(self) -> float:
        return 1.0 if self.limit_share is None else self.limit_share

    def to_env(self) -> list[dict]:
        """The container's ``env`` entries (fields left at None are not set)."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "health_host" and value == f.default):
                continue
            out.append({"name": ENV[f.name], "value": f"{value:.6f}" if isinstance(value, float) else str(value)})
        return out + [{"name": k, "value": v} for k, v in CONTAINER_ENV.items()]

    @classmethod
    def from_env(cls, env: Mapping[str, str], spec_path: str | None = None) -> "PodEnv":
        """Read and check every variable; a bad one is a SpecError naming it."""
        shards = _int(env, "shards", minimum=1, maximum=10000)
        shard = _int(env, "shard", minimum=0, maximum=10000)
        if not 0 <= shard < shards:
            raise SpecError(f"env {ENV['shard']}", f"shard {shard} of {shards} does not exist (0..{shards - 1})")
        return cls(
            shard=shard, shards=shards, spec_path=spec_path or _text(env, "spec_path") or cls.spec_path,
            concurrency=_int(env, "concurrency", minimum=1, maximum=4096, optional=True),
            health_host=_text(env, "health_host") or cls.health_host,
            health_port=_int(env, "health_port", minimum=1, maximum=65535, optional=True) or cls.health_port,
            memory_request_bytes=_int(env, "memory_request_bytes", minimum=1, maximum=2**50, optional=True),
            termination_log=_text(env, "termination_log"), data_dir=_text(env, "data_dir"),
            cache_dir=_text(env, "cache_dir"), limit_share=_share(env), shares_file=_text(env, "shares_file"))


def _text(env: Mapping[str, str], field: str) -> str | None:
    return env.get(ENV[field]) or None


def _int(env: Mapping[str, str], field: str, *, minimum: int, maximum: int, optional: bool = False) -> int | None:
    name, raw = ENV[field], env.get(ENV[field])
    if raw in (None, ""):
        if optional:
            return None
        raise SpecError(f"env {name}", "is not set")
    try:
        value = int(raw.strip())
    except ValueError:
        raise SpecError(f"env {name}", f"{raw[:40]!r} is not an integer") from None
    return check_number(value, f"env {name}", minimum=minimum, maximum=maximum, integer=True)


def _share(env: Mapping[str, str]) -> float | None:
    name, raw = ENV["limit_share"], env.get(ENV["limit_share"])
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SpecError(f"env {name}", f"{raw[:40]!r} is not a number") from None
    return check_number(value, f"env {name}", minimum=0.0, maximum=1.0)
