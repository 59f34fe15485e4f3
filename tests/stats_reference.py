"""The report's statistics recomputed independently, from the Parquet rows, with pandas, statsmodels and scipy.

statsmodels and pandas live in ``.venv/reference`` (scripts/bootstrap.sh puts them there, pinned by
requirements.lock), not in the venv: pyarrow imports pandas in every process where it can. This module
adds that folder to ``sys.path`` for the test process only.

Everything here follows the methods the README states, written the textbook way: the OLS of the values on
a constant, with statsmodels' cluster-robust covariance (groups = item, use_t: t with G - 1 df) or its
plain covariance; Wilson by ``proportion_confint``; McNemar by ``statsmodels.stats.contingency_tables``;
Holm by ``multipletests``; chi-square and t by scipy.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from tests.helpers import ROOT

REFERENCE = ROOT / ".venv" / "reference"
if not (REFERENCE / "statsmodels").is_dir():
    raise RuntimeError(f"statsmodels is not installed in {REFERENCE}: run scripts/bootstrap.sh")
if str(REFERENCE) not in sys.path:
    sys.path.append(str(REFERENCE))

import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from scipy import stats  # noqa: E402
from statsmodels.stats.contingency_tables import mcnemar  # noqa: E402
from statsmodels.stats.multitest import multipletests  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

FINAL = ("success", "partial", "failure")
ITEM = ["difficulty", "task_type", "instance"]
Q = 0.975


def read_rows(root: Path) -> pd.DataFrame:
    """Every part under ``root``, one row per case: final first, then the latest attempt and finish."""
    import pyarrow.parquet as pq

    frames = []
    for part in sorted(root.rglob("part-*.parquet")):
        df = pq.read_table(part).to_pandas()
        df["uid"] = part.parent.parent.name
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["is_final"] = df["status"].isin(FINAL)
    df["attempt"] = df["attempt"].fillna(1)
    df = df.sort_values(["namespace", "run", "uid", "case_id", "is_final", "attempt", "finished_at"],
                        ascending=[True, True, True, True, False, False, False], kind="stable")
    return df.drop_duplicates(["namespace", "run", "uid", "case_id"], keep="first").reset_index(drop=True)


def _ols(y: np.ndarray, groups: np.ndarray | None):
    X = np.ones((len(y), 1))
    plain = sm.OLS(y, X).fit()
    if groups is None:
        return plain, None
    return plain, sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)


def _repeats(item: np.ndarray) -> bool:
    return len(np.unique(item)) < len(item)


def _codes(item) -> np.ndarray:
    return pd.factorize(pd.Series(list(map(tuple, np.asarray(item, dtype=object)))) if np.ndim(item) > 1
                        else pd.Series(item))[0]


def no_variation(v: float, g: int, lo: float, hi: float) -> tuple[float, float, float]:
    u = proportion_confint(0, g, alpha=0.05, method="wilson")[1]
    return v, v - u * (v - lo), v + u * (hi - v)


def mean_ci(y, item, bounds=(0.0, 1.0)) -> tuple[float, float | None, float | None]:
    """(mean, low, high): t interval, standard error clustered by item where an item repeats, never below the
    plain one, df = clusters - 1; cut to ``bounds``. None, None: n too small, or no variation and no bounds."""
    y = np.asarray(y, dtype=float)
    item = _codes(item)
    g = len(np.unique(item))
    if len(y) < 2 or g < 2:
        return (y.mean() if len(y) else None), None, None
    if np.all(y == y[0]):
        return (y[0], None, None) if bounds is None else no_variation(y[0], g, *bounds)
    plain, clustered = _ols(y, item if _repeats(item) else None)
    se = plain.bse[0] if clustered is None else max(clustered.bse[0], plain.bse[0])
    half = stats.t.ppf(Q, g - 1) * se
    low, high = y.mean() - half, y.mean() + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return y.mean(), low, high


def rate_ci(y, item) -> tuple[float, float | None, float | None]:
    """(rate, low, high): Wilson; where an item repeats, with Korn & Graubard's effective n."""
    y = np.asarray(y, dtype=float)
    item = _codes(item)
    n, g = len(y), len(np.unique(item))
    if n < 2 or g < 2:
        return (y.mean() if n else None), None, None
    p = y.mean()
    if not _repeats(item):
        low, high = proportion_confint(y.sum(), n, alpha=0.05, method="wilson")
        return p, low, high
    if p in (0.0, 1.0):
        return no_variation(p, g, 0.0, 1.0)
    plain, clustered = _ols(y, item)
    deff = max(1.0, clustered.bse[0] ** 2 / plain.bse[0] ** 2)
    n_eff = n / deff * (stats.t.ppf(Q, n - 1) / stats.t.ppf(Q, g - 1)) ** 2
    low, high = proportion_confint(p * n_eff, n_eff, alpha=0.05, method="wilson")
    return p, low, high


def paired_p(d, item) -> float | None:
    """Two-sided t test p of mean(d) = 0 with the interval's standard error."""
    d = np.asarray(d, dtype=float)
    item = _codes(item)
    if len(d) < 2 or len(np.unique(item)) < 2 or np.all(d == d[0]):
        return None
    plain, clustered = _ols(d, item if _repeats(item) else None)
    se = plain.bse[0] if clustered is None else max(clustered.bse[0], plain.bse[0])
    if not se > 0:
        return None
    return 2 * stats.t.sf(abs(d.mean() / se), len(np.unique(item)) - 1)


def mcnemar_exact(a, b) -> float:
    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    return mcnemar(table, exact=True).pvalue


def mcnemar_clustered(a, b, item) -> float:
    """Durkalski et al. 2003: (sum_k D_k)^2 / sum_k D_k^2, chi-square 1 df."""
    d = pd.Series(np.asarray(a, float) - np.asarray(b, float))
    per_item = d.groupby(_codes(item)).sum()
    den = float((per_item ** 2).sum())
    return 1.0 if den == 0 else float(stats.chi2.sf(per_item.sum() ** 2 / den, 1))


def holm(pvalues: list[float | None]) -> list[float | None]:
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if idx:
        adjusted = multipletests([pvalues[i] for i in idx], alpha=0.05, method="holm")[1]
        for i, a in zip(idx, adjusted):
            out[i] = float(a)
    return out


def close(got, want, tol: float = 1e-9) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(float(got), float(want), rel_tol=0, abs_tol=tol)
