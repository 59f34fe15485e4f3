"""Do the report's 95 % intervals cover 95 %, and do its paired tests reject 5 % under the null?

Simulates sweeps with known true rates through the report's own code (``report.groups.table``,
``report.compare.models`` and ``report.compare.robustness`` on a frame of cases) and counts:

  coverage of every interval kind     goal: 94-96 %
    wilson            success rate, model × prompt type (one case per item)
    wilson-clustered  success rate per model (an item once per prompt type: clustered)
    t / t-clustered   mean score, the same two groupings
    paired            success and score differences: prompt type vs reference within a model (one
                      pair per item), and model vs model over every prompt type (clustered)
  false-positive rate of the paired tests at alpha = 0.05, on pairs whose true difference is 0
                                      goal: <= 5 %
    and, for contrast, the exact McNemar test on clustered pairs (what the report does NOT use there)
  the power of the exact McNemar test at the difference `benchpilot plan` calls detectable (goal ~80 %)

Model: item effects u ~ N(0, sigma_u^2) shared by every model and prompt type (the clustering), model ×
item effects w ~ N(0, sigma_w^2) (two equally good models still differ item by item, so a model pair's
differences are correlated across an item's prompt types), a case scores
sigmoid(a_model + b_prompt + u + w + e), e ~ N(0, sigma_e^2), and succeeds when its score is above 0.5:
true success rate Phi(eta / sqrt(sigma_u^2 + sigma_w^2 + sigma_e^2)), true mean score by Gauss-Hermite.
Each sweep draws new items (the report's intervals are about the population of items).
    .venv/bin/python bench/interval_coverage.py [--sweeps 2000] [--items 15 40 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict

import numpy as np

from benchpilot_runner.report import compare, groups
from benchpilot_runner.report.frame import Frame
from benchpilot_runner.contract.outcomes import STATUSES
from benchpilot_runner.stats.power import DISCORDANCE, detectable_difference
from benchpilot_runner.stats.paired import mcnemar_exact

MODELS = {"m-good": 1.2, "m-mid": 0.0, "m-mid-twin": 0.0}  # a_model; the twins are equal: null pairs
PROMPTS = {"optimal": 0.6, "baseline": 0.0, "flawed": -0.8, "optimal-twin": 0.6}  # b_prompt; reference: optimal
SIGMA_U, SIGMA_W, SIGMA_E = 1.5, 1.0, 1.0  # item effect, model × item interaction, case noise
SD = math.sqrt(SIGMA_U ** 2 + SIGMA_W ** 2 + SIGMA_E ** 2)
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(120)


def true_success(eta: float) -> float:
    return 0.5 * math.erfc(-eta / SD / math.sqrt(2))


def true_score(eta: float) -> float:
    return float(np.sum(_GH_W / (1 + np.exp(-(eta + SD * _GH_X)))) / math.sqrt(2 * math.pi))


def frame_of(rng: np.random.Generator, items: int) -> Frame:
    models, prompts = list(MODELS), list(PROMPTS)
    m, p, i = (a.ravel() for a in np.meshgrid(np.arange(len(models)), np.arange(len(prompts)), np.arange(items),
                                              indexing="ij"))
    u = rng.normal(0, SIGMA_U, items)
    w = rng.normal(0, SIGMA_W, (len(models), items))  # a model finds some items easier than another does
    eta = np.array(list(MODELS.values()))[m] + np.array(list(PROMPTS.values()))[p] + u[i] + w[m, i]
    score = 1 / (1 + np.exp(-(eta + rng.normal(0, SIGMA_E, len(eta)))))
    status = np.where(score > 0.5, STATUSES.index("success"), STATUSES.index("failure"))
    n = len(m)
    zeros = np.zeros(n, np.int64)
    labels = {"namespace": ["ns"], "run": ["run"], "uid": ["uid"], "suite": ["sim"], "model": models,
              "prompt_type": prompts, "difficulty": ["d"], "task_type": ["t"], "error_type": [None]}
    codes = {k: zeros for k in labels}
    codes.update(model=m.astype(np.int64), prompt_type=p.astype(np.int64), set=zeros)
    values = {"score": score, "latency_s": score, "prompt_tokens": np.zeros(n), "completion_tokens": np.zeros(n),
              "cost_usd": np.zeros(n)}
    return Frame(labels=labels, codes=codes, values=values, flags={}, status=status, instance=i.astype(np.int64),
                 attempt=np.ones(n, np.int64), raw_row=np.arange(n), sets=[("ns", "run", "uid")], set_suite=["sim"],
                 item=i.astype(np.int64))


def truths() -> dict:
    eta = {(m, p): a + b for m, a in MODELS.items() for p, b in PROMPTS.items()}
    cell = {k: (true_success(e), true_score(e)) for k, e in eta.items()}
    model = {m: tuple(np.mean([cell[m, p][k] for p in PROMPTS]) for k in (0, 1)) for m in MODELS}
    return {"cell": cell, "model": model}


def _covers(j: dict, truth: float) -> bool | None:
    if j["low"] is None:
        return None
    return j["low"] <= truth <= j["high"]


class Tally:
    """Hits per kind and per sweep: the Monte Carlo standard error is taken over sweeps, since the
    intervals of one sweep share its items and are not independent."""

    def __init__(self):
        self.hits, self.counts, self.skipped = defaultdict(int), defaultdict(int), defaultdict(int)
        self.per_sweep: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._sweep: dict[str, list[int]] = {}

    def add(self, kind: str, hit: bool | None) -> None:
        if hit is None:
            self.skipped[kind] += 1
            return
        self.hits[kind] += int(hit)
        self.counts[kind] += 1
        cell = self._sweep.setdefault(kind, [0, 0])
        cell[0] += int(hit)
        cell[1] += 1

    def end_sweep(self) -> None:
        for kind, (h, n) in self._sweep.items():
            self.per_sweep[kind].append((h, n))
        self._sweep = {}

    def rate(self, kind: str) -> float:
        return self.hits[kind] / self.counts[kind] if self.counts[kind] else float("nan")

    def se(self, kind: str) -> float:
        """Standard error of the rate, from the spread of the sweeps' own rates (a ratio estimator)."""
        h, n = (np.array(x, float) for x in zip(*self.per_sweep[kind]))
        r = h.sum() / n.sum()
        k = len(n)
        return float(np.sqrt(np.sum((h - r * n) ** 2) / (k * (k - 1))) / n.mean()) if k > 1 else float("nan")

    def line(self, kind: str, low: float | None, high: float | None) -> str:
        r, se = self.rate(kind), self.se(kind)
        verdict = "for contrast" if low is None else "ok" if low <= r <= high else ("within Monte Carlo error" if low <= r + 2 * se and r - 2 * se <= high
                                                   else "OUTSIDE the goal")
        skipped = f", {self.skipped[kind]} with no interval (n too small)" if self.skipped[kind] else ""
        return f"{r:6.1%} ± {se:.1%}  of {self.counts[kind]}{skipped}  [{verdict}]"


