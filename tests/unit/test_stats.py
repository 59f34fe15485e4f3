"""The pure statistics (benchpilot_runner.stats) against scipy and statsmodels, to 1e-9."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from benchpilot_runner.stats import distributions as D
from benchpilot_runner.stats import intervals as I
from benchpilot_runner.stats import paired as PR
from benchpilot_runner.stats import power as PW
from benchpilot_runner.stats.codes import combine, factorize
from tests import stats_reference as ref

TOL = 1e-9


def test_distributions_match_scipy():
    for p in (1e-10, 1e-4, 0.025, 0.2, 0.5, 0.8, 0.975, 0.9999):
        assert abs(D.norm_ppf(p) - stats.norm.ppf(p)) < TOL
    for df in (1, 2, 3, 4, 7, 14, 29, 120, 999, 1000, 5000, 10 ** 5, 10 ** 6):
        for q in (0.6, 0.9, 0.975, 0.995):
            assert abs(D.t_ppf(q, df) - stats.t.ppf(q, df)) < TOL, (q, df)
        for t in (0.0, 0.3, 1.96, 4.0, 25.0):
            assert abs(D.t_two_sided_p(t, df) - 2 * stats.t.sf(t, df)) < TOL, (t, df)
    for n in (1, 2, 9, 40, 333, 5000, 200_000, 1_000_000):
        for k in sorted({0, 1, n // 3, n // 2, n // 2 + int(math.sqrt(n)), n - 1, n}):
            assert abs(D.binom_cdf(k, n) - stats.binom.cdf(k, n, 0.5)) < TOL, (k, n)
    for x in (0.0, 0.5, 3.84, 12.0, 60.0):
        assert abs(D.chi2_sf_1df(x) - stats.chi2.sf(x, 1)) < TOL


def test_wilson_matches_statsmodels_and_stays_in_0_1():
    for n in (1, 2, 5, 15, 60, 1000):
        for k in range(0, n + 1, max(1, n // 7)):
            want = ref.proportion_confint(k, n, alpha=0.05, method="wilson")
            got = I.wilson(k, n)
            assert abs(got[0] - want[0]) < TOL and abs(got[1] - want[1]) < TOL, (k, n)
            assert 0.0 <= got[0] <= k / n <= got[1] <= 1.0
    assert I.wilson(0, 10)[0] == 0.0 and I.wilson(10, 10)[1] == 1.0


def _one_group(y, item):
    return I.Clusters(np.zeros(len(y), np.int64), np.asarray(item), 1).moments(np.asarray(y, float))


def test_clustered_intervals_match_statsmodels_cluster_robust_ols():
    rng = np.random.default_rng(5)
    for clusters, size in ((4, 3), (12, 4), (40, 2), (30, 1)):
        item = np.repeat(np.arange(clusters), size)
        u = np.repeat(rng.normal(0, 1, clusters), size)
        y = (u + rng.normal(0, 1, len(item)) > 0).astype(float)
        score = 1 / (1 + np.exp(-(u + rng.normal(0, 1, len(item)))))
        m = _one_group(y, item)
        got = I.rate_interval(m, 0)
        assert got.method == ("wilson" if size == 1 else "wilson-clustered")
        for g, w in zip((got.estimate, got.low, got.high), ref.rate_ci(y, item)):
            assert abs(g - w) < TOL
        got = I.mean_interval(_one_group(score, item), 0)
        for g, w in zip((got.estimate, got.low, got.high), ref.mean_ci(score, item)):
            assert abs(g - w) < TOL


def test_no_interval_of_zero_width():
    one = I.rate_interval(_one_group([1.0], [0]), 0)
    assert one.low is None and one.note == "n too small"
    same_item = I.mean_interval(_one_group([0.2, 0.9, 0.4], [7, 7, 7]), 0)
    assert same_item.low is None and same_item.note == "n too small"
    constant = I.mean_interval(_one_group([0.7] * 20, range(20)), 0)  # every score the same
    assert constant.note == "no variation" and constant.low < 0.7 < constant.high
    assert (constant.estimate, constant.low, constant.high) == pytest.approx(
        ref.no_variation(0.7, 20, 0.0, 1.0), abs=TOL)
    all_won = I.rate_interval(_one_group([1.0] * 12, np.repeat(np.arange(4), 3)), 0)  # clustered, all 1
    assert all_won.high == 1.0 and all_won.low == pytest.approx(1 - ref.proportion_confint(0, 4, method="wilson")[1])
    cancel = I.mean_interval(_one_group([1.0, 0.0] * 10, np.repeat(np.arange(10), 2)), 0)  # item sums all equal
    assert cancel.high - cancel.low > 0.3  # the plain standard error is the floor
    assert I.mean_interval(_one_group([3.0] * 5, range(5)), 0, bounds=None).low is None  # unbounded: no bound


def test_paired_tests_match_statsmodels_and_scipy():
    rng = np.random.default_rng(9)
    for n_items, per in ((25, 1), (20, 3), (8, 4)):
        item = np.repeat(np.arange(n_items), per)
        u = np.repeat(rng.normal(0, 1, n_items), per)
        a = (u + rng.normal(0.4, 1, len(item)) > 0).astype(float)
        b = (u + rng.normal(0, 1, len(item)) > 0).astype(float)
        pairs = PR.Pairs(a, b, item)
        test = PR.success_test(pairs)
        assert abs(test.p_exact - ref.mcnemar_exact(a, b)) < TOL
        if per > 1:
            assert test.test == "mcnemar-clustered" and abs(test.p - ref.mcnemar_clustered(a, b, item)) < TOL
        else:
            assert test.test == "mcnemar-exact" and test.p_clustered is None
        diff = PR.difference(pairs)
        for g, w in zip((diff.estimate, diff.low, diff.high), ref.mean_ci(a - b, item, (-1, 1))):
            assert abs(g - w) < TOL
        sa, sb = rng.random(len(item)), rng.random(len(item))
        assert abs(PR.t_test(PR.Pairs(sa, sb, item)) - ref.paired_p(sa - sb, item)) < TOL
    assert PR.difference(PR.Pairs([], [], [])).note == "no pairs"
    assert PR.mcnemar_exact(0, 0) == 1.0 and PR.t_test(PR.Pairs([1.0, 0.5], [0.0, -0.5], [1, 2])) is None


def test_holm_matches_statsmodels():
    rng = np.random.default_rng(2)
    for m in (1, 2, 7, 30):
        p = list(rng.random(m) ** 3)
        p[0] = p[-1]  # a tie
        assert np.allclose(PR.holm(p), ref.holm(p), atol=TOL, rtol=0)
    assert PR.holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])


def test_tied_groups_are_the_maximal_runs_of_arms_not_shown_to_differ():
    differ = {("a", "c"), ("a", "d"), ("b", "d")}
    groups = PR.tied_groups(["a", "b", "c", "d"], lambda x, y: (x, y) in differ or (y, x) in differ)
    assert groups == [["a", "b"], ["b", "c"], ["c", "d"]]
    assert PR.tied_groups(["a", "b"], lambda x, y: False) == [["a", "b"]]
    assert PR.tied_groups(["a", "b"], lambda x, y: True) == [["a"], ["b"]]


def _brute_power(n: int, delta: float, psi: float) -> float:
    """Every (a only, b only) count of n pairs, by scipy's pmf and binomtest."""
    p10, p01 = (psi + delta) / 2, (psi - delta) / 2
    total = 0.0
    for b, c in itertools.product(range(n + 1), repeat=2):
        if b + c <= n and ref.mcnemar_exact([1] * b + [0] * c, [0] * b + [1] * c) <= 0.05:
            total += stats.multinomial.pmf([b, c, n - b - c], n, [p10, p01, 1 - psi])
    return total


