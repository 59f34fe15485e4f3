"""Execution accuracy under each scoring mode, and a case's outcome under the chosen one. Pure.

Every case is judged under every mode (``spider``, ``bird``, ``strict``: see :mod:`.compare`) from
the same executed results; the run's ``suiteConfig.scoring`` picks the one that makes the row's
status and score:

- success: the mode's verdict is true; score 1;
- partial: the query ran, returns the gold number of columns and at least one gold row, but is
  not the gold answer; score = rows in common (multiset) / max(gold rows, predicted rows), or 0.5
  when the rows are right and only their order is wrong (a mode that compares order);
- failure: anything else — invalid SQL, a query cut by the limits, the wrong columns, no gold
  row; score 0.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .compare import BIRD_TIMEOUT_S, bird_same, rows_in_common, spider_same, strict_same
from .sqlexec import ExecResult

MODES = ("spider", "bird", "strict")
DEFAULT_MODE = "spider"


@dataclass(frozen=True)
class Verdict:
    status: str
    score: float


@dataclass(frozen=True)
class Judged:
    """A prediction's results against the gold's: as written, and as Spider's evaluator runs them."""

    gold: ExecResult
    pred: ExecResult
    gold_spider: ExecResult  # the gold query as Spider runs it (DISTINCT removed, ...): often ``gold`` itself
    pred_spider: ExecResult
    spider_ordered: bool  # the gold's text says 'order by' (Spider's rule)
    strict_ordered: bool  # the gold has a top-level ORDER BY (the strict rule)


def _bird_runs(j: Judged) -> bool:
    """Whether BIRD's evaluator gets both results: both run, their text is UTF-8, within its time."""
    return j.gold.ok and j.pred.ok and not (j.gold.lossy or j.pred.lossy) \
        and j.gold.seconds + j.pred.seconds <= BIRD_TIMEOUT_S


def verdicts(j: Judged) -> dict[str, bool]:
    """The verdict under every mode."""
    return {"spider": j.gold_spider.ok and j.pred_spider.ok
            and spider_same(j.gold_spider.rows, j.pred_spider.rows, j.spider_ordered),
            "bird": _bird_runs(j) and bird_same(j.gold.rows, j.pred.rows),
            "strict": j.gold.ok and j.pred.ok
            and strict_same(j.gold.rows, j.pred.rows, len(j.gold.columns), len(j.pred.columns), j.strict_ordered)}


def outcome(j: Judged, mode: str, judged: dict[str, bool]) -> Verdict:
    """The case's status and score under ``mode`` (its verdict in ``judged``)."""
    if judged[mode]:
        return Verdict("success", 1.0)
    gold, pred = j.gold, j.pred
    if not pred.ok or not gold.ok or len(gold.columns) != len(pred.columns) or (mode == "bird" and not _bird_runs(j)):
        return Verdict("failure", 0.0)
    ordered = {"spider": j.spider_ordered, "strict": j.strict_ordered}.get(mode, False)
    if ordered and strict_same(gold.rows, pred.rows, len(gold.columns), len(pred.columns), ordered=False):
        return Verdict("partial", 0.5)  # the right rows in the wrong order
    common = rows_in_common(gold.rows, pred.rows)
    if common:
        return Verdict("partial", round(common / max(len(gold.rows), len(pred.rows)), 4))
    return Verdict("failure", 0.0)


def fingerprint(result: ExecResult) -> tuple:
    """What self-consistency votes on: the result as a multiset (the query text does not matter)."""
    return (len(result.columns), tuple(sorted(Counter(result.rows).items(), key=lambda kv: (_key(kv[0]), kv[1]))))


def _key(row: tuple) -> tuple:
    return tuple((0, v) if isinstance(v, (int, float)) else (1, str(v)) if v is not None else (2, "") for v in row)
