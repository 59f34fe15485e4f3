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

from ..contract.outcomes import FINAL_STATUSES, STATUSES
from ..stats.codes import combine
from .loading import EXTRA_PREFIX, Loaded

SET_NAMES = ("namespace", "run", "uid", "suite")  # only to tell result sets apart (one suite per set)
NAMES = ("model", "prompt_type", "difficulty", "task_type", "error_type")
SUCCESS = STATUSES.index("success")
PARTIAL = STATUSES.index("partial")
FINAL_CODES = [STATUSES.index(s) for s in FINAL_STATUSES]


@dataclass
class Frame:
    labels: dict[str, list]  # name column -> its labels, sorted; codes index into them
    codes: dict[str, np.ndarray]  # name column -> int32 code per case, and "set" (result set)
    values: dict[str, np.ndarray]  # per case (a missing value is 0): float64, tokens as integers
    flags: dict[str, np.ndarray]  # a suite's summary flag -> 0/1 per case
    status: np.ndarray  # index into STATUSES (-1: not a known status)
    instance: np.ndarray
    attempt: np.ndarray
    raw_row: np.ndarray  # the case's row in Loaded.raw (to read its details back)
    sets: list[tuple[str, str, str]] = field(default_factory=list)  # (namespace, run, uid) per set code
    set_suite: list[str] = field(default_factory=list)
    item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _final: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.status)

    @property
    def final(self) -> np.ndarray:
        """A mask of the cases with a final outcome (computed once)."""
        if self._final is None or len(self._final) != len(self.status):
            self._final = np.isin(self.status, FINAL_CODES)
        return self._final

    def label(self, name: str, code: int):
        return self.labels[name][code]


def _small(codes: np.ndarray, bound: int | None = None) -> np.ndarray:
    """Codes in the smallest integer type that holds them (``bound``: their largest value, else len)."""
    top = len(codes) if bound is None else bound
    return codes.astype(np.int16 if top < 2 ** 15 else np.int32 if top < 2 ** 31 else np.int64, copy=False)


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
    used = np.flatnonzero(np.bincount(idx, minlength=len(labels)))
    order = sorted(used.tolist(), key=lambda u: (labels[u] is None, str(labels[u])))
    remap = _small(np.zeros(len(labels), np.int64), len(labels))
    remap[order] = np.arange(len(order))
    return remap[idx], [labels[u] for u in order]


def _numbers(column: pa.ChunkedArray, keep: np.ndarray, dtype=np.float64) -> np.ndarray:
    return pc.fill_null(column, 0).to_numpy().astype(dtype, copy=False)[keep]


def _integers(column: pa.ChunkedArray, keep: np.ndarray) -> np.ndarray:
    """Counts per case as int32 (int64 only if one does not fit)."""
    values = _numbers(column, keep, np.int64)
    return values.astype(np.int32) if not len(values) or int(np.abs(values).max()) < 2 ** 31 else values


def _name_codes(raw: pa.Table, names, keep: np.ndarray) -> tuple[dict, dict]:
    codes, labels = {}, {}
    for name in names:
        if name in raw.column_names:
            codes[name], labels[name] = _codes(raw.column(name), keep)
        else:
            codes[name], labels[name] = np.zeros(int(keep.sum()), np.int16), [None]
    return codes, labels


def _sets(frame: Frame, raw: pa.Table, keep: np.ndarray) -> None:
    """The result set of each case, its (namespace, run, uid) and suite, and each case's item."""
    codes, labels = _name_codes(raw, SET_NAMES, keep)
    code, first = combine(codes["namespace"], codes["run"], codes["uid"])
    frame.codes["set"] = _small(code, len(first))
    frame.sets = [tuple(labels[k][codes[k][r]] for k in ("namespace", "run", "uid")) for r in first]
    frame.set_suite = [labels["suite"][codes["suite"][r]] for r in first]
    inst = frame.instance - frame.instance.min()
    item, _ = combine(frame.codes["set"], frame.codes["difficulty"], frame.codes["task_type"], inst)
    frame.item = _small(item, int(item.max()) + 1)


def build(loaded: Loaded) -> Frame:
    raw = loaded.raw
    keep = loaded.keep
    codes, labels = _name_codes(raw, NAMES, keep)
    status_codes, status_labels = _codes(raw.column("status"), keep)
    index = np.array([STATUSES.index(s) if s in STATUSES else -1 for s in status_labels] or [-1], np.int8)
    frame = Frame(labels=labels, codes=codes,
                  values={"score": _numbers(raw.column("score"), keep),
                          "latency_s": _numbers(raw.column("latency_s"), keep),
                          "cost_usd": _numbers(raw.column("cost_usd"), keep),
                          "prompt_tokens": _integers(raw.column("prompt_tokens"), keep),
                          "completion_tokens": _integers(raw.column("completion_tokens"), keep)},
                  flags={c[len(EXTRA_PREFIX):]: _numbers(raw.column(c), keep, np.int8)
                         for c in raw.column_names if c.startswith(EXTRA_PREFIX)},
                  status=index[status_codes], instance=_integers(raw.column("instance"), keep),
                  attempt=_integers(pc.fill_null(raw.column("attempt"), 1), keep),
                  raw_row=_small(np.flatnonzero(keep), len(keep)))
    if len(frame):
        _sets(frame, raw, keep)
    else:
        frame.codes["set"] = np.zeros(0, np.int32)
    pa.default_memory_pool().release_unused()
    return frame