def test_exact_power_and_the_plan_figures():
    for n, delta, psi in ((12, 0.4, 0.5), (20, 0.3, 0.4), (30, 0.2, 0.3)):
        assert abs(PW.exact_power(n, delta, discordance=psi) - _brute_power(n, delta, psi)) < 1e-6
    d = PW.detectable_difference(100)
    assert PW.power(100, d) == pytest.approx(0.8, abs=1e-3)
    need = PW.pairs_needed(0.1)
    assert PW.power(need, 0.1) >= 0.8 > PW.power(need - 1, 0.1)
    assert PW.detectable_difference(5) is None  # 5 items cannot reach 80 % power at all
    assert PW.pairs_needed(0.01) > 3 * PW.EXACT_UP_TO  # the normal approximation beyond the exact range
    with pytest.raises(ValueError):
        PW.pairs_needed(0.6)  # more than the discordance 0.5 allows


def test_codes_are_those_of_numpy_unique_on_both_paths():
    rng = np.random.default_rng(4)
    for space in (50, 10 ** 12):
        key = rng.integers(0, space, 5000)
        code, uniques = factorize(key)
        want_u, want_c = np.unique(key, return_inverse=True)
        assert (uniques == want_u).all() and (code == want_c).all()
    a, b = rng.integers(0, 3, 100), rng.integers(0, 4, 100)
    code, first = combine(a, b)
    assert all((a[first[c]], b[first[c]]) == (a[i], b[i]) for i, c in enumerate(code))
    assert (first == np.array([np.flatnonzero(code == c)[0] for c in range(code.max() + 1)])).all()
