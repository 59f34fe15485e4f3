"""Scrubbing secrets from every text that leaves the process.

Result rows, log lines, metric labels, CLI messages and (on the operator side) status and events
pass through :func:`scrub`. It removes the key values this process was configured with
(:func:`register`: every API key read from the environment), and anything shaped like a credential:
``Bearer <token>``, ``sk-...`` style keys, and ``api_key=...``/``"authorization": "..."`` pairs.
A server that echoes the Authorization header back in an error body therefore leaks nothing.
"""

from __future__ import annotations

import re
import threading

MASK = "[REDACTED]"
_MIN_SECRET = 6  # shorter values are too likely to match ordinary text; they are not registered
_MIN_MATCH = 7  # the shortest text any pattern can match ("ak-" and 8 characters is longer; so is a registered key)

_PATTERNS = [
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"\b(sk|pk|rk|ak)-[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bsk_(live|test)_[A-Za-z0-9]{8,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"(?i)((?:api[_-]?key|x-api-key|authorization|secret[_-]?access[_-]?key|password|passwd|token)"
               r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;}&]{4,})"),
]

# Per pattern, lower-case texts one of which any match must contain: a text holding none of them skips the
# pattern (a transcript is tens of kilobytes; most patterns never apply to it).
_MARKERS = (("bearer", "basic"), ("sk-", "pk-", "rk-", "ak-"), ("sk_live_", "sk_test_"), ("aiza",), ("akia", "asia"),
            ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
            ("api", "authorization", "secret", "password", "passwd", "token"))

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register(*values: str | None) -> None:
    """Add configured secret values (API keys, storage credentials) to what :func:`scrub` removes."""
    global _secrets
    new = [v for v in values if isinstance(v, str) and len(v.strip()) >= _MIN_SECRET]
    if not new:
        return
    with _lock:
        _secrets = tuple(sorted(set(_secrets) | {v.strip() for v in new} | set(new), key=len, reverse=True))


def _sub_pattern(m: re.Match) -> str:
    if m.re is _PATTERNS[-1]:
        return m.group(1) + MASK
    if m.re is _PATTERNS[0]:
        return f"{m.group(1)} {MASK}"
    return MASK


def scrub(text: object) -> object:
    """``text`` with every secret masked; non-strings are returned unchanged."""
    if not isinstance(text, str) or len(text) < min(_MIN_MATCH, _MIN_SECRET):
        return text
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    lower = text.casefold()  # as (?i) matches: the long s and the Kelvin sign fold to s and k
    for pattern, markers in zip(_PATTERNS, _MARKERS):
        if any(m in lower for m in markers):
            text = pattern.sub(_sub_pattern, text)
    return text


def scrub_deep(value: object) -> object:
    """Scrub every string inside dicts, lists and tuples (log extras, status documents)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_deep(v) for v in value)
    return value
