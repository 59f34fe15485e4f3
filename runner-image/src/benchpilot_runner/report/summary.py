"""The report as one dict (what ``report --format json`` prints, and what the table and HTML show)."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from ..contract.outcomes import FINAL_STATUSES, STATUSES
from . import cases as case_list
from . import answers, compare, cost, groups, tools
from .frame import Frame, build
from .loading import EXTRA_PREFIX, Loaded, _plain

CONFIDENCE = 0.95


def _distinct_case_ids(loaded: Loaded, frame: Frame) -> int:
    """Case ids over every result set (a case id in two sets counts once): one per kept row in one set."""
    if len(frame.sets) <= 1:
        return len(frame)
    return int(pc.count_distinct(loaded.raw.column("case_id").take(frame.raw_row)).as_py())


def _totals(loaded: Loaded, frame: Frame) -> dict:
    t = loaded.raw
    known = frame.status[frame.status >= 0]
    status = {s: int(c) for s, c in zip(STATUSES, np.bincount(known, minlength=len(STATUSES)))}
    suites = sorted(pc.unique(_plain(t.column("suite"))).drop_null().to_pylist()) if "suite" in t.column_names else []
    sets = [{"namespace": ns, "run": run, "uid": uid, "suite": suite,
             "cases": int(np.count_nonzero(frame.codes["set"] == i))}
            for i, ((ns, run, uid), suite) in enumerate(zip(frame.sets, frame.set_suite))]
    several = len(sets) > 1
    return {
        "suites": suites,
        "flags": [c[len(EXTRA_PREFIX):] for c in t.column_names if c.startswith(EXTRA_PREFIX)],
        # cases whose details say true, per flag (text2sql: valid, corrected, ex_<mode>, modes_disagree)
        "flag_counts": {f: int(np.count_nonzero(a)) for f, a in sorted(frame.flags.items())},
        "total": len(frame),
        "distinct_case_ids": _distinct_case_ids(loaded, frame),
        "final": sum(status[s] for s in FINAL_STATUSES),
        "retryable": status["error"] + status["timeout"],
        "duplicate_rows_dropped": loaded.duplicates,
        "parts": loaded.parts,
        "unreadable_parts": loaded.unreadable,
        "result_sets": sets,
        "warning": (f"{len(sets)} result sets with different run uids (different settings) under this root; "
                    "they are reported separately, never merged") if several else None,
        "runs": sorted({f"{s['namespace']}/{s['run']}" for s in sets}),
        "counts": {k: v for k, v in status.items() if v},
        "tokens": {k: int(frame.values[k].sum()) for k in ("prompt_tokens", "completion_tokens")},
        "cost_usd": round(float(frame.values["cost_usd"].sum()), 6),
    }


def summarize(loaded: Loaded, *, reference: str | None = None, confidence: float = CONFIDENCE,
              cases: int | None = None) -> dict:
    """Everything the report says about ``loaded``. ``reference``: the prompt type the others are compared
    with (default: the suite's); ``cases``: list up to that many non-success cases with their details
    (None: no case list). Raises :class:`compare.ReferenceError` for a reference in no result set."""
    frame = build(loaded)
    compare.check_reference(frame, reference)
    out = _totals(loaded, frame)
    keys = ["set"] if len(frame.sets) > 1 else []
    by_prompt = groups.table(frame, [*keys, "model", "prompt_type"], confidence)
    out.update({
        "confidence": confidence, "alpha": round(1 - confidence, 10),
        "by_model_prompt_type": by_prompt,
        "by_task_type": groups.table(frame, [*keys, "model", "task_type"], confidence),
        "by_model": groups.table(frame, [*keys, "model"], confidence),
        "comparisons": compare.models(frame, confidence),
        "robustness": compare.robustness(frame, reference, confidence),
        "cost": cost.table(by_prompt),
        "tool_calling": tools.summary(loaded),
        **answers.summary(loaded),
    })
    if cases is not None:
        out["cases"] = case_list.listing(frame, loaded, cases)
    return out
