"""Reading results back: every part under a URI, one row per case — all in Arrow.

One row per case (per result set: namespace, run, run uid): a final outcome (success, partial,
failure) if there is one, else the latest attempt. A part written twice, or a case run twice by two
writers or attempts, is never counted twice. Nothing here builds a Python object per row.

The ``details`` column (suite-specific JSON, possibly large) is read once per part for the suite's
summary flags and dropped; :func:`case_details` reads it back only for the few cases a report lists.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..contract.layout import uid_of_part
from ..results.rows import SCHEMA, list_parts, read_part
from ..results.store import open_uri
from ..contract.outcomes import FINAL_STATUSES
from . import tools

log = logging.getLogger("benchpilot.report")

READ_COLUMNS = ("namespace", "run", "case_id", "suite", "model", "prompt_type", "difficulty", "task_type", "instance",
                "status", "score", "error_type", "latency_s", "attempt", "prompt_tokens", "completion_tokens",
                "cost_usd", "finished_at", "reused", "saved_tokens", "saved_usd", "served_model", "scoring_version")
DETAIL_COLUMNS = ("error_message", "details", "turns", "tool_calls", "transcript")  # read back for listed cases only
EXTRA_PREFIX = "x_"  # a suite's summary flag, read out of the details JSON per part (details are then dropped)

def _summary_fields(suite: str) -> tuple[str, ...]:
    """The boolean ``details`` keys a suite asks the report to average (none for an unknown suite)."""
    from ..contract.fields import SpecError
    from ..contract.registry import find_suite

    try:
        return tuple(getattr(find_suite(suite), "summary_fields", ()))
    except SpecError:
        return ()


def _flags(table: pa.Table, details: pa.ChunkedArray) -> pa.Table:
    """Append one int8 column per summary flag of the part's suites: 1 where details say true, else 0.
    The JSON is written with sort_keys and default separators, so a flag reads as '"name": true'."""
    suites = [s for s in pc.unique(_plain(table.column("suite"))).to_pylist() if s]
    for flag in dict.fromkeys(f for s in suites for f in _summary_fields(s)):
        hit = pc.match_substring(details, f'"{flag}": true').fill_null(False).cast(pa.int8())
        table = table.append_column(EXTRA_PREFIX + flag, hit)
    return table


@dataclass
class Loaded:
    """Every row read (``raw``) and which of them are superseded (``losers``): one row per case remains."""

    raw: pa.Table
    losers: pa.Array  # row indices of raw that another row of the same case supersedes
    parts: int
    unreadable: list[str]
    part_paths: tuple[str, ...] = ()  # the parts read, in the order their rows are in raw
    part_starts: np.ndarray | None = None  # the first raw row of each
    fs: object = None

    @property
    def duplicates(self) -> int:
        return len(self.losers)

    @property
    def table(self) -> pa.Table:
        """One row per case (materialised on demand: summaries never need it)."""
        keep = np.ones(self.raw.num_rows, dtype=bool)
        keep[self.losers.to_numpy()] = False
        return self.raw.filter(pa.array(keep))

    @property
    def rows(self) -> list[dict]:
        """The rows as dicts (for tests and small results only)."""
        return self.table.to_pylist()

    @property
    def keep(self) -> np.ndarray:
        """A boolean mask over raw: the rows that are the one row of their case."""
        keep = np.ones(self.raw.num_rows, dtype=bool)
        keep[self.losers.to_numpy()] = False
        return keep


def _read(fs, part: str) -> tuple[str, pa.Table | None, str | None]:
    try:
        table = read_part(fs, part, (*READ_COLUMNS, "details"), dictionaries=True)
        details = table.column("details")
        table = tools.add_columns(_flags(table.drop_columns(["details"]), details), details)
        uid = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, np.int32)), pa.array([uid_of_part(part)]))
        return part, table.append_column("uid", uid), None
    except Exception as exc:  # noqa: BLE001 - report what could not be read, go on with the rest
        return part, None, f"{type(exc).__name__}: {exc}"[:300]


def _plain(column) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def dedupe(table: pa.Table) -> pa.Table:
    """One row per (namespace, run, uid, case_id): final first, then the latest attempt and finish."""
    return table.take(winners(table))


def losers_of(table: pa.Table, winners_: pa.Array) -> pa.Array:
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[winners_.to_numpy()] = True
    return pa.array(np.flatnonzero(~keep))


def winners(table: pa.Table) -> pa.Array:
    """The row indices that :func:`dedupe` keeps, ascending. Sorts a narrow table: key and ranks only."""
    if table.num_rows == 0:
        return pa.array([], pa.int64())
    sets = table.select(["namespace", "run", "uid"]).group_by(["namespace", "run", "uid"]).aggregate([])
    if sets.num_rows == 1:
        key = table.column("case_id")
    else:
        key = pc.binary_join_element_wise(_plain(table.column("namespace")), _plain(table.column("run")),
                                          _plain(table.column("uid")), table.column("case_id"), "/")
    final = pc.is_in(_plain(table.column("status")), value_set=pa.array(list(FINAL_STATUSES))).cast(pa.int8())
    narrow = pa.table({"k": key, "f": final, "a": table.column("attempt").fill_null(1),
                       "t": table.column("finished_at")})
    order = pc.sort_indices(narrow, sort_keys=[("k", "ascending"), ("f", "descending"), ("a", "descending"),
                                               ("t", "descending")])
    del narrow
    keys = key.take(order).combine_chunks() if isinstance(key, pa.ChunkedArray) else key.take(order)
    first = pa.concat_arrays([pa.array([True]), pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))])
    del keys
    chosen = order.filter(first)
    return chosen.take(pc.sort_indices(chosen))


def load(uri: str) -> Loaded:
    """All result rows under ``uri`` (a results root, a run folder, or a shard folder)."""
    fs, root = open_uri(uri)
    if not fs.exists(root):
        raise FileNotFoundError(f"no results at {uri}")
    parts = list_parts(fs, root, recursive=True)
    tables, unreadable, read = [], [], []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for part, table, error in pool.map(lambda p: _read(fs, p), parts):
            if table is None:
                unreadable.append(part)
                log.warning("unreadable part skipped", extra={"part": part, "error": error})
            elif table.num_rows:
                tables.append(table)
                read.append(part)
    starts = np.cumsum([0] + [t.num_rows for t in tables[:-1]]).astype(np.int64) if tables else None
    if tables:
        raw = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()
        del tables
        losers = losers_of(raw, winners(raw))
    else:
        raw = pa.table({c: pa.array([], SCHEMA.field(c).type) for c in READ_COLUMNS}).append_column(
            "uid", pa.array([], pa.string()))
        losers = pa.array([], pa.int64())
    pa.default_memory_pool().release_unused()  # the parts' and the sort's buffers: back to the system
    return Loaded(raw=raw, losers=losers, parts=len(parts), unreadable=unreadable, part_paths=tuple(read),
                  part_starts=starts, fs=fs)


def case_details(loaded: Loaded, rows: np.ndarray) -> dict[int, dict]:
    """The listed cases' message, details and counts, read back from their parts (raw row -> values).

    Only the parts that hold one of ``rows`` are opened, and only these columns: a report lists a
    bounded number of cases, so this stays small whatever the size of the results."""
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows) or loaded.part_starts is None:
        return {}
    part_of = np.searchsorted(loaded.part_starts, rows, side="right") - 1
    ids = dict(zip(rows.tolist(), loaded.raw.column("case_id").take(pa.array(rows)).to_pylist()))
    out: dict[int, dict] = {}
    for part in np.unique(part_of):
        mine = rows[part_of == part]
        try:
            table = read_part(loaded.fs, loaded.part_paths[part], DETAIL_COLUMNS)
        except Exception as exc:  # noqa: BLE001 - the list says what it could not read, the report goes on
            log.warning("part unreadable for case details", extra={"part": loaded.part_paths[part], "error": str(exc)})
            continue
        got = table.take(pa.array(mine - loaded.part_starts[part])).to_pylist()
        out.update((r, {**g, "case_id": ids[r]}) for r, g in zip(mine.tolist(), got))
    return out
