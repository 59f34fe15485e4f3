"""Paired comparisons, per result set: every pair of models, and each prompt type against a reference.

Models are compared on the identical cases both have a final outcome for: the same prompt type and
item. Pooled over prompt types an item gives several pairs, so intervals are clustered by item and
the verdict uses the clustered McNemar test. Prompt types are compared within each model against the
reference prompt type on the same items (one pair per item: McNemar's exact test), and pooled over
the models ("all models", clustered by item): the robustness table. p-values are Holm-adjusted over
all pairs of models, and over all rows of the robustness table, of a result set.
"""

from __future__ import annotations

import numpy as np

from ..contract.outcomes import ConfigError
from ..stats.paired import Pairs, difference, holm, success_test, t_test, tied_groups
from .frame import SUCCESS, Frame

REFERENCE = {"workflow": "optimal", "text2sql": "zero_shot"}  # a suite may say its own: reference_prompt_type


class ReferenceError(ConfigError, ValueError):
    """The reference prompt type asked for is in none of the result sets."""


class _Arms:
    """The final cases of one result set, keyed for matching two arms of it."""

    def __init__(self, frame: Frame, set_code: int):
        rows = np.flatnonzero(frame.final & (frame.codes["set"] == set_code))
        self.model = frame.codes["model"][rows]
        self.prompt = frame.codes["prompt_type"][rows]
        self.item = frame.item[rows].astype(np.int64)
        self.success = (frame.status[rows] == SUCCESS).astype(np.float64)
        self.score = frame.values["score"][rows]
        self.width = int(self.item.max()) + 1 if len(rows) else 1

    def sorted_by(self, mask: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``mask`` ordered by ``key``, and their keys."""
        rows = np.flatnonzero(mask)
        order = rows[np.argsort(key[rows], kind="stable")]
        return order, key[order]

    def match(self, a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The rows of two arms (sorted by key, as sorted_by gives them) with the same key, pair by pair."""
        (a_rows, a_keys), (b_rows, b_keys) = a, b
        if not len(a_keys):
            return a_rows, a_rows
        pos = np.minimum(np.searchsorted(a_keys, b_keys), len(a_keys) - 1)
        hit = a_keys[pos] == b_keys
        return a_rows[pos[hit]], b_rows[hit]

    def pairs(self, ai: np.ndarray, bi: np.ndarray) -> tuple[Pairs, Pairs]:
        """Success and score pairs of matched rows."""
        success = Pairs(self.success[ai], self.success[bi], self.item[ai])
        return success, success.same_items(self.score[ai], self.score[bi])


def _verdicts(rows: list[dict], confidence: float) -> None:
    """Holm over the rows' success p-values and score p-values; 'significant' from the success one."""
    for key in ("p", "score_p"):
        for row, adjusted in zip(rows, holm([r[key] for r in rows])):
            row[f"{key}_holm"] = adjusted
    for row in rows:
        row["significant"] = row["p_holm"] is not None and row["p_holm"] < 1 - confidence


def _compare(success: Pairs, score: Pairs, confidence: float) -> dict:
    test = success_test(success)
    n = len(success)
    return {
        "pairs": n, "items": int(len(success.clusters.size)) if n else 0,
        "a_success": float(success.a.mean()) if n else None, "b_success": float(success.b.mean()) if n else None,
        "success_diff": difference(success, confidence).to_json(),
        "a_only": test.a_only, "b_only": test.b_only, "discordance": (test.a_only + test.b_only) / n if n else None,
        "p_exact": test.p_exact if n else None, "p_clustered": test.p_clustered, "test": test.test,
        "p": test.p if n else None,
        "score_diff": difference(score, confidence).to_json(), "score_p": t_test(score),
    }


def _set_keys(frame: Frame, s: int) -> dict:
    namespace, run, uid = frame.sets[s]
    return {"namespace": namespace, "run": run, "uid": uid, "suite": frame.set_suite[s]}


def models(frame: Frame, confidence: float = 0.95) -> list[dict]:
    """Per result set: every pair of models (a = the one with the higher success rate), tied groups."""
    out = []
    for s in range(len(frame.sets)):
        arms = _Arms(frame, s)
        counts = np.bincount(arms.model)
        wins = np.bincount(arms.model, weights=arms.success)
        rate = {int(m): float(wins[m] / counts[m]) for m in np.flatnonzero(counts)}
        order = sorted(rate, key=lambda m: (-rate[m], frame.label("model", m)))
        key = arms.prompt.astype(np.int64) * arms.width + arms.item  # the same prompt type and item
        arm = {m: arms.sorted_by(arms.model == m, key) for m in order}
        rows = []
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                success, score = arms.pairs(*arms.match(arm[a], arm[b]))
                rows.append({"a": frame.label("model", a), "b": frame.label("model", b),
                             **_compare(success, score, confidence)})
        _verdicts(rows, confidence)
        differ = {(r["a"], r["b"]) for r in rows if r["significant"]}
        names = [frame.label("model", m) for m in order]
        groups = tied_groups(names, lambda x, y: (x, y) in differ or (y, x) in differ)
        out.append({**_set_keys(frame, s), "ranking": [{"model": n, "success_rate": rate[m]} for n, m in
                                                       zip(names, order)],
                    "pairs": rows, "tied_groups": groups})
    return out


def reference_for(frame: Frame, s: int, asked: str | None) -> str | None:
    """The reference prompt type of result set ``s``: the one asked for, else its suite's default."""
    if asked:
        return asked
    from ..contract.fields import SpecError
    from ..contract.registry import find_suite

    suite = frame.set_suite[s]
    try:
        own = getattr(find_suite(suite), "reference_prompt_type", None)
    except SpecError:
        own = None
    return own or REFERENCE.get(suite)


def check_reference(frame: Frame, asked: str | None) -> None:
    if asked is None or not len(frame):
        return
    have = sorted({p for p in frame.labels["prompt_type"] if p is not None})
    if asked not in have:
        raise ReferenceError(f"--reference: {asked[:60]!r} is not a prompt type of these results; "
                             f"they have: {', '.join(have)}")


def robustness(frame: Frame, reference: str | None = None, confidence: float = 0.95) -> list[dict]:
    """Per result set: each model's prompt types against the reference, and all models pooled."""
    check_reference(frame, reference)
    out = []
    for s in range(len(frame.sets)):
        ref = reference_for(frame, s, reference)
        arms = _Arms(frame, s)
        labels = frame.labels["prompt_type"]
        head = {**_set_keys(frame, s), "reference": ref}
        if ref is None or ref not in labels or not np.any(arms.prompt == labels.index(ref)):
            out.append({**head, "rows": [], "note": _no_reference(frame, s, ref)})
            continue
        rows = _robust_rows(frame, arms, labels.index(ref), confidence)
        _verdicts(rows, confidence)
        out.append({**head, "rows": rows})
    return out


def _no_reference(frame: Frame, s: int, ref: str | None) -> str:
    if ref is None:
        return "no reference prompt type for this suite: give --reference"
    labels = frame.labels["prompt_type"]
    if ref in labels and np.any((frame.codes["set"] == s) & (frame.codes["prompt_type"] == labels.index(ref))):
        return f"reference prompt type {ref!r} has no case with a final outcome in this result set"
    return f"reference prompt type {ref!r} is not in this result set"


def _robust_rows(frame: Frame, arms: _Arms, ref: int, confidence: float) -> list[dict]:
    """Per prompt type: the pairs (same model, same item) with the reference, per model and pooled."""
    key = arms.model.astype(np.int64) * arms.width + arms.item
    reference = arms.sorted_by(arms.prompt == ref, key)
    rows = []
    for p in (int(p) for p in np.flatnonzero(np.bincount(arms.prompt)) if p != ref):
        ai, bi = arms.match(arms.sorted_by(arms.prompt == p, key), reference)
        for m in np.flatnonzero(np.bincount(arms.model[arms.prompt == p])):
            mine = arms.model[ai] == m
            rows.append(_robust_row(frame, p, int(m), *arms.pairs(ai[mine], bi[mine]), confidence))
        rows.append(_robust_row(frame, p, None, *arms.pairs(ai, bi), confidence))
    return rows


def _robust_row(frame: Frame, p: int, model: int | None, success: Pairs, score: Pairs, confidence: float) -> dict:
    return {"model": frame.label("model", model) if model is not None else None, "pooled": model is None,
            "prompt_type": frame.label("prompt_type", p), **_compare(success, score, confidence)}
