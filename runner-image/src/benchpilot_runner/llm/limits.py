"""Rate limits of one endpoint: requests and tokens per minute, concurrency, adaptive on 429.

One :class:`EndpointLimiter` per endpoint and process, shared by every case and shard of that
process, so a local run with many shards never exceeds an endpoint's limit. A pod holds its
share of the run's limit (:meth:`EndpointLimiter.set_share`); the share can change while it runs.

Adaptive: a 429 means the provider's real limit is lower than ours (a key shared with others).
The request rate then drops multiplicatively (at most once per ``decrease_interval_s``, so one
burst of 429s counts once) and climbs back additively, a little every second without a 429, up to
the share: AIMD, as TCP does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Callable


class TokenBucket:
    """Tokens refill at ``rate`` per second up to ``capacity``; ``take`` may go into debt."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 start_full: bool = True):
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.capacity if start_full else min(1.0, self.capacity)
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        self._refill()
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self._tokens = min(self._tokens, self.capacity)

    def debit(self, amount: float) -> None:
        """Take ``amount`` now without waiting (a correction after the fact, e.g. real token usage)."""
        self._refill()
        self._tokens -= amount

    async def acquire(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` tokens are there, then take them. Fair: waiters go in arrival order."""
        async with self._lock:
            while True:
                self._refill()
                need = min(amount, self.capacity)  # a request larger than the bucket waits for a full one
                if self._tokens >= need:
                    self._tokens -= amount
                    return
                await asyncio.sleep((need - self._tokens) / self.rate)


def _burst(rate_per_s: float) -> float:
    return max(1.0, rate_per_s * 0.25)


class EndpointLimiter:
    """Requests/minute, tokens/minute and concurrency of one endpoint for this process."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None = None,
                 max_concurrency: int | None = None, *, clock: Callable[[], float] = time.monotonic,
                 decrease: float = 0.5, increase_per_s: float = 0.02, decrease_interval_s: float = 2.0,
                 floor_ratio: float = 0.02):
        self.clock = clock
        self.decrease, self.increase_per_s = decrease, increase_per_s
        self.decrease_interval_s, self.floor_ratio = decrease_interval_s, floor_ratio
        self.share_rpm = requests_per_minute
        self.rpm = requests_per_minute  # the current, adaptive request rate (<= share_rpm)
        self._requests = self._bucket(requests_per_minute)
        self._tokens = self._bucket(tokens_per_minute)
        self._sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._last_decrease = -1e18
        self._last_adjust = clock()
        self.throttled = 0

    def _bucket(self, per_minute: float | None) -> TokenBucket | None:
        if not per_minute:
            return None
        rate = per_minute / 60.0
        # a quarter second's burst, starting (nearly) empty: over any window of T seconds at most
        # rate × T + burst go out, so a run never starts with a burst above the limit
        return TokenBucket(rate, burst=_burst(rate), clock=self.clock, start_full=False)

    def set_share(self, requests_per_minute: float | None, tokens_per_minute: float | None = None) -> None:
        """This process's share of the run's limit changed (pods re-read it while they run)."""
        self.share_rpm = requests_per_minute
        if requests_per_minute and self._requests:
            self.rpm = min(self.rpm or requests_per_minute, requests_per_minute) if self.throttled else \
                requests_per_minute
            self._requests.set_rate(self.rpm / 60.0, burst=_burst(self.rpm / 60.0))
        if tokens_per_minute and self._tokens:
            self._tokens.set_rate(tokens_per_minute / 60.0, burst=_burst(tokens_per_minute / 60.0))

    def _recover(self) -> None:
        now = self.clock()
        dt_s, self._last_adjust = now - self._last_adjust, now
        if self._requests is None or not self.share_rpm or self.rpm >= self.share_rpm:
            return
        self.rpm = min(self.share_rpm, self.rpm + self.share_rpm * self.increase_per_s * dt_s)
        self._requests.set_rate(self.rpm / 60.0, burst=1.0)

    def on_throttled(self) -> None:
        """A 429: lower the request rate multiplicatively (once per burst of 429s)."""
        self.throttled += 1
        now = self.clock()
        if self._requests is None or now - self._last_decrease < self.decrease_interval_s:
            return
        self._last_decrease = now
        self._recover()
        self.rpm = max(self.share_rpm * self.floor_ratio, self.rpm * self.decrease)
        self._requests.set_rate(self.rpm / 60.0, burst=1.0)

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait for a request slot (and ``tokens`` expected tokens) under the limits."""
        self._recover()
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None and tokens > 0:
            await self._tokens.acquire(tokens)

    @property
    def counts_tokens(self) -> bool:
        """Whether requests must say how many tokens they expect (a tokens-per-minute limit is set)."""
        return self._tokens is not None

    def settle(self, expected: float, actual: float) -> None:
        """After the answer: correct the token bucket by what was really used."""
        if self._tokens is not None and actual != expected:
            self._tokens.debit(actual - expected)

    @contextlib.asynccontextmanager
    async def slot(self):
        """Hold one of ``maxConcurrency`` in-flight requests."""
        if self._sem is None:
            yield
            return
        async with self._sem:
            yield
