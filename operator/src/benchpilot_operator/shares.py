"""PURE: each shard's share of the run's endpoint limits. No I/O.

An endpoint's limits (requests and tokens per minute, concurrency) hold for the whole run, summed
over its pods. Every shard holds positions p % N == i across the whole matrix, so it uses every
endpoint in the same proportion: one fraction per shard serves every endpoint.

The rules, which keep the sum of fractions <= 1 at every moment, whatever the order in which pods
read their shares:

1. A shard's fraction never shrinks while it holds one. So a pod that has not yet re-read its
   share (a ConfigMap update reaches a pod with a delay) can only be using less than it may.
2. A shard releases its fraction only when its Job is finished (its pod has terminated).
3. A new shard gets a fraction only from what is free: min(fair share, free / new shards).
4. When no shard is left to start (after this pass's creations), what is free goes to the shards
   holding one, equally: the tail of a run never crawls at 1/N of the limit.

A pod learns its fraction at creation (env ``BENCHPILOT_LIMIT_SHARE``) and re-reads the run's
shares ConfigMap every few seconds, taking the larger of the two (rule 1 makes that safe).
"""

from __future__ import annotations

from typing import Iterable, Mapping

EPSILON = 1e-9


def allocate(prev: Mapping[int, float], holding: Iterable[int], creating: Iterable[int], *,
             all_started: bool) -> dict[int, float]:
    """The new fractions. ``holding``: shards whose Job exists and is not finished (they keep theirs);
    ``creating``: shards whose Job is created in this pass; ``all_started``: no shard is waiting to start."""
    holding = set(holding)
    creating = [i for i in creating if i not in holding]
    shares = {i: f for i, f in prev.items() if i in holding}
    for i in holding - set(shares):  # a holder the operator has no record of (status lost): nothing is free for it
        shares[i] = 0.0
    free = max(0.0, 1.0 - sum(shares.values()))
    if creating:
        fair = 1.0 / (len(shares) + len(creating))
        give = min(fair, free / len(creating))
        for i in creating:
            shares[i] = give
        free = max(0.0, free - give * len(creating))
    if all_started and shares and free > EPSILON:
        bonus = free / len(shares)
        shares = {i: f + bonus for i, f in shares.items()}
    # never above 1 in total, also after floating point: scale down the newest grants if needed
    total = sum(shares.values())
    if total > 1.0:
        scale = 1.0 / total
        shares = {i: f * scale for i, f in shares.items()}
    return dict(sorted(shares.items()))
