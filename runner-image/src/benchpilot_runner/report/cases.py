"""The cases that did not succeed: counted by kind, and a bounded list of them with their details.

Every non-success case is counted per (model, prompt type, task type, status, error type): the
buckets are small whatever the size of the results. At most ``limit`` cases are listed with their
details (SQL and result, tool calls, error message), spread over the buckets so that each kind of
failure shows up; within a bucket, the first cases written.
"""

from __future__ import annotations

import json

import numpy as np

from ..contract.outcomes import STATUSES
from ..stats.codes import combine
from .frame import SUCCESS, Frame
from .groups import SET_KEYS
from . import answers
from .loading import Loaded, case_details

BUCKET_KEYS = ("model", "prompt_type", "task_type", "error_type")
MAX_DETAILS_CHARS = 8_000  # x the listed cases (1000): the page stays under ~10 MB whatever the suite writes
MAX_MESSAGE_CHARS = 2_000


def _buckets(frame: Frame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes = [frame.codes["set"][rows], *(frame.codes[k][rows] for k in BUCKET_KEYS), frame.status[rows] + 1]
    return combine(*codes)


def _quota(sizes: np.ndarray, limit: int) -> int:
    """The largest q with sum(min(size, q)) <= limit."""
    lo, hi = 0, int(sizes.max()) if len(sizes) else 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(sizes, mid).sum() <= limit else (lo, mid - 1)
    return lo


def pick(frame: Frame, limit: int) -> np.ndarray:
    """The cases (frame indices) to list: up to ``limit``, the same number from each bucket where it can."""
    rows = np.flatnonzero(frame.status != SUCCESS)
    if not len(rows) or limit <= 0:
        return np.zeros(0, np.int64)
    bucket, _ = _buckets(frame, rows)
    order = np.lexsort((frame.raw_row[rows], bucket))
    sizes = np.bincount(bucket)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(len(rows)) - starts[bucket[order]]
    q = _quota(sizes, limit)
    room = limit - int(np.minimum(sizes, q).sum())  # one more from the first buckets that have more
    extra = np.zeros(len(sizes), bool)
    extra[np.flatnonzero(sizes > q)[:room]] = True
    take = (rank < q) | ((rank == q) & extra[bucket[order]])
    return np.sort(rows[order[take]])


def _labels(frame: Frame, i: int, several: bool) -> dict:
    out = dict(zip(SET_KEYS, frame.sets[frame.codes["set"][i]])) if several else {}
    for k in ("model", "prompt_type", "difficulty", "task_type"):
        out[k] = frame.label(k, frame.codes[k][i])
    out["instance"] = int(frame.instance[i])
    out["status"] = STATUSES[frame.status[i]] if frame.status[i] >= 0 else None
    out["error_type"] = frame.label("error_type", frame.codes["error_type"][i])
    return out


def _details(text: str | None):
    if text is None:
        return None
    if len(text) > MAX_DETAILS_CHARS:
        return text[:MAX_DETAILS_CHARS] + f"… ({len(text)} characters, cut)"
    try:
        return json.loads(text)
    except ValueError:
        return text


def _message(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"


def buckets(frame: Frame) -> list[dict]:
    rows = np.flatnonzero(frame.status != SUCCESS)
    if not len(rows):
        return []
    several = len(frame.sets) > 1
    bucket, first = _buckets(frame, rows)
    counts = np.bincount(bucket)
    out = []
    for b, r in enumerate(first):
        labels = _labels(frame, rows[r], several)
        for k in ("difficulty", "instance"):
            labels.pop(k)
        out.append({**labels, "cases": int(counts[b])})
    return out


def listing(frame: Frame, loaded: Loaded, limit: int) -> dict:
    """The ``cases`` section of the report: totals, buckets, and up to ``limit`` cases in detail."""
    chosen = pick(frame, limit)
    found = case_details(loaded, frame.raw_row[chosen])
    several = len(frame.sets) > 1
    listed = []
    for i in chosen.tolist():
        extra = found.get(int(frame.raw_row[i]), {})
        listed.append({"case_id": extra.get("case_id"), **_labels(frame, i, several),
                       "score": float(frame.values["score"][i]), "latency_s": float(frame.values["latency_s"][i]),
                       "turns": extra.get("turns"), "tool_calls": extra.get("tool_calls"),
                       "error_message": _message(extra.get("error_message")),
                       "details": _details(extra.get("details")),
                       "conversation": answers.conversation(extra.get("transcript"))})
    total = int(np.count_nonzero(frame.status != SUCCESS))
    return {"non_success": total, "listed": len(listed), "limit": limit, "buckets": buckets(frame),
            "list": listed}
