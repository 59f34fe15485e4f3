"""PURE: what a provider's rate-limit headers say about its limit and what is left of it.

Read from every answer, 429 or not, so the limiter knows the real limit without a single 429:

* OpenAI and most OpenAI-compatible providers: ``x-ratelimit-limit-requests`` (per minute),
  ``x-ratelimit-remaining-requests``, ``x-ratelimit-reset-requests`` (``1s``, ``6m0s``, ``20ms``,
  seconds, or a Unix time), and the same for ``-tokens``;
* Anthropic: ``anthropic-ratelimit-requests-limit`` / ``-remaining`` / ``-reset`` (an RFC 3339 time),
  and the same for ``tokens`` (or, without those, ``input-tokens``);
* each of them also under a gateway's ``llm_provider-`` prefix (LiteLLM forwards the provider's
  headers so, and may send its own limits unprefixed): where both say something, the tighter counts.

Limits are per minute, as both providers document them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from .retry import parse_duration

PREFIX = "llm_provider-"
_NAMES = {  # field -> header names (without the gateway prefix), in order of preference
    "limit_requests": ("x-ratelimit-limit-requests", "anthropic-ratelimit-requests-limit"),
    "remaining_requests": ("x-ratelimit-remaining-requests", "anthropic-ratelimit-requests-remaining"),
    "reset_requests_s": ("x-ratelimit-reset-requests", "anthropic-ratelimit-requests-reset"),
    "limit_tokens": ("x-ratelimit-limit-tokens", "anthropic-ratelimit-tokens-limit",
                     "anthropic-ratelimit-input-tokens-limit"),
    "remaining_tokens": ("x-ratelimit-remaining-tokens", "anthropic-ratelimit-tokens-remaining",
                         "anthropic-ratelimit-input-tokens-remaining"),
    "reset_tokens_s": ("x-ratelimit-reset-tokens", "anthropic-ratelimit-tokens-reset",
                       "anthropic-ratelimit-input-tokens-reset"),
}


@dataclass(frozen=True)
class RateLimitInfo:
    """What one answer's headers state (None: not stated). Limits per minute; resets in seconds from now."""

    limit_requests: float | None = None
    remaining_requests: float | None = None
    reset_requests_s: float | None = None
    limit_tokens: float | None = None
    remaining_tokens: float | None = None
    reset_tokens_s: float | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in (self.limit_requests, self.remaining_requests, self.limit_tokens,
                                       self.remaining_tokens))


def _count(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and 0 <= number < float("inf") else None


def parse_reset(value: str | None, *, now_epoch: float) -> float | None:
    """Seconds until a reset: a duration (``1s``, ``6m0s``, ``20ms``), seconds, a Unix time, or an RFC 3339 time."""
    if value is None:
        return None
    seconds = parse_duration(value, now_epoch=now_epoch)
    if seconds is not None:
        return seconds
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now_epoch)


def _lowered(headers: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The headers by lower-case name: (a gateway's own or the provider's direct ones, the ``llm_provider-`` ones)."""
    own: dict[str, str] = {}
    forwarded: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        if name.startswith(PREFIX):
            forwarded[name[len(PREFIX):]] = value
        else:
            own[name] = value
    return own, forwarded


def _field(source: dict[str, str], field: str, now_epoch: float) -> float | None:
    for name in _NAMES[field]:
        if name in source:
            raw = source[name]
            return parse_reset(raw, now_epoch=now_epoch) if field.startswith("reset") else _count(raw)
    return None


def _tighter(field: str, a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b) if field.startswith("reset") else min(a, b)


def read_rate_limits(headers: Mapping[str, str], *, now_epoch: float) -> RateLimitInfo:
    """The limits an answer's headers state; where a gateway and the provider both do, the tighter one."""
    own, forwarded = _lowered(headers)
    values = {f: _tighter(f, _field(own, f, now_epoch), _field(forwarded, f, now_epoch)) for f in _NAMES}
    if values["limit_requests"] == 0:  # "0 per minute" is no statement a client can use
        values["limit_requests"] = None
    if values["limit_tokens"] == 0:
        values["limit_tokens"] = None
    return RateLimitInfo(**values)
