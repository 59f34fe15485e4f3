"""Grouped tables: per group of cases, counts and sums, and every rate and mean with its interval.

Rates and means are over the cases with a final outcome (success, partial, failure): an error or a
timeout is the infrastructure's, not the model's outcome, and is counted apart (and retried by a
rerun). Latency is over every case. Intervals are clustered by item where a group holds an item more
than once (model × task type and per model: one item per prompt type).
"""

from __future__ import annotations

import numpy as np

from ..contract.outcomes import STATUSES
from ..stats.intervals import Clusters, Interval, mean_interval, rate_interval
from ..stats.codes import combine
from .frame import PARTIAL, SUCCESS, Frame

SET_KEYS = ("namespace", "run", "uid")


def group_codes(frame: Frame, keys: list[str]) -> tuple[np.ndarray, list[dict]]:
    """Each case's group (dense codes in the order of the keys' sorted labels) and each group's keys."""
    if not keys:
        return np.zeros(len(frame), np.int64), [{}]
    code, first = combine(*(frame.codes[k] for k in keys))
    out = []
    for r in first:
        row: dict = {}
        for k in keys:
            if k == "set":
                row.update(zip(SET_KEYS, frame.sets[frame.codes["set"][r]]))
            else:
                row[k] = frame.label(k, frame.codes[k][r])
        out.append(row)
    return code, out


def _rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


class _Measures:
    """Every measure of every group, computed at once from the cases."""

    def __init__(self, frame: Frame, group: np.ndarray, n: int, confidence: float):
        final = frame.final
        fin = Clusters(group[final], frame.item[final], n)
        self.confidence = confidence
        status = frame.status[final]
        self.success = fin.moments(status == SUCCESS, binary=True)
        self.partial = fin.moments(status == PARTIAL, binary=True)
        self.score = fin.moments(frame.values["score"][final])
        self.latency = Clusters(group, frame.item, n).moments(frame.values["latency_s"])
        self.flags = {f: fin.moments(a[final] > 0, binary=True) for f, a in sorted(frame.flags.items())}
        known = frame.status >= 0
        self.counts = np.bincount(group[known] * len(STATUSES) + frame.status[known],
                                  minlength=n * len(STATUSES)).reshape(n, len(STATUSES))
        self.sums = {v: np.bincount(group, weights=frame.values[v], minlength=n)
                     for v in ("prompt_tokens", "completion_tokens", "cost_usd")}
        self.max_attempt = np.ones(n, np.int64)
        for a in np.flatnonzero(np.bincount(frame.attempt.clip(1, None)))[1:]:  # the few attempt numbers seen
            self.max_attempt[np.bincount(group[frame.attempt == a], minlength=n) > 0] = a

    def row(self, i: int) -> dict:
        c = self.confidence
        success, partial = rate_interval(self.success, i, c), rate_interval(self.partial, i, c)
        score = mean_interval(self.score, i, c)
        latency = mean_interval(self.latency, i, c, bounds=None)
        flags = {f: rate_interval(m, i, c) for f, m in self.flags.items()}
        counts = {s: int(self.counts[i, k]) for k, s in enumerate(STATUSES)}
        tokens = int(self.sums["prompt_tokens"][i]), int(self.sums["completion_tokens"][i])
        cost = float(self.sums["cost_usd"][i])
        wins = counts["success"]
        return {
            "cases": int(self.latency.n[i]), "final": success.n,
            "success_rate": _rounded(success.estimate), "partial_rate": _rounded(partial.estimate),
            "mean_score": _rounded(score.estimate), "mean_latency_s": _rounded(latency.estimate),
            "success": success.to_json(), "partial": partial.to_json(), "score": score.to_json(),
            "latency_s": latency.to_json(), "flags": {f: v.to_json() for f, v in flags.items()},
            **{f"{f}_rate": _rounded(v.estimate) for f, v in flags.items()},
            "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "cost_usd": round(cost, 6),
            "cost_per_success": cost / wins if wins else None,
            "tokens_per_success": sum(tokens) / wins if wins else None,
            "max_attempt": int(self.max_attempt[i]), "counts": counts,
        }


def table(frame: Frame, keys: list[str], confidence: float = 0.95) -> list[dict]:
    """One row per group of ``keys`` (``"set"`` stands for the result set's namespace, run and uid)."""
    if not len(frame):
        return []
    group, labels = group_codes(frame, keys)
    measures = _Measures(frame, group, len(labels), confidence)
    return [{**labels[i], **measures.row(i)} for i in range(len(labels))]


def interval(row: dict, measure: str) -> Interval:
    """A table row's interval of ``measure`` back as an :class:`Interval` (for rendering)."""
    j = row[measure]
    return Interval(j["estimate"], j["low"], j["high"], j["n"], j["clusters"], j["method"], j.get("note"),
                    j.get("n_eff"))
