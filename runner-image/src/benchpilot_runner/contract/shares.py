"""One shard's share of an endpoint's run-wide limits: the one computation both sides use. Pure.

The operator hands each running shard a fraction (``operator/.../shares.py`` decides them); the pod
limits itself to :func:`share_of` its endpoints' limits, and the shares ConfigMap shows the same
figures (:func:`shown`).
"""

from __future__ import annotations

import math

from .types import EndpointLimits

MIN_RPM = 0.01  # a shard without a share yet waits (about one request a hundred minutes) until it gets one


def share_of(limits: EndpointLimits, fraction: float) -> EndpointLimits:
    """``limits`` times ``fraction`` (clamped to 0..1); a rate never drops to zero, concurrency never below 1."""
    f = max(0.0, min(1.0, fraction))
    return EndpointLimits(
        requests_per_minute=max(MIN_RPM, limits.requests_per_minute * f) if limits.requests_per_minute else None,
        tokens_per_minute=max(MIN_RPM, limits.tokens_per_minute * f) if limits.tokens_per_minute else None,
        max_concurrency=max(1, int(limits.max_concurrency * f)) if limits.max_concurrency else None)


def shown(limits: EndpointLimits) -> dict:
    """A share as the ConfigMap shows it: camelCase, rates rounded down to a thousandth (never above it)."""
    def down(x: float | None) -> float | None:
        return None if x is None else math.floor(x * 1000) / 1000
    return {"requestsPerMinute": down(limits.requests_per_minute), "tokensPerMinute": down(limits.tokens_per_minute),
            "maxConcurrency": limits.max_concurrency}
