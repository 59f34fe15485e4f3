"""PURE: paired comparisons: a difference with its interval, McNemar's tests, Holm, tied groups.

Two arms (two models, or two prompt types of one model) are compared on the cases both have a final
outcome for, matched by item: the differences d = a - b of each pair carry the comparison. The
difference's interval is the mean of d with the CLT interval of :mod:`.intervals`, clustered by item
when an item gives more than one pair (models compared over several prompt types).

For success, McNemar's exact test (the discordant pairs as a Binomial(b + c, 1/2)) when no item
repeats; when items repeat the pairs are not independent and the exact test would reject too often,
so the verdict uses the clustered McNemar test of Durkalski et al. 2003 ("Analysis of clustered
matched-pair data", Statistics in Medicine 22:2417): X^2 = (sum_k D_k)^2 / sum_k D_k^2 with D_k the
item's (a-only minus b-only) count, chi-square with 1 df. For a mean score, the t test of the mean
difference with the same (clustered) standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .distributions import binom_cdf, chi2_sf_1df, t_two_sided_p
from .intervals import Clusters, Interval, Moments, mean_interval, standard_error2

BOUNDS = (-1.0, 1.0)  # a difference of two rates or scores in [0, 1]


class Pairs:
    """The matched pairs of a comparison: the two arms' values and each pair's item."""

    def __init__(self, a: np.ndarray, b: np.ndarray, item: np.ndarray, clusters: Clusters | None = None):
        self.a, self.b, self.item = np.asarray(a), np.asarray(b), np.asarray(item)
        self._clusters = clusters
        self._moments: Moments | None = None

    def __len__(self) -> int:
        return len(self.a)

    @property
    def clusters(self) -> Clusters:
        if self._clusters is None:
            self._clusters = Clusters(np.zeros(len(self.a), dtype=np.int64), self.item, 1)
        return self._clusters

    def same_items(self, a: np.ndarray, b: np.ndarray) -> "Pairs":
        """Other values of the same pairs (the clustering is computed once)."""
        return Pairs(a, b, self.item, self.clusters)

    @property
    def repeats(self) -> bool:
        return len(self.clusters.size) < len(self.a)

    def moments(self) -> Moments:
        if self._moments is None:
            d = np.asarray(self.a, dtype=np.float64) - np.asarray(self.b, dtype=np.float64)
            self._moments = self.clusters.moments(d)
        return self._moments


def difference(pairs: Pairs, confidence: float = 0.95) -> Interval:
    """The mean of a - b with its interval (clustered by item where an item repeats)."""
    if len(pairs) == 0:
        return Interval(None, None, None, 0, 0, "", "no pairs")
    return mean_interval(pairs.moments(), 0, confidence, BOUNDS)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: 2 P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), at most 1."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf(min(a_only, b_only), n, 0.5))


def mcnemar_clustered(pairs: Pairs) -> float:
    """Durkalski's clustered McNemar p-value (chi-square, 1 df) for 0/1 outcomes."""
    d = np.asarray(pairs.a, dtype=np.float64) - np.asarray(pairs.b, dtype=np.float64)
    per_item = np.bincount(pairs.clusters.row_cluster, weights=d)
    den = float(np.dot(per_item, per_item))
    if den == 0.0:
        return 1.0
    return chi2_sf_1df(float(per_item.sum()) ** 2 / den)


def t_test(pairs: Pairs) -> float | None:
    """Two-sided p-value of the t test that the mean difference is 0 (None: too few pairs or no variation)."""
    if len(pairs) < 2:
        return None
    m = pairs.moments()
    if m.clusters[0] < 2:
        return None
    se2, _ = standard_error2(m, 0)
    if not se2 > 0.0 or not math.isfinite(se2):
        return None
    return t_two_sided_p(float(m.total[0] / m.n[0]) / math.sqrt(se2), float(m.clusters[0]) - 1.0)


@dataclass(frozen=True)
class SuccessTest:
    a_only: int
    b_only: int
    p_exact: float
    p_clustered: float | None  # only when an item gives several pairs
    test: str  # the one the verdict uses

    @property
    def p(self) -> float:
        return self.p_clustered if self.p_clustered is not None else self.p_exact


def success_test(pairs: Pairs) -> SuccessTest:
    a, b = np.asarray(pairs.a) > 0.5, np.asarray(pairs.b) > 0.5
    a_only, b_only = int(np.count_nonzero(a & ~b)), int(np.count_nonzero(b & ~a))
    exact = mcnemar_exact(a_only, b_only)
    if len(pairs) > 0 and pairs.repeats:
        return SuccessTest(a_only, b_only, exact, mcnemar_clustered(pairs), "mcnemar-clustered")
    return SuccessTest(a_only, b_only, exact, None, "mcnemar-exact")


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over the p-values given (None stays None and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if not idx:
        return out
    p = np.array([pvalues[i] for i in idx], dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(scaled, 1.0)
    for k, i in enumerate(idx):
        out[i] = float(adjusted[k])
    return out


def tied_groups(order: Sequence[int], differ: Callable[[int, int], bool]) -> list[list[int]]:
    """Groups of arms not shown to differ: given the arms best first, every maximal run of neighbours
    in which no two differ significantly (the lines under a ranking; an arm can be in two groups)."""
    order = list(order)
    groups: list[list[int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and not any(differ(order[t], order[end + 1]) for t in range(start, end + 1)):
            end += 1
        run = order[start:end + 1]
        if not any(set(run) <= set(g) for g in groups):
            groups.append(run)
    return groups
