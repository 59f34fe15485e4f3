"""The one row per case as numpy arrays: integer codes for names, floats for values.

Everything the report computes (groups, intervals, pairs, cost, the case list) works on these
arrays; nothing builds a Python object per row. A name column becomes codes into a sorted list of
its labels; a case's *item* — what a model faces, the same under every model and prompt type — is
(result set, difficulty, task type, instance): the workflow suite's task, text2sql's question.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..spec import FINAL_STATUSES, STATUSES
from .loading import EXTRA_PREFIX, Loaded

NAMES = ("namespace", "run", "uid", "suite", "model", "prompt_type", "difficulty", "task_type", "error_type")
VALUES = ("score", "latency_s", "prompt_tokens", "completion_tokens", "cost_usd")
SUCCESS = STATUSES.index("success")
PARTIAL = STATUSES.index("partial")
FINAL_CODES = [STATUSES.index(s) for s in FINAL_STATUSES]


@dataclass
class Frame:
    labels: dict[str, list]  # name column -> its labels, sorted; codes index into them
    codes: dict[str, np.ndarray]  # name column -> int64 code per case, and "set" (result set)
    values: dict[str, np.ndarray]  # float64 per case (a missing value is 0)
    flags: dict[str, np.ndarray]  # a suite's summary flag -> 0/1 per case
    status: np.ndarray  # index into STATUSES (-1: not a known status)
    instance: np.ndarray
    attempt: np.ndarray
    raw_row: np.ndarray  # the case's row in Loaded.raw (to read its details back)
    sets: list[tuple[str, str, str]] = field(default_factory=list)  # (namespace, run, uid) per set code
    set_suite: list[str] = field(default_factory=list)
    item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.status)

    @property
    def final(self) -> np.ndarray:
        return np.isin(self.status, FINAL_CODES)

    def label(self, name: str, code: int):
        return self.labels[name][code]


def _codes(column: pa.ChunkedArray, keep: np.ndarray) -> tuple[np.ndarray, list]:
    """Codes (into labels sorted by their text) of the kept rows, and the labels they use."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column.cast(pa.string()))
    column = pa.table({"c": column}).unify_dictionaries().column("c")
    if column.num_chunks == 0:
        return np.zeros(0, np.int64), []
    labels = column.chunk(0).dictionary.to_pylist()
    null = len(labels)
    idx = np.concatenate([c.indices.fill_null(null).to_numpy(zero_copy_only=False) for c in column.chunks])[keep]
    labels.append(None)
    used = np.unique(idx)
    order = sorted(used.tolist(), key=lambda u: (labels[u] is None, str(labels[u])))
    remap = np.zeros(len(labels), np.int64)
    remap[order] = np.arange(len(order))
    return remap[idx], [labels[u] for u in order]


def _numbers(column: pa.ChunkedArray, keep: np.ndarray, dtype=np.float64) -> np.ndarray:
    return pc.fill_null(column, 0).to_numpy().astype(dtype, copy=False)[keep]


def _combine(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One dense code per distinct combination of several code arrays, and the first row of each."""
    key = np.zeros(len(codes[0]), np.int64)
    for c in codes:
        key = key * (int(c.max()) + 1 if len(c) else 1) + c
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.astype(np.int64), first


def build(loaded: Loaded) -> Frame:
    raw = loaded.raw
    keep = loaded.keep
    labels, codes = {}, {}
    for name in NAMES:
        if name in raw.column_names:
            codes[name], labels[name] = _codes(raw.column(name), keep)
        else:
            codes[name], labels[name] = np.zeros(int(keep.sum()), np.int64), [None]
    status_codes, status_labels = _codes(raw.column("status"), keep)
    index = np.array([STATUSES.index(s) if s in STATUSES else -1 for s in status_labels] or [-1], np.int64)
    frame = Frame(labels=labels, codes=codes,
                  values={v: _numbers(raw.column(v), keep) for v in VALUES},
                  flags={c[len(EXTRA_PREFIX):]: _numbers(raw.column(c), keep, np.int8)
                         for c in raw.column_names if c.startswith(EXTRA_PREFIX)},
                  status=index[status_codes], instance=_numbers(raw.column("instance"), keep, np.int64),
                  attempt=_numbers(pc.fill_null(raw.column("attempt"), 1), keep, np.int64),
                  raw_row=np.flatnonzero(keep))
    if len(frame):
        frame.codes["set"], first = _combine(codes["namespace"], codes["run"], codes["uid"])
        frame.sets = [tuple(labels[k][codes[k][r]] for k in ("namespace", "run", "uid")) for r in first]
        frame.set_suite = [labels["suite"][codes["suite"][r]] for r in first]
        inst = frame.instance - frame.instance.min()
        frame.item, _ = _combine(frame.codes["set"], codes["difficulty"], codes["task_type"], inst)
    else:
        frame.codes["set"] = np.zeros(0, np.int64)
    return frame
