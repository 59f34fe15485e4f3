"""PURE: how the report writes a number with its interval, the same in the terminal and the HTML page."""

from __future__ import annotations

import math

TOO_SMALL = "n too small"
SUCCESS_LABEL = {"text2sql": "exec acc"}  # what success means, per suite, in a table's header
DASH = "—"


def _digits(j: dict, scale: float, least: int) -> int:
    """Decimals enough that an interval never looks zero-wide: a narrow one (many cases) gets more."""
    width = (j["high"] - j["low"]) * scale if j.get("low") is not None else 0.0
    if width <= 0:
        return least
    return max(least, min(6, math.ceil(-math.log10(width))))


def _pct(x: float, digits: int = 0) -> str:
    return f"{x * 100:.{digits}f}"


def rate(j: dict | None) -> str:
    """A rate and its interval: ``73 % [52, 88]`` (``77.3 % [77.1, 77.5]`` when narrow);
    ``— (n too small)`` when there is no interval."""
    if not j or j.get("estimate") is None:
        return DASH
    if j.get("low") is None:
        return f"{_pct(j['estimate'])} % ({j.get('note') or TOO_SMALL})"
    d = _digits(j, 100, 0)
    return f"{_pct(j['estimate'], d)} % [{_pct(j['low'], d)}, {_pct(j['high'], d)}]"


def mean(j: dict | None, digits: int = 2) -> str:
    """A mean and its interval: ``0.71 [0.47, 0.95]``."""
    if not j or j.get("estimate") is None:
        return DASH
    if j.get("low") is None:
        return f"{j['estimate']:.{digits}f} ({j.get('note') or TOO_SMALL})"
    d = _digits(j, 1, digits)
    return f"{j['estimate']:.{d}f} [{j['low']:.{d}f}, {j['high']:.{d}f}]"


def _pts(x: float, digits: int = 0) -> str:
    v = round(x * 100, digits)
    text = f"{abs(v):.{digits}f}"
    return f"+{text}" if v > 0 else (f"−{text}" if v < 0 else f"{0:.{digits}f}")


def diff(j: dict | None, significant: bool | None = None) -> str:
    """A difference of rates in points, with its interval: ``+20 [−11, +51]``, and ``*`` if significant."""
    if not j or j.get("estimate") is None:
        return DASH + (f" ({j.get('note')})" if j and j.get("note") else "")
    mark = " *" if significant else ""
    if j.get("low") is None:
        return f"{_pts(j['estimate'])} ({j.get('note') or TOO_SMALL})"
    d = _digits(j, 100, 0)
    return f"{_pts(j['estimate'], d)} [{_pts(j['low'], d)}, {_pts(j['high'], d)}]{mark}"


def pvalue(p: float | None) -> str:
    if p is None:
        return DASH
    if p < 0.0001:
        return "< 0.0001"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def money(x: float | None) -> str:
    return DASH if x is None else f"{x:.4f}"


def per_success(x: float | None, digits: int = 4) -> str:
    return DASH if x is None else f"{x:.{digits}f}"


def success_label(suites: list[str]) -> str:
    return SUCCESS_LABEL.get(suites[0], "success") if len(suites) == 1 else "success"


def set_name(row: dict) -> str:
    return f"{row.get('run')}/{row.get('uid')}"