def one_sweep(rng, items: int, truth: dict, cover: Tally, null: Tally) -> None:
    frame = frame_of(rng, items)
    for g in groups.table(frame, ["model", "prompt_type"]):
        s, sc = truth["cell"][g["model"], g["prompt_type"]]
        cover.add(g["success"]["method"] or "wilson", _covers(g["success"], s))
        cover.add(g["score"]["method"] or "t", _covers(g["score"], sc))
    for g in groups.table(frame, ["model"]):
        s, sc = truth["model"][g["model"]]
        cover.add(g["success"]["method"] or "wilson-clustered", _covers(g["success"], s))
        cover.add(g["score"]["method"] or "t-clustered", _covers(g["score"], sc))
    for pair in compare.models(frame)[0]["pairs"]:
        ta, tb = truth["model"][pair["a"]], truth["model"][pair["b"]]
        cover.add("paired success, clustered", _covers(pair["success_diff"], ta[0] - tb[0]))
        cover.add("paired score, clustered", _covers(pair["score_diff"], ta[1] - tb[1]))
        if {pair["a"], pair["b"]} == {"m-mid", "m-mid-twin"}:
            null.add("models: clustered McNemar (the report's test)", pair["p"] < 0.05)
            null.add("models: score t test, clustered", pair["score_p"] is not None and pair["score_p"] < 0.05)
            null.add("models: exact McNemar on clustered pairs (not used)",
                     mcnemar_exact(pair["a_only"], pair["b_only"]) < 0.05)
    for row in compare.robustness(frame, "optimal")[0]["rows"]:
        if row["pooled"]:
            continue
        ta, tb = truth["cell"][row["model"], row["prompt_type"]], truth["cell"][row["model"], "optimal"]
        cover.add("paired success", _covers(row["success_diff"], ta[0] - tb[0]))
        cover.add("paired score", _covers(row["score_diff"], ta[1] - tb[1]))
        if row["prompt_type"] == "optimal-twin":
            null.add("prompts: exact McNemar (the report's test)", row["p"] < 0.05)
            null.add("prompts: score t test", row["score_p"] is not None and row["score_p"] < 0.05)
    cover.end_sweep()
    null.end_sweep()


def power_check(rng, items: int, sweeps: int) -> tuple[float, float]:
    """The exact McNemar test's power at plan's detectable difference, for pairs with plan's discordance."""
    delta = detectable_difference(items, discordance=DISCORDANCE)
    a_only, b_only = (DISCORDANCE + delta) / 2, (DISCORDANCE - delta) / 2
    hits = 0
    for _ in range(sweeps):
        kind = rng.choice(3, size=items, p=[a_only, b_only, 1 - DISCORDANCE])  # 0: a only, 1: b only, 2: agree
        hits += mcnemar_exact(int(np.sum(kind == 0)), int(np.sum(kind == 1))) < 0.05
    return delta, hits / sweeps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweeps", type=int, default=2000)
    ap.add_argument("--items", type=int, nargs="+", default=[15, 40, 100])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    truth = truths()
    print(f"{len(MODELS)} models × {len(PROMPTS)} prompt types × N items per sweep; sigma_u {SIGMA_U} (item effect), "
          f"sigma_w {SIGMA_W} (model × item), sigma_e {SIGMA_E}; {args.sweeps} sweeps per N; true success rates "
          f"{min(v[0] for v in truth['cell'].values()):.2f}-{max(v[0] for v in truth['cell'].values()):.2f}")
    for items in args.items:
        cover, null = Tally(), Tally()
        t0 = time.perf_counter()
        for _ in range(args.sweeps):
            one_sweep(rng, items, truth, cover, null)
        print(f"\nN = {items} items ({time.perf_counter() - t0:.1f} s)   coverage of nominal 95 % intervals "
              "(goal 94-96 %):")
        for kind in sorted(cover.counts):
            print(f"  {kind:28s} {cover.line(kind, 0.94, 0.96)}")
        print("  false-positive rate at alpha 0.05, true difference 0 (goal <= 5 %; ± one Monte Carlo standard error):")
        for kind in sorted(null.counts):
            goal = (0.0, 0.05) if "not used" not in kind else (None, None)
            print(f"  {kind:52s} {null.line(kind, *goal)}")
        delta, power = power_check(rng, items, args.sweeps)
        print(f"  power of the exact McNemar test at plan's detectable difference {delta:.3f} ({items} pairs): "
              f"{power:.1%} (goal ~80 %)")


if __name__ == "__main__":
    main()
