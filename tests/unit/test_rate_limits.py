"""The rate limiter's decisions, on an injected clock: a limit we exceed against throttling we do not
cause, the provider's stated limits, and the run-wide share (bench/rate_limits.py measures the rest)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time

import pytest

from benchpilot_runner.llm.adaptive import AdaptiveRate, AdaptiveSettings, binomial_tail
from benchpilot_runner.llm.base import LIMITER_WAIT, QueueWait
from benchpilot_runner.llm.limits import EndpointLimiter
from benchpilot_runner.llm.ratelimit_headers import RateLimitInfo, parse_reset, read_rate_limits
from benchpilot_runner.scheduler import timeout_fields


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def drive(ctrl: AdaptiveRate, clock: Clock, server, seconds: float, *, demand: float = 1e9, dt_s: float = 0.01):
    """Send at the controller's rate (at most ``demand`` per second) for ``seconds``; ``server(t)`` says
    whether each request is answered 429. Returns [(time, throttled, rate, verdict)] of every send."""
    sent, credit, end = [], 0.0, clock.t + seconds
    while clock.t < end:
        rate = min(ctrl.rate or demand, demand)
        credit = min(credit + rate * dt_s, max(1.0, rate * 0.25))
        while credit >= 1:
            credit -= 1
            ticket = ctrl.sent()
            throttled = server(clock.t)
            ctrl.answered(ticket, throttled)
            sent.append((clock.t, throttled, ctrl.rate, ctrl.verdict.kind if ctrl.verdict else None))
        clock.t += dt_s
    return sent


def random_429(share: float, seed: int = 1):
    rng = random.Random(seed)
    return lambda t: rng.random() < share


def bucket_limit(per_s: float, burst: float):
    state = {"tokens": burst, "t": None}

    def server(t: float) -> bool:
        if state["t"] is not None:
            state["tokens"] = min(burst, state["tokens"] + (t - state["t"]) * per_s)
        state["t"] = t
        if state["tokens"] >= 1:
            state["tokens"] -= 1
            return False
        return True
    return server


def share_429(sends, since: float) -> float:
    tail = [s for s in sends if s[0] >= since]
    return sum(s[1] for s in tail) / max(1, len(tail))


def rate_between(sends, start: float, end: float) -> float:
    return sum(1 for s in sends if start <= s[0] < end) / (end - start)


# ---------------------------------------------------------------- throttling we do not cause


@pytest.mark.parametrize("share", [0.03, 0.10, 0.20])
def test_random_429s_do_not_lower_the_rate(share):
    clock = Clock()
    ctrl = AdaptiveRate(50.0, clock=clock)
    sends = drive(ctrl, clock, random_429(share), 120)
    assert rate_between(sends, clock.t - 100, clock.t) >= 0.9 * 50, ctrl.describe()
    assert ctrl.rate == 50.0
    assert "limit" not in {s[3] for s in sends}, "random 429s are never taken for a limit"
    if share >= 0.10:  # a 3 % trickle stays within the tolerance of chance; more is learned as background
        assert ctrl.verdict.kind == "background" and ctrl.background == pytest.approx(share, abs=0.05)


def test_a_few_429s_change_nothing():
    clock = Clock()
    ctrl = AdaptiveRate(20.0, clock=clock)
    drive(ctrl, clock, lambda t: False, 5)
    ticket = ctrl.sent()
    ctrl.answered(ticket, True)  # one 429 among a hundred answers
    drive(ctrl, clock, lambda t: False, 5)
    assert ctrl.rate == 20.0 and ctrl.verdict is None


# ---------------------------------------------------------------- a limit we exceed


def test_a_limit_below_ours_is_found_and_kept():
    clock = Clock()
    ctrl = AdaptiveRate(40.0, clock=clock)  # configured at twice the provider's real limit
    sends = drive(ctrl, clock, bucket_limit(20.0, 20.0), 120)
    assert "limit" in {s[3] for s in sends}
    reached = next(s[0] for s in sends if s[2] <= 20.0 * 1.05)
    assert reached - sends[0][0] < 30
    steady = rate_between(sends, clock.t - 60, clock.t)
    assert 0.85 * 20 <= steady <= 1.05 * 20, ctrl.describe()
    assert share_429(sends, clock.t - 60) <= 0.05


def test_nearly_all_429s_are_a_limit_without_a_probe():
    clock = Clock()
    ctrl = AdaptiveRate(40.0, clock=clock)
    drive(ctrl, clock, lambda t: True, 2.5)
    assert ctrl.verdict.kind == "limit" and ctrl.rate <= 20.0


def test_probes_start_on_the_clock_grid_so_pods_probe_together():
    clock = Clock(1003.3)
    ctrl = AdaptiveRate(50.0, clock=clock)
    drive(ctrl, clock, random_429(0.12, seed=3), 4)
    assert ctrl.verdict is not None and ctrl.verdict.kind == "probing"
    assert ctrl.rate == 50.0, "the rate is lowered only when the probe window starts"
    start = ctrl._open.start
    assert start % AdaptiveSettings().probe_grid_s == pytest.approx(0.0, abs=1e-9)
    clock.t = start + 0.01
    ctrl.answered(ctrl.sent(), False)
    assert ctrl.rate == pytest.approx(0.7 * 50, rel=0.15)


def test_a_full_window_halves_the_rate_at_once():
    clock = Clock()
    ctrl = AdaptiveRate(40.0, clock=clock)
    ctrl.window_full()
    assert 0.45 * 40 <= ctrl.rate <= 0.5 * 40 and ctrl.verdict.kind == "limit"


def test_never_above_the_ceiling_and_a_larger_share_scales_what_was_learned():
    clock = Clock()
    ctrl = AdaptiveRate(40.0, clock=clock)
    drive(ctrl, clock, bucket_limit(10.0, 10.0), 60)
    learned = ctrl.rate
    assert learned < 12
    ctrl.rescale(2.0)  # the other half of the run finished: this pod holds twice its fraction
    assert ctrl.rate == pytest.approx(2 * learned)
    ctrl.set_ceiling(15.0)
    assert ctrl.rate <= 15.0


def test_binomial_tail():
    assert binomial_tail(0, 10, 0.1) == 1.0
    assert binomial_tail(11, 10, 0.1) == 0.0
    assert binomial_tail(1, 1, 0.5) == pytest.approx(0.5)
    assert binomial_tail(3, 10, 0.01) == pytest.approx(1.14e-4, rel=0.01)


# ---------------------------------------------------------------- the provider's headers


NOW = 1_800_000_000.0


@pytest.mark.parametrize("headers, expected", [
    ({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
      "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "30000",
      "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2s"},
     RateLimitInfo(500, 499, 0.12, 30000, 29000, 2.0)),
    ({"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
      "anthropic-ratelimit-requests-reset": dt.datetime.fromtimestamp(NOW + 3, dt.timezone.utc).isoformat(),
      "anthropic-ratelimit-input-tokens-limit": "40000"},
     RateLimitInfo(50, 0, 3.0, 40000, None, None)),
    ({"llm_provider-x-ratelimit-limit-requests": "100", "X-RateLimit-Limit-Requests": "60",
      "llm_provider-x-ratelimit-remaining-requests": "5", "x-ratelimit-remaining-requests": "9"},
     RateLimitInfo(60, 5, None, None, None, None)),  # a gateway's own limit and the provider's: the tighter
    ({"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-3",
      "x-ratelimit-reset-requests": "soon", "content-type": "application/json"}, RateLimitInfo()),
])
def test_rate_limit_headers(headers, expected):
    info = read_rate_limits(headers, now_epoch=NOW)
    assert info.limit_requests == expected.limit_requests and info.limit_tokens == expected.limit_tokens
    assert info.remaining_requests == expected.remaining_requests
    assert info.remaining_tokens == expected.remaining_tokens
    for got, want in ((info.reset_requests_s, expected.reset_requests_s), (info.reset_tokens_s, expected.reset_tokens_s)):
        assert (got is None) == (want is None) and (want is None or got == pytest.approx(want, abs=0.01))


def test_reset_formats():
    assert parse_reset("6m0s", now_epoch=NOW) == 360
    assert parse_reset(str(NOW + 7), now_epoch=NOW) == pytest.approx(7)
    assert parse_reset("2030-01-01T00:00:00Z", now_epoch=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
                       .timestamp() - 5) == pytest.approx(5)
    assert parse_reset("yesterday", now_epoch=NOW) is None


# ---------------------------------------------------------------- the limiter


def test_a_stated_limit_sets_the_ceiling_at_this_pods_fraction_without_a_429():
    lim = EndpointLimiter(1500, fraction=0.25, name="api")  # our share: 1500/min of a configured 6000
    assert lim.rpm == 1500
    lim.answered(lim.sending(), 200, {"x-ratelimit-limit-requests": "1200", "x-ratelimit-remaining-requests": "900"})
    assert lim.rpm == pytest.approx(1200 * 0.25 * 0.98)
    unlimited = EndpointLimiter(None, name="open")  # nothing configured: the headers alone set a limit
    assert unlimited.rpm is None
    unlimited.answered(unlimited.sending(), 200, {"anthropic-ratelimit-requests-limit": "600"})
    assert unlimited.rpm == pytest.approx(600 * 0.98)
    unlimited.answered(unlimited.sending(), 200, {"x-ratelimit-limit-tokens": "90000"})
    assert unlimited.counts_tokens


async def test_nothing_left_holds_requests_until_it_refills():
    lim = EndpointLimiter(None, name="api")
    lim.answered(lim.sending(), 200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"})
    t0 = time.monotonic()
    await lim.acquire()
    assert time.monotonic() - t0 >= 0.25
    t0 = time.monotonic()
    await lim.acquire()
    assert time.monotonic() - t0 < 0.2, "held once, not on and on"


async def test_a_run_of_429s_holds_everything_for_the_retry_after():
    lim = EndpointLimiter(6000, name="api")
    for _ in range(5):
        lim.answered(lim.sending(), 429, {"Retry-After": "0.3"})
    assert lim.adaptive.verdict.kind == "limit" and lim.rpm <= 3000
    t0 = time.monotonic()
    await lim.acquire()
    assert time.monotonic() - t0 >= 0.25


async def test_a_case_waiting_in_the_limiter_is_marked():
    lim = EndpointLimiter(60, name="slow")  # one request a second, starting (nearly) empty
    queue = QueueWait()
    LIMITER_WAIT.set(queue)
    await lim.acquire()
    task = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0.05)
    assert queue.since is not None and queue.limiter is lim
    fields = timeout_fields(10, 3, queue, time.monotonic())
    assert fields["status"] == "timeout" and fields["error_type"] == "limiter_timeout"
    assert "benchpilot's own rate limiter" in fields["error_message"] and "'slow'" in fields["error_message"]
    task.cancel()  # the deadline: the mark stays where the case waited
    await asyncio.gather(task, return_exceptions=True)
    assert timeout_fields(10, 3, queue, time.monotonic())["error_type"] == "limiter_timeout"
    done = QueueWait()
    LIMITER_WAIT.set(done)
    await lim.acquire()  # a wait that ended: not where a later timeout happened
    assert done.since is None and done.waited_s > 0.5
    assert timeout_fields(10, 3, done, time.monotonic())["error_type"] == "case_timeout"
