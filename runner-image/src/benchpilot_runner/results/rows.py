"""A result row: its columns (SCHEMA) and :func:`make_row` beside them, and parts written and read.

A row is made once, by :func:`make_row`: every column of SCHEMA (missing ones null), an unknown key
refused (a misspelt column would otherwise become a silent null), every text scrubbed of secrets
once, a suite's ``details`` bounded. Parts written before a column existed read back with nulls.
"""

from __future__ import annotations

import io
import json
from typing import Any, Iterable

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ..contract.layout import is_part
from ..redact import scrub

_TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema([
    ("run", pa.string()), ("namespace", pa.string()), ("case_id", pa.string()), ("suite", pa.string()),
    ("model", pa.string()), ("prompt_type", pa.string()), ("difficulty", pa.string()),
    ("task_type", pa.string()), ("instance", pa.int32()), ("shard", pa.int32()), ("attempt", pa.int32()),
    ("status", pa.string()), ("score", pa.float64()), ("error_type", pa.string()),
    ("error_message", pa.string()), ("latency_s", pa.float64()), ("turns", pa.int32()),
    ("tool_calls", pa.int32()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("cost_usd", pa.float64()), ("started_at", _TS), ("finished_at", _TS), ("details", pa.string()),
    # issue 22: what the model said (answers/transcript.py), answers reused instead of paid, who scored it
    ("transcript", pa.string()), ("reused", pa.int32()), ("saved_tokens", pa.int64()), ("saved_usd", pa.float64()),
    ("served_model", pa.string()), ("system_fingerprint", pa.string()), ("scoring_version", pa.string()),
])
COLUMNS = tuple(SCHEMA.names)
REQUIRED = ("run", "namespace", "case_id", "status")
_TEXT = frozenset(f.name for f in SCHEMA if f.type == pa.string())
MAX_DETAILS = 16384  # bytes of a suite's details JSON kept in a row
MAX_ERROR_MESSAGE = 500
TRANSCRIPT_ZSTD = 9  # zstd level of the transcript column (1 elsewhere): ~35 % smaller, ~0.1 s per 2,000 rows
DICTIONARY_COLUMNS = ("run", "namespace", "suite", "model", "prompt_type", "difficulty", "task_type", "status",
                      "error_type")  # few distinct values: kept dictionary-encoded when read in bulk


def details_text(value: Any) -> str | None:
    """A suite's per-case details as the row's JSON text: sorted keys and default separators (the report
    reads summary flags by substring), bounded (never an invalid document)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_DETAILS:
        text = json.dumps({"truncated": True, "bytes": len(text)})
    return text


def make_row(**fields: Any) -> dict:
    """One result row with exactly SCHEMA's columns; every text scrubbed here, once."""
    unknown = sorted(set(fields) - set(COLUMNS))
    if unknown:
        raise TypeError(f"unknown result column(s) {', '.join(unknown)}; the columns are rows.SCHEMA's")
    missing = [c for c in REQUIRED if not fields.get(c)]
    if missing:
        raise TypeError(f"a result row needs {', '.join(missing)}")
    row = {c: fields.get(c) for c in COLUMNS}
    row["details"] = details_text(row["details"])
    for c in _TEXT:  # nothing that leaves the process carries a secret
        if row[c] is not None:
            row[c] = scrub(str(row[c]))
    if row["error_message"]:
        row["error_message"] = row["error_message"][:MAX_ERROR_MESSAGE]
    return row


def rows_to_parquet(rows: list[dict]) -> bytes:
    """Rows made by :func:`make_row` as one Parquet part (zstd)."""
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    buf = io.BytesIO()
    # transcripts are most of a part's bytes and repeat each other (prompts, tools): a stronger level pays
    pq.write_table(table, buf, compression="zstd", compression_level={c: TRANSCRIPT_ZSTD if c == "transcript" else 1
                                                                      for c in COLUMNS})
    return buf.getvalue()


def list_parts(fs: fsspec.AbstractFileSystem, folder: str, *, recursive: bool = False) -> list[str]:
    """The part files under a folder, sorted (missing folder: none)."""
    try:
        names = fs.find(folder) if recursive else fs.ls(folder, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if is_part(n))


def read_part(fs: fsspec.AbstractFileSystem, part: str, columns: Iterable[str] | None = None, *,
              dictionaries: bool = False) -> pa.Table:
    """A part's ``columns`` (default all); a column the part predates comes back as nulls."""
    with fs.open(part, "rb") as fh:
        pf = pq.ParquetFile(fh, read_dictionary=list(DICTIONARY_COLUMNS) if dictionaries else None)
        have = set(pf.schema_arrow.names)
        cols = [c for c in (columns or COLUMNS) if c in have]
        table = pf.read(columns=cols)
    for c in columns or COLUMNS:
        if c not in table.column_names:
            table = table.append_column(SCHEMA.field(c), pa.nulls(table.num_rows, SCHEMA.field(c).type))
    return table.select(list(columns or COLUMNS))
