"""PURE: windows of sends and what became of them, and how unlikely a count of 429s is by chance."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(eq=False)
class Window:
    """The sends of one stretch of time and what became of them (a send's ticket)."""

    start: float
    epoch: int
    sent: int = 0
    answered: int = 0
    throttled: int = 0
    lost: int = 0  # no answer: a timeout, a connection error
    end: float | None = None
    held: float = 0.0  # seconds of it during which nothing was sent (the provider's window was full)

    @property
    def outstanding(self) -> int:
        return self.sent - self.answered - self.lost

    @property
    def share(self) -> float:
        return self.throttled / self.answered if self.answered else 0.0

    def send_rate(self, now: float) -> float:
        """Sends per second of the time sending was allowed."""
        return self.sent / max(1e-3, (self.end if self.end is not None else now) - self.start - self.held)


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        total += term
        if i > n * p and term < total * 1e-12:
            break
    return min(1.0, total)
