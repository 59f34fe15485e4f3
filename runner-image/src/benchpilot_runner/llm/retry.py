"""The pure retry decision: which failures are worth another try, and how long to wait.

Two budgets. Transient failures (5xx, connection errors, timeouts, malformed answers) are retried
``max_retries`` times with exponential backoff and full jitter; a request that timed out is retried
at once (its timeout was the wait: a hung request must not cost a case twice). A 429 is the provider asking us to
wait, not a failure: it is retried for as long as the case has time left (its deadline), waiting
what the provider says (:func:`wait_from_headers`) or, when it says nothing, a backoff that grows
to a minute, so a per-minute window always gets the chance to reopen.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import re
from dataclasses import dataclass
from typing import Mapping

from .base import LLMBadResponse, LLMConnectionError, LLMError, LLMHTTPError, LLMTimeout

MAX_BACKOFF_S = 60.0
MAX_THROTTLE_RETRIES = 200  # a bound on 429 retries besides the time budget
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    wait_s: float
    reason: str


def is_throttled(exc: BaseException) -> bool:
    return isinstance(exc, LLMHTTPError) and exc.status == 429


def is_transient(exc: BaseException) -> bool:
    """429, 5xx, 408, connection errors, timeouts and malformed answers are transient; other 4xx are not."""
    if isinstance(exc, (LLMTimeout, LLMConnectionError, LLMBadResponse)):
        return True
    if isinstance(exc, LLMHTTPError):
        return exc.status in (408, 409, 425, 429) or (exc.status is not None and exc.status >= 500)
    return False


def decide(exc: BaseException, attempt: int, max_retries: int, *, throttled: int = 0,
           remaining_s: float | None = None, base_s: float = 0.1, rng: random.Random | None = None) -> RetryDecision:
    """Whether to retry after a failure and how long to sleep first.

    ``attempt`` counts earlier non-429 failures of this request (0-based), ``throttled`` earlier 429s;
    ``remaining_s`` is the time left before the case's deadline (None: unbounded).
    """
    if not is_transient(exc):
        return RetryDecision(False, 0.0, f"not transient: {getattr(exc, 'error_type', type(exc).__name__)}")
    r = (rng or random).random()
    hinted = exc.retry_after if isinstance(exc, LLMError) else None
    if is_throttled(exc):
        if throttled >= MAX_THROTTLE_RETRIES:
            return RetryDecision(False, 0.0, f"rate limited {throttled + 1} times")
        wait = hinted if hinted is not None else min(MAX_BACKOFF_S, 1.0 * (2 ** min(throttled, 10))) * (0.5 + 0.5 * r)
        wait += 0.05 * r  # spread the herd that the same window reopening would release at once
    else:
        if attempt >= max_retries:
            return RetryDecision(False, 0.0, f"gave up after {attempt + 1} attempts")
        wait = min(MAX_BACKOFF_S, base_s * (2 ** attempt)) * (0.5 + 0.5 * r)
        if isinstance(exc, LLMTimeout):
            wait = 0.1 * r
        if hinted is not None:
            wait = max(wait, min(hinted, MAX_BACKOFF_S * 5))
    if remaining_s is not None and wait >= remaining_s:
        return RetryDecision(False, 0.0, f"a retry in {wait:.1f}s would pass the case deadline "
                                         f"({max(0.0, remaining_s):.1f}s left)")
    return RetryDecision(True, wait, "rate limited" if is_throttled(exc) else "transient")


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def parse_duration(value: str | None, *, now_epoch: float | None = None) -> float | None:
    """OpenAI's ``x-ratelimit-reset-*`` values (``1s``, ``6m0s``, ``20ms``, ``1h2m``), plain seconds,
    or a Unix timestamp (some providers send the moment the window reopens)."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or "".join(a + b for a, b in parts) != value.replace(" ", ""):
            return None
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(a) * scale[b] for a, b in parts)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    if number > 1e9 and now_epoch is not None:  # an epoch timestamp, not a duration
        return max(0.0, number - now_epoch)
    return max(0.0, number)


def wait_from_headers(headers: Mapping[str, str], *, now_epoch: float | None = None,
                      now: dt.datetime | None = None) -> float | None:
    """How long a rate-limited answer asks us to wait, from the usual headers.

    ``Retry-After`` (seconds or a date), ``retry-after-ms``, the rate-limit reset headers
    (``x-ratelimit-reset-requests``/``-tokens``, ``x-ratelimit-reset``, ``ratelimit-reset``), each
    also under a gateway's ``llm_provider-`` prefix (LiteLLM forwards the provider's headers so).
    An explicit retry-after wins; otherwise the longest reset.
    """
    norm: dict[str, str] = {}
    for k, v in headers.items():
        key = k.lower()
        if key.startswith("llm_provider-"):
            key = key[len("llm_provider-"):]
            norm.setdefault(key, v)  # the gateway's own header, if any, takes precedence
        else:
            norm[key] = v
    if (ms := norm.get("retry-after-ms")) is not None:
        try:
            value = float(ms) / 1000.0
            if value == value and value >= 0 and value != float("inf"):
                return value
        except ValueError:
            pass
    if (ra := parse_retry_after(norm.get("retry-after"), now=now)) is not None:
        return ra
    resets = [parse_duration(norm.get(k), now_epoch=now_epoch) for k in
              ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-reset", "ratelimit-reset")]
    resets = [r for r in resets if r is not None]
    return max(resets) if resets else None
