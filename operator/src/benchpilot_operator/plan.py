"""PURE: a run's spec -> shards, concurrency and memory. No I/O.

request = base + footprint.sharedMiB + footprint.perWorkerMiB × concurrency, plus headroom
(max(headroomMin, ratio × that)); limit = request × limitFactor, capped at maxPodMemory. The
shared part is counted once per pod: the cache is memory-mapped read-only, not copied per worker.
If the request does not fit maxPodMemory, concurrency is lowered until it does; if even one
worker does not fit, the run is refused with the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchpilot_runner.contract.cases import shard_sizes
from benchpilot_runner.contract.sizing import memory_request_mib
from benchpilot_runner.contract.types import RunSpec

from .config import OperatorConfig

MiB = 1024 * 1024


class PlanError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ShardPlan:
    index: int
    cases: int
    concurrency: int
    request_bytes: int
    limit_bytes: int


@dataclass(frozen=True)
class Plan:
    shards: tuple[ShardPlan, ...]
    concurrency: int
    requested_concurrency: int
    request_bytes: int
    limit_bytes: int

    @property
    def lowered(self) -> bool:
        return self.concurrency < self.requested_concurrency


def request_bytes(spec: RunSpec, concurrency: int, cfg: OperatorConfig) -> int:
    return memory_request_mib(spec.resources.shared_mib, spec.resources.per_worker_mib, concurrency,
                              base_mib=cfg.memory.base_mib, headroom_ratio=cfg.memory.headroom_ratio,
                              headroom_min_mib=cfg.memory.headroom_min_mib) * MiB


def limit_for(request: int, spec: RunSpec, cfg: OperatorConfig) -> int:
    return min(int(request * cfg.memory.limit_factor), max(request, spec.resources.max_pod_memory_bytes))


def fmt_mib(b: int) -> str:
    return f"{b / MiB:.0f}Mi"


def plan_run(spec: RunSpec, cfg: OperatorConfig) -> Plan:
    sizes = shard_sizes(spec.total_cases, spec.sharding.shards)
    wanted = max(1, min(spec.sharding.concurrency_per_shard, max(sizes)))
    cap = spec.resources.max_pod_memory_bytes
    conc = wanted
    if request_bytes(spec, conc, cfg) > cap:
        if request_bytes(spec, 1, cfg) > cap:
            raise PlanError("InsufficientMemory", (
                f"one worker needs {fmt_mib(request_bytes(spec, 1, cfg))} (base {cfg.memory.base_mib:g}Mi + shared "
                f"{spec.resources.shared_mib:g}Mi + 1 × {spec.resources.per_worker_mib:g}Mi per worker + headroom), "
                f"more than spec.resources.maxPodMemory {fmt_mib(cap)}; raise maxPodMemory or shrink the cache"))
        lo, hi = 1, conc
        while lo < hi:  # largest concurrency whose request fits
            mid = (lo + hi + 1) // 2
            if request_bytes(spec, mid, cfg) <= cap:
                lo = mid
            else:
                hi = mid - 1
        conc = lo
    req = request_bytes(spec, conc, cfg)
    lim = limit_for(req, spec, cfg)
    shards = tuple(ShardPlan(i, n, max(1, min(conc, n)), req, lim) for i, n in enumerate(sizes))
    # "lowered" means lowered to fit memory; a concurrency capped at the shard's case count is not
    return Plan(shards, conc, wanted, req, lim)


def grown_request(current: int, spec: RunSpec, cfg: OperatorConfig) -> int | None:
    """Memory for a shard re-created after an OOM kill; None when it cannot grow any more."""
    cap = spec.resources.max_pod_memory_bytes
    if current >= cap:
        return None
    return min(cap, int(math.ceil(current * cfg.memory.oom_factor / MiB)) * MiB)
