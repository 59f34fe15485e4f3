"""PURE: confidence intervals for rates and means, clustered by item where an item repeats.

One item (a task or question of the suite) is faced by every model under every prompt type. In a
group where it appears more than once (one model over several prompt types, say), its cases are not
independent, and standard errors are clustered by item as in Miller 2024, "Adding Error Bars to
Evals" (arXiv 2411.00640): with N cases in G clusters, cluster sums S_c of n_c cases and mean m,

    SE^2 = G / (G - 1) * sum_c (S_c - n_c m)^2 / N^2

(the cluster-robust variance with the usual small-sample factor; with one case per cluster it is
exactly s^2 / N, the textbook standard error). It is never taken below s^2 / N: an item's cases
that happen to cancel out (success under one prompt type, failure under the other, for every item)
would otherwise give a zero-wide interval. A mean's interval is m +- t(G - 1) * SE, cut to the
values' range ([0, 1] for scores). A success rate's is Wilson's (plain Wilson when no item
repeats); where items repeat, with N replaced by the effective sample size of Korn & Graubard
(1998, Survey Methodology 24:193): N / deff * (t(N - 1) / t(G - 1))^2, with the design effect
deff = SE^2 / (s^2 / N) >= 1 and the second factor for the G - 1 degrees of freedom of SE.

Where an interval would mean nothing it says so: fewer than 2 cases or clusters is "n too small";
when every value is the same (SE = 0) the interval is not zero-wide but bounded by how many items
could have differed unseen: the Wilson upper bound U = z^2 / (G + z^2) of a share seen to be 0,
giving [v - U (v - lo), v + U (hi - v)] for values bounded in [lo, hi] ("no variation").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .codes import factorize
from .distributions import norm_ppf, t_ppf

TOO_SMALL = "n too small"
NO_VARIATION = "no variation"


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None
    n: int
    clusters: int
    method: str
    note: str | None = None
    n_eff: float | None = None

    def to_json(self) -> dict:
        out = {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n,
               "clusters": self.clusters, "method": self.method}
        if self.n_eff is not None:
            out["n_eff"] = self.n_eff
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Moments:
    """Per group: cases N, clusters G, total T, the clustered and the plain sums of squares about the
    mean, and the largest cluster (1: no item repeats in the group)."""

    n: np.ndarray
    clusters: np.ndarray
    total: np.ndarray
    ss_cluster: np.ndarray
    ss_rows: np.ndarray
    largest: np.ndarray

    def __len__(self) -> int:
        return len(self.n)


class Clusters:
    """Rows in clusters (an item within a group) and clusters in groups; every cluster lies in one group."""

    def __init__(self, group: np.ndarray, item: np.ndarray, n_groups: int):
        group = np.asarray(group, dtype=np.int64)
        width = int(item.max()) + 1 if len(item) else 1
        self.row_cluster, keys = factorize(group * width + item, n_groups * width)
        self.cluster_group = keys // width  # ascending: a group's clusters are contiguous
        self.row_group = group
        self.n_groups = n_groups
        self.size = np.bincount(self.row_cluster, minlength=len(keys)).astype(np.float64)
        self.n = np.bincount(self.cluster_group, weights=self.size, minlength=n_groups)
        self.clusters = np.bincount(self.cluster_group, minlength=n_groups)
        self.largest = np.zeros(n_groups)
        if len(keys):
            starts = np.flatnonzero(np.r_[True, self.cluster_group[1:] != self.cluster_group[:-1]])
            self.largest[self.cluster_group[starts]] = np.maximum.reduceat(self.size, starts)

    def moments(self, y: np.ndarray, binary: bool = False) -> Moments:
        """The moments of ``y`` per group; ``binary``: y is 0/1, so sum (y - m)^2 = T (N - T) / N exactly."""
        y = np.asarray(y, dtype=np.float64)
        g = self.n_groups
        sums = np.bincount(self.row_cluster, weights=y, minlength=len(self.size))
        total = np.bincount(self.cluster_group, weights=sums, minlength=g)
        mean = np.divide(total, self.n, out=np.zeros(g), where=self.n > 0)
        resid = sums - self.size * mean[self.cluster_group]
        ss_cluster = np.bincount(self.cluster_group, weights=resid * resid, minlength=g)
        if binary:
            ss_rows = np.divide(total * (self.n - total), self.n, out=np.zeros(g), where=self.n > 0)
        else:
            row_resid = y - mean[self.row_group]
            ss_rows = np.bincount(self.row_group, weights=row_resid * row_resid, minlength=g)
        return Moments(self.n, self.clusters, total, ss_cluster, ss_rows, self.largest)


def z_value(confidence: float) -> float:
    return norm_ppf(1.0 - (1.0 - confidence) / 2.0)


def wilson(count: float, nobs: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for ``count`` successes in ``nobs`` trials (``nobs`` may be fractional)."""
    z = z_value(confidence)
    p, z2 = count / nobs, z * z
    denom = 1.0 + z2 / nobs
    center = (p + z2 / (2.0 * nobs)) / denom
    half = z * math.sqrt(p * (1.0 - p) / nobs + z2 / (4.0 * nobs * nobs)) / denom
    low = 0.0 if count <= 0 else max(0.0, center - half)
    return low, (1.0 if count >= nobs else min(1.0, center + half))


