"""A runner pod's memory: the formula the operator requests by and the runner reports (DESIGN.md). Pure.

request = base + sharedMiB + perWorkerMiB × concurrency, plus headroom (max(minimum, ratio × that));
limit = request × LIMIT_FACTOR, capped at maxPodMemory. The shared part (the memory-mapped cache) is
counted once per pod, not once per worker.
"""

from __future__ import annotations

BASE_MIB = 160.0  # a runner process before the cache and workers (measured by `benchpilot footprint`)
HEADROOM_RATIO = 0.2
HEADROOM_MIN_MIB = 64.0
LIMIT_FACTOR = 1.5  # memory limit = request × this, capped at maxPodMemory


def memory_request_mib(shared_mib: float, per_worker_mib: float, concurrency: int, *, base_mib: float = BASE_MIB,
                       headroom_ratio: float = HEADROOM_RATIO, headroom_min_mib: float = HEADROOM_MIN_MIB) -> int:
    """The memory a runner pod requests, in MiB (rounded up)."""
    need = base_mib + shared_mib + per_worker_mib * concurrency
    need += max(headroom_min_mib, headroom_ratio * need)
    return int(-(-need // 1))
