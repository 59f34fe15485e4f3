"""Rate limits of one endpoint: requests and tokens per minute, concurrency, learned from its answers.

One :class:`EndpointLimiter` per endpoint and process, shared by every case and shard of that
process, so a local run with many shards never exceeds an endpoint's limit. A pod holds its
share of the run's limit (:meth:`EndpointLimiter.set_share`); the share can change while it runs.

The request rate is never above the ceiling: the share of the configured ``requestsPerMinute``,
and the pod's fraction of the limit the provider's own headers state (:mod:`.ratelimit_headers`;
no configured limit is needed for that). Below it, :mod:`.adaptive` lowers the rate for a limit we
exceed, and leaves it alone for throttling we do not cause. When the headers say nothing is left
of the limit, nothing is sent until it refills. A case waiting here is marked (``LIMITER_WAIT``):
when its deadline passes while it waits, its row says so (``limiter_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Callable, Mapping

from .adaptive import AdaptiveRate, AdaptiveSettings, Window
from .base import LIMITER_WAIT
from .ratelimit_headers import RateLimitInfo, read_rate_limits
from .retry import wait_from_headers

log = logging.getLogger("benchpilot.limits")
STATED_MARGIN = 0.98  # of a limit the provider states: its clock and ours differ a little
MAX_HOLD_S = 60.0  # the longest the limiter holds every request (a full window, nothing left)
RUN_TO_HOLD = 5  # 429s in a row (any requests) that say the provider's window is full; or
LONG_RUN_TO_HOLD, LONG_WAIT_S = 3, 2.0  # that many in a row, each asking to wait this long or longer


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
        """Wait until ``amount`` tokens are there, then take them. Fair: waiters go in arrival order.
        Sleeps in short steps, so a new rate counts at once."""
        async with self._lock:
            while True:
                self._refill()
                need = min(amount, self.capacity)  # a request larger than the bucket waits for a full one
                if self._tokens >= need:
                    self._tokens -= amount
                    return
                await asyncio.sleep(min(0.1, (need - self._tokens) / self.rate))


def _burst(rate_per_s: float) -> float:
    return max(1.0, rate_per_s * 0.25)


def _bucket(rate_per_s: float | None, clock: Callable[[], float]) -> TokenBucket | None:
    # a quarter second's burst, starting (nearly) empty: over any window of T seconds at most
    # rate × T + burst go out, so a run never starts with a burst above the limit
    return TokenBucket(rate_per_s, burst=_burst(rate_per_s), clock=clock, start_full=False) if rate_per_s else None


class EndpointLimiter:
    """Requests/minute, tokens/minute and concurrency of one endpoint for this process."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None = None,
                 max_concurrency: int | None = None, *, fraction: float = 1.0, name: str = "default",
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 settings: AdaptiveSettings = AdaptiveSettings()):
        self.name, self.clock, self.wall = name, clock, wall
        self.fraction = fraction  # this process's fraction of the run's limits (a provider states the run's)
        self.share_rpm, self.share_tpm = requests_per_minute, tokens_per_minute
        self.stated: RateLimitInfo = RateLimitInfo()  # the limits the provider's headers stated last
        self.adaptive = AdaptiveRate(None, settings, clock=wall, fraction=fraction)
        self._requests: TokenBucket | None = None
        self._tokens: TokenBucket | None = None
        self._sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._hold_until = -1e18  # monotonic: nothing is sent before (the provider said nothing is left)
        self._verdict = None
        self._last_expected = 0.0  # the tokens the last request expected
        self._in_a_row = 0  # 429s in a row
        self._run_wait = 0.0  # the shortest wait they asked for
        self.throttled = 0
        self._apply_ceiling()

    # ------------------------------------------------------------------ the ceiling and the rate

    def _ceilings(self) -> tuple[float | None, float | None]:
        """(requests, tokens) per second: the share, and this process's part of what the provider states."""
        out = []
        for share, stated in ((self.share_rpm, self.stated.limit_requests), (self.share_tpm, self.stated.limit_tokens)):
            known = [v for v in (share, stated * self.fraction * STATED_MARGIN if stated else None) if v]
            out.append(min(known) / 60.0 if known else None)
        return out[0], out[1]

    def _apply_ceiling(self) -> None:
        requests, tokens = self._ceilings()
        self.adaptive.set_ceiling(requests)
        self._apply_rate()
        if tokens is None:
            self._tokens = None
        elif self._tokens is None:
            self._tokens = _bucket(tokens, self.clock)
        elif tokens != self._tokens.rate:
            self._tokens.set_rate(tokens, burst=_burst(tokens))

    def _apply_rate(self) -> None:
        rate = self.adaptive.rate
        if rate is None:
            self._requests = None
        elif self._requests is None:
            self._requests = _bucket(rate, self.clock)
        elif abs(rate - self._requests.rate) > 1e-9:
            self._requests.set_rate(rate, burst=_burst(rate))
        verdict = self.adaptive.verdict
        if verdict is not self._verdict and verdict is not None and verdict.kind != "probing":
            level = logging.WARNING if verdict.kind == "limit" else logging.INFO
            log.log(level, "endpoint rate adapted to its 429s", extra={"endpoint": self.name,
                                                                       "state": self.adaptive.describe()})
        self._verdict = verdict

    def set_share(self, requests_per_minute: float | None, tokens_per_minute: float | None = None, *,
                  fraction: float | None = None) -> None:
        """This process's share of the run's limit changed (pods re-read it while they run)."""
        self.share_rpm, self.share_tpm = requests_per_minute, tokens_per_minute
        if fraction is not None and fraction > 0:
            if self.fraction > 0 and fraction != self.fraction:
                self.adaptive.rescale(fraction / self.fraction)
            self.fraction = self.adaptive.fraction = fraction
        self._apply_ceiling()

    @property
    def rpm(self) -> float | None:
        """The request rate allowed now, per minute (None: no limit known)."""
        return None if self.adaptive.rate is None else self.adaptive.rate * 60.0

    def describe(self) -> str:
        return f"endpoint {self.name!r}: " + self.adaptive.describe()

    # ------------------------------------------------------------------ sending

    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait for a request slot (and ``tokens`` expected tokens) under the limits. The case's wait is
        marked for its row, should its deadline pass meanwhile."""
        mark = LIMITER_WAIT.get()
        if mark is not None:
            mark.waiting(self, self.clock())
        # cancelled here (the case's deadline passed), the mark stays: the row says where the case waited
        while (left := self._hold_until - self.clock()) > 0:
            await asyncio.sleep(min(left, 0.5))
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None and tokens > 0:
            self._last_expected = tokens
            await self._tokens.acquire(tokens)
        if mark is not None:
            mark.done(self.clock())

    @contextlib.asynccontextmanager
    async def slot(self):
        """Hold one of ``maxConcurrency`` in-flight requests."""
        if self._sem is None:
            yield
            return
        mark = LIMITER_WAIT.get()
        if mark is not None:
            mark.waiting(self, self.clock())
        await self._sem.acquire()  # cancelled here, the mark stays (as in acquire)
        if mark is not None:
            mark.done(self.clock())
        try:
            yield
        finally:
            self._sem.release()

    def sending(self) -> Window:
        """A request goes out now: the ticket to hand to :meth:`answered`."""
        return self.adaptive.sent()

    def answered(self, ticket: Window, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """What became of a request: its HTTP status (None: no answer at all) and the answer's headers."""
        if status == 429:
            self.throttled += 1
        if headers:
            self._learn(read_rate_limits(headers, now_epoch=self.wall()))
        if status is not None:
            self._hold_if_window_full(status, headers)
        self.adaptive.answered(ticket, None if status is None else status == 429)
        self._apply_rate()

    def _learn(self, info: RateLimitInfo) -> None:
        if info.empty:
            return
        stated = RateLimitInfo(info.limit_requests or self.stated.limit_requests, info.remaining_requests,
                               info.reset_requests_s, info.limit_tokens or self.stated.limit_tokens,
                               info.remaining_tokens, info.reset_tokens_s)
        changed = (stated.limit_requests, stated.limit_tokens) != (self.stated.limit_requests, self.stated.limit_tokens)
        self.stated = stated
        if changed:
            self._apply_ceiling()
        self._hold_if_nothing_left(info)

    def _hold_if_window_full(self, status: int, headers: Mapping[str, str] | None) -> None:
        """``RUN_TO_HOLD`` 429s in a row, whatever requests they answered (or ``LONG_RUN_TO_HOLD`` that
        each ask to wait ``LONG_WAIT_S`` or more): the provider's window is full and refuses everything
        until it reopens, so hold every request until the last 429 said to come back. Throttling we do
        not cause makes such a run next to never: 5 in a row at 10 % is 1 in 10^5 answers."""
        if status != 429:
            self._in_a_row = 0
            return
        wait = wait_from_headers(headers or {}, now_epoch=self.wall()) or 0.0
        self._run_wait = min(self._run_wait, wait) if self._in_a_row else wait
        self._in_a_row += 1
        if self._in_a_row >= RUN_TO_HOLD or (self._in_a_row >= LONG_RUN_TO_HOLD and self._run_wait >= LONG_WAIT_S):
            if self.clock() >= self._hold_until:  # once per full window
                self.adaptive.window_full()
            if wait:
                self._hold(wait)

    def _hold(self, seconds: float) -> None:
        now = self.clock()
        until = now + min(MAX_HOLD_S, seconds)
        if until > self._hold_until:
            wall = self.wall()
            self.adaptive.held(wall + max(0.0, self._hold_until - now), wall + until - now)
            self._hold_until = until

    def _hold_if_nothing_left(self, info: RateLimitInfo) -> None:
        """Our fraction of what the provider says is left is under one request (or under a request's
        tokens): send nothing until it refills (one request's worth at the stated rate, or the reset)."""
        for left, reset, limit, need in ((info.remaining_requests, info.reset_requests_s, info.limit_requests, 1.0),
                                         (info.remaining_tokens, info.reset_tokens_s, info.limit_tokens,
                                          max(1.0, self._last_expected))):
            if left is None or left * self.fraction >= need:
                continue
            waits = [w for w in (reset, (need / self.fraction - left) * 60.0 / limit if limit else None)
                     if w is not None]
            if waits:
                self._hold(min(waits))

    @property
    def counts_tokens(self) -> bool:
        """Whether requests must say how many tokens they expect (a tokens-per-minute limit is known)."""
        return self._tokens is not None

    def settle(self, expected: float, actual: float) -> None:
        """After the answer: correct the token bucket by what was really used."""
        if self._tokens is not None and actual != expected:
            self._tokens.debit(actual - expected)