def no_variation_bounds(value: float, clusters: int, lo: float, hi: float, confidence: float) -> tuple[float, float]:
    """When every value equals ``value``: how far the mean could be off if up to the Wilson upper bound
    of a share seen as 0 (out of ``clusters`` items) could have taken any value in [lo, hi]."""
    z2 = z_value(confidence) ** 2
    u = z2 / (clusters + z2)
    return value - u * (value - lo), value + u * (hi - value)


def standard_error2(m: Moments, i: int) -> tuple[float, float]:
    """The squared standard error of group ``i``'s mean, clustered, and the design effect (>= 1)."""
    n, g = float(m.n[i]), float(m.clusters[i])
    plain = float(m.ss_rows[i]) / (n * (n - 1.0))
    if m.largest[i] <= 1:
        return plain, 1.0
    clustered = g / (g - 1.0) * float(m.ss_cluster[i]) / (n * n)
    deff = clustered / plain if plain > 0 else 1.0
    return (clustered, deff) if deff >= 1.0 else (plain, 1.0)


def _constant(m: Moments, i: int) -> bool:
    """Every value of group ``i`` the same (up to rounding in the mean)."""
    scale = max(1.0, abs(float(m.total[i] / m.n[i])))
    return float(m.ss_rows[i]) <= float(m.n[i]) * (1e-12 * scale) ** 2


def rate_interval(m: Moments, i: int, confidence: float = 0.95) -> Interval:
    """Group ``i``'s success rate with Wilson's interval (with the effective n where items repeat)."""
    n, g = int(m.n[i]), int(m.clusters[i])
    est = float(m.total[i] / n) if n else None
    if n < 2 or g < 2:
        return Interval(est, None, None, n, g, "", TOO_SMALL)
    if m.largest[i] <= 1:
        low, high = wilson(float(m.total[i]), n, confidence)
        return Interval(est, low, high, n, g, "wilson")
    if _constant(m, i):  # all 0 or all 1: as if each item counted once
        low, high = no_variation_bounds(est, g, 0.0, 1.0, confidence)
        return Interval(est, low, high, n, g, "wilson-clustered", NO_VARIATION, float(g))
    q = 1.0 - (1.0 - confidence) / 2.0
    n_eff = n / standard_error2(m, i)[1] * (t_ppf(q, n - 1) / t_ppf(q, g - 1)) ** 2
    low, high = wilson(est * n_eff, n_eff, confidence)
    return Interval(est, low, high, n, g, "wilson-clustered", None, n_eff)


def mean_interval(m: Moments, i: int, confidence: float = 0.95,
                  bounds: tuple[float, float] | None = (0.0, 1.0)) -> Interval:
    """Group ``i``'s mean with the CLT interval m +- t(G-1) SE, SE clustered where items repeat."""
    n, g = int(m.n[i]), int(m.clusters[i])
    est = float(m.total[i] / n) if n else None
    method = "t" if m.largest[i] <= 1 else "t-clustered"
    if n < 2 or g < 2:
        return Interval(est, None, None, n, g, "", TOO_SMALL)
    if _constant(m, i):
        if bounds is None:
            return Interval(est, None, None, n, g, method, NO_VARIATION)
        low, high = no_variation_bounds(est, g, bounds[0], bounds[1], confidence)
        return Interval(est, low, high, n, g, method, NO_VARIATION)
    half = t_ppf(1.0 - (1.0 - confidence) / 2.0, g - 1) * math.sqrt(standard_error2(m, i)[0])
    low, high = est - half, est + half
    if bounds is not None:  # a mean of values in [lo, hi] lies there too
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(est, low, high, n, g, method)


def rate_intervals(m: Moments, confidence: float = 0.95) -> list[Interval]:
    return [rate_interval(m, i, confidence) for i in range(len(m))]


def mean_intervals(m: Moments, confidence: float = 0.95,
                   bounds: tuple[float, float] | None = (0.0, 1.0)) -> list[Interval]:
    return [mean_interval(m, i, confidence, bounds) for i in range(len(m))]
