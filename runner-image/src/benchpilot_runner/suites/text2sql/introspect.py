"""A database's schema as the prompt shows it: tables, columns with types, sampled values, foreign
keys, and BIRD's optional column descriptions."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
from pathlib import Path

from .items import Column, Schema

log = logging.getLogger("benchpilot.text2sql")
VALUES_PER_COLUMN = 20
VALUE_SCAN_ROWS = 5000


def _descriptions(db_dir: Path) -> dict[tuple[str, str], str]:
    """BIRD's optional database_description/<table>.csv: (table, column) -> description."""
    out: dict[tuple[str, str], str] = {}
    folder = db_dir / "database_description"
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.csv")):
        try:
            data = f.read_bytes()
            try:  # BIRD's files: UTF-8, some with a byte-order mark, some in Windows-1252
                raw = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raw = data.decode("cp1252", "replace")
            for row in csv.DictReader(io.StringIO(raw)):
                row = {(k or "").strip().lower(): v for k, v in row.items() if isinstance(v, str)}
                col = (row.get("original_column_name") or "").strip()
                desc = (row.get("column_description") or row.get("column_name") or "").strip()
                if col and desc:
                    out[f.stem.lower(), col.lower()] = " ".join(desc.split())[:300]
        except (OSError, csv.Error) as exc:
            log.warning("column descriptions not read", extra={"file": str(f), "error": str(exc)[:200]})
    return out


def introspect(db_id: str, path: Path, descriptions: dict[tuple[str, str], str] | None = None) -> Schema:
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro&immutable=1", uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        columns, fks = [], []
        for t in tables:
            q = t.replace('"', '""')
            for _, name, ctype, *_ in conn.execute(f'PRAGMA table_info("{q}")'):
                values: tuple[str, ...] = ()
                if "CHAR" in (ctype or "").upper() or "TEXT" in (ctype or "").upper() or not ctype:
                    n = name.replace('"', '""')
                    values = tuple(str(r[0])[:80] for r in conn.execute(
                        f'SELECT "{n}" FROM (SELECT "{n}" FROM "{q}" LIMIT {VALUE_SCAN_ROWS}) WHERE "{n}" IS NOT NULL '
                        f'GROUP BY "{n}" ORDER BY COUNT(*) DESC, "{n}" LIMIT {VALUES_PER_COLUMN}'))
                desc = (descriptions or {}).get((t.lower(), name.lower()), "")
                columns.append(Column(t, name, ctype or "", desc, values))
            for row in conn.execute(f'PRAGMA foreign_key_list("{q}")'):
                fks.append((t, row[3], row[2], row[4] or "id"))
        return Schema(db_id, tuple(tables), tuple(columns), tuple(fks))
    finally:
        conn.close()
