"""The pure retry decision: which failures are worth another try, and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .base import LLMBadResponse, LLMConnectionError, LLMError, LLMHTTPError, LLMTimeout

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    wait_s: float
    reason: str


def is_transient(exc: BaseException) -> bool:
    """429, 5xx, connection errors, timeouts and unparseable bodies are transient; other 4xx are not."""
    if isinstance(exc, (LLMTimeout, LLMConnectionError, LLMBadResponse)):
        return True
    if isinstance(exc, LLMHTTPError):
        return exc.status == 429 or (exc.status is not None and exc.status >= 500)
    return False


def decide(exc: BaseException, attempt: int, max_retries: int, *, base_s: float = 0.5,
           rng: random.Random | None = None) -> RetryDecision:
    """Whether to retry after failed ``attempt`` (0-based) and how long to sleep first.

    Exponential backoff with full jitter, at least the server's Retry-After when it sent one.
    """
    if not is_transient(exc):
        return RetryDecision(False, 0.0, f"not transient: {type(exc).__name__}")
    if attempt >= max_retries:
        return RetryDecision(False, 0.0, f"gave up after {attempt + 1} attempts")
    r = (rng or random).random()
    wait = min(MAX_BACKOFF_S, base_s * (2 ** attempt)) * (0.5 + 0.5 * r)
    retry_after = exc.retry_after if isinstance(exc, LLMError) else None
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_BACKOFF_S * 5))
    return RetryDecision(True, wait, "transient")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (the HTTP-date form is treated as absent)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
