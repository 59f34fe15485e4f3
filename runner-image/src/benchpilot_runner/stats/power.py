"""PURE: power of a paired comparison of success rates, before a run.

n pairs of which a share psi (the discordance) disagree — one arm succeeds, the other fails — and a
difference delta = P(a only) - P(b only) between the arms. The report tests a comparison without
repeated items with McNemar's exact test, whose power is computed exactly here for up to
``EXACT_UP_TO`` pairs: the number of discordant pairs M ~ Binomial(n, psi), and given M = m the
test rejects when the a-only count B ~ Binomial(m, (1 + delta/psi) / 2) falls in the exact
test's rejection region. Above that, where the exact test and its normal approximation agree, the
approximation of Connor 1987 ("Sample size for testing differences in proportions for the paired-
sample design", Biometrics 43:207):

    n = (z_{1-alpha/2} sqrt(psi) + z_{1-beta} sqrt(psi - delta^2))^2 / delta^2

|delta| can be at most psi. Without a measured psi, 0.5 is what two arms that succeed half the time
and disagree at random give (the largest psi of independent arms): correlated arms (the usual case:
an easy item is easy for both) disagree less, and need fewer pairs.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .distributions import norm_ppf

ALPHA = 0.05
POWER = 0.80
DISCORDANCE = 0.5
EXACT_UP_TO = 2000


def _check(delta: float, discordance: float) -> None:
    if not 0.0 < delta <= discordance <= 1.0:
        raise ValueError(f"need 0 < difference <= discordance <= 1, got difference {delta}, "
                         f"discordance {discordance}")


def connor_pairs(delta: float, discordance: float, alpha: float, power: float) -> float:
    """Connor's (unrounded) number of pairs."""
    za, zb = norm_ppf(1.0 - alpha / 2.0), norm_ppf(power)
    root = (za * math.sqrt(discordance) + zb * math.sqrt(max(0.0, discordance - delta * delta))) / delta
    return root * root


@lru_cache(maxsize=4)
def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


def _binomial_rows(ms: np.ndarray, p: float, width: int) -> np.ndarray:
    """pmf of Binomial(m, p) for each m in ``ms`` (rows), at 0..width-1 (0 beyond m)."""
    lf = _log_factorials(int(ms.max()) if len(ms) else 0)
    b = np.arange(width)[None, :]
    m = ms[:, None]
    ok = b <= m
    bb, mb = np.where(ok, b, 0), np.where(ok, m - b, 0)
    with np.errstate(divide="ignore"):
        logp = lf[m] - lf[bb] - lf[mb] + bb * math.log(p) + mb * math.log1p(-p) if 0 < p < 1 else None
    if logp is None:  # p is 0 or 1: all mass at one end
        out = np.zeros((len(ms), width))
        out[np.arange(len(ms)), 0 if p == 0 else ms] = 1.0
        return out
    return np.exp(np.where(ok, logp, -np.inf))


@lru_cache(maxsize=64)
def _critical(lo: int, hi: int, alpha: float) -> np.ndarray:
    """For m = lo..hi discordant pairs: the largest k with 2 P(X <= k) <= alpha, X ~ Bin(m, 1/2) (-1: none)."""
    ms = np.arange(lo, hi + 1)
    cdf = np.cumsum(_binomial_rows(ms, 0.5, hi + 1), axis=1)
    return np.sum(2.0 * cdf <= alpha * (1 + 1e-12), axis=1) - 1


def exact_power(pairs: int, delta: float, *, discordance: float = DISCORDANCE, alpha: float = ALPHA) -> float:
    """The power of McNemar's exact two-sided test with ``pairs`` pairs (at most EXACT_UP_TO)."""
    _check(delta, discordance)
    n = int(pairs)
    if n > EXACT_UP_TO:
        raise ValueError(f"exact power is computed for up to {EXACT_UP_TO} pairs, not {n}")
    sd = math.sqrt(n * discordance * (1 - discordance))
    ms = np.arange(max(0, int(n * discordance - 12 * sd - 2)), min(n, int(n * discordance + 12 * sd + 2)) + 1)
    p_m = _binomial_rows(np.array([n]), discordance, n + 1)[0][ms]
    k = _critical(int(ms[0]), int(ms[-1]), alpha)
    rows = _binomial_rows(ms, (1.0 + delta / discordance) / 2.0, int(ms.max()) + 1)
    b = np.arange(rows.shape[1])[None, :]
    reject = (b <= k[:, None]) | ((b >= (ms - k)[:, None]) & (k[:, None] >= 0))
    return float(np.sum(p_m * np.sum(np.where(reject, rows, 0.0), axis=1)))


def power(pairs: int, delta: float, *, discordance: float = DISCORDANCE, alpha: float = ALPHA) -> float:
    """McNemar's power: exact up to EXACT_UP_TO pairs, Connor's normal approximation above."""
    if pairs <= EXACT_UP_TO:
        return exact_power(pairs, delta, discordance=discordance, alpha=alpha)
    _check(delta, discordance)
    za = norm_ppf(1.0 - alpha / 2.0)
    var = discordance - delta * delta
    z = (delta * math.sqrt(pairs) - za * math.sqrt(discordance)) / math.sqrt(var) if var > 0 else math.inf
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def pairs_needed(delta: float, *, discordance: float = DISCORDANCE, alpha: float = ALPHA,
                 power_goal: float = POWER) -> int:
    """The fewest pairs with which McNemar's test detects a paired difference ``delta`` with ``power_goal``."""
    _check(delta, discordance)
    n = math.ceil(connor_pairs(delta, discordance, alpha, power_goal) - 1e-9)
    if n > EXACT_UP_TO:
        return n
    lo, hi = max(1, n), max(1, n)  # the exact test needs a few more pairs than the approximation
    while hi <= EXACT_UP_TO and power(hi, delta, discordance=discordance, alpha=alpha) < power_goal:
        lo, hi = hi + 1, hi + max(1, hi // 8)
    if hi > EXACT_UP_TO:
        return hi
    while lo < hi:  # the first n in (lo, hi] with the power (power rises with n, up to a small sawtooth)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(mid, delta, discordance=discordance, alpha=alpha) >= power_goal else (mid + 1, hi)
    return hi


def detectable_difference(pairs: int, *, discordance: float = DISCORDANCE, alpha: float = ALPHA,
                          power_goal: float = POWER) -> float | None:
    """The smallest paired difference in success rate that ``pairs`` pairs detect with ``power_goal``
    (None: not even the largest difference the discordance allows)."""
    if pairs < 1 or power(pairs, discordance, discordance=discordance, alpha=alpha) < power_goal:
        return None
    lo, hi = 0.0, discordance  # power rises with delta: bisect for power(delta) = power_goal
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if mid <= 0.0:
            break
        lo, hi = (lo, mid) if power(pairs, mid, discordance=discordance, alpha=alpha) >= power_goal else (mid, hi)
        if hi - lo < 1e-5:
            break
    return hi
