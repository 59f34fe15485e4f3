"""Execution accuracy. Pure.

- success: the predicted query's result equals the gold result — as multisets of rows, or as
  lists when the gold query orders its result (a top-level ORDER BY); score 1;
- partial: the query ran and returns the right number of columns and at least one gold row, but
  not the gold result; score = rows in common (multiset) / max(gold rows, predicted rows), or 0.5
  when only the order is wrong;
- failure: anything else — invalid SQL, a query cut by the time limit or the row cap, the wrong
  columns, no gold row; score 0.
Values compare as SQLite returns them (floats rounded to 6 places; ``3 == 3.0``); column names
do not matter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .sqlexec import ExecResult


@dataclass(frozen=True)
class Verdict:
    status: str
    score: float


def _key(row: tuple) -> tuple:
    return tuple((0, v) if isinstance(v, (int, float)) else (1, str(v)) if v is not None else (2, "") for v in row)


def same_result(gold: ExecResult, pred: ExecResult, ordered: bool) -> bool:
    if len(gold.columns) != len(pred.columns):
        return False
    if ordered:
        return list(gold.rows) == list(pred.rows)
    return Counter(gold.rows) == Counter(pred.rows)


def score(gold: ExecResult, pred: ExecResult, ordered: bool) -> Verdict:
    if not pred.ok:
        return Verdict("failure", 0.0)
    if same_result(gold, pred, ordered):
        return Verdict("success", 1.0)
    if len(gold.columns) == len(pred.columns):
        if ordered and same_result(gold, pred, ordered=False):
            return Verdict("partial", 0.5)  # the right rows in the wrong order
        common = sum((Counter(gold.rows) & Counter(pred.rows)).values())
        if common:
            return Verdict("partial", round(common / max(len(gold.rows), len(pred.rows)), 4))
    return Verdict("failure", 0.0)


def fingerprint(result: ExecResult) -> tuple:
    """What self-consistency votes on: the result as a multiset (the query text does not matter)."""
    return (len(result.columns), tuple(sorted(Counter(result.rows).items(), key=lambda kv: (_key(kv[0]), kv[1]))))
