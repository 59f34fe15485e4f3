"""Running a model's SQL: read-only, time-limited, row-capped, in a small thread pool.

Only a query is run (the statement must start with SELECT, WITH or VALUES). Every connection is
opened ``mode=ro&immutable=1`` (nothing can be written, no journal or lock
file is made next to a shared read-only database), with ``PRAGMA query_only`` and an authorizer
that allows reading only: no ATTACH (which could open a writable file), no PRAGMA, no writes of
any kind. A progress handler interrupts a statement past its time limit; rows are fetched up to
the cap plus one, so a query returning millions of rows costs the cap, never the millions, and a
result is cut once its values pass a size (``MAX_RESULT_BYTES`` by default: wide rows of large values). A
query the limits cut is a result (``cut``), scored like an error; it never holds a shard.
Values are kept as sqlite3 returns them (the scoring rules compare them so); text that is not
UTF-8 is read without its bad bytes, as Spider's evaluator reads it, and the result says so
(``lossy``: BIRD's evaluator fails on such text).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

MAX_VALUE_BYTES = 1_000_000  # SQLITE_LIMIT_LENGTH: no value larger than this is built
# a result's size in memory: the row cap alone would let 10,000 rows of 1 MB values through, per case
MAX_RESULT_BYTES = 16 * 2**20
_LEAD = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)
_QUERY_WORDS = ("SELECT", "WITH", "VALUES")
_WORD = re.compile(r"[A-Za-z]+")
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


@dataclass(frozen=True)
class ExecResult:
    columns: tuple[str, ...] = ()
    rows: tuple[tuple, ...] = ()
    error: str | None = None  # the database's message, when the SQL did not run
    cut: str | None = None  # "time_limit" | "row_limit" | "size_limit": stopped by the limits
    seconds: float = 0.0
    size: int = 0  # bytes of the values fetched (what MAX_RESULT_BYTES bounds)
    lossy: bool = False  # some text was not valid UTF-8 (read without the bad bytes, as Spider's evaluator does)

    @property
    def ok(self) -> bool:
        return self.error is None and self.cut is None


def _authorize(action, *args) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


class _Text:
    """Text values as Spider's evaluator reads them (bytes that are not UTF-8 dropped), counting
    the values that had such bytes (BIRD's evaluator fails on them), per thread."""

    def __init__(self) -> None:
        self.local = threading.local()

    def __call__(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.local.lossy = getattr(self.local, "lossy", 0) + 1
            return raw.decode("utf-8", "ignore")

    def lossy(self) -> int:
        return getattr(self.local, "lossy", 0)


TEXT = _Text()


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    uri = Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_authorize)
    conn.text_factory = TEXT
    return conn


def _size(v) -> int:
    return len(v) if isinstance(v, (str, bytes)) else 8


class SqlRunner:
    """Shared by every case of a process: one read-only connection per database per worker thread."""

    def __init__(self, *, timeout_s: float = 5.0, row_limit: int = 10_000, max_bytes: int = MAX_RESULT_BYTES,
                 threads: int = 4):
        self.timeout_s, self.row_limit, self.max_bytes = timeout_s, row_limit, max_bytes
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sql")
        self._local = threading.local()
        self.statements = 0

    def _conn(self, path: str) -> sqlite3.Connection:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(path)
        if conn is None:
            conn = conns[path] = connect_readonly(path)
        return conn

    def run_sync(self, path: str, sql: str, *, timeout_s: float | None = None, row_limit: int | None = None,
                 max_bytes: int | None = None) -> ExecResult:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        row_limit = self.row_limit if row_limit is None else row_limit
        max_bytes = self.max_bytes if max_bytes is None else max_bytes
        m = _WORD.match(_LEAD.sub("", sql, count=1))
        word = m.group(0).upper() if m else ""
        if word not in _QUERY_WORDS:
            return ExecResult(error=f"only a query (SELECT or WITH) is run; this statement starts with {word[:12]!r}")
        conn = self._conn(path)
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 2000)
        self.statements += 1
        lossy = TEXT.lossy()
        try:
            cur = conn.execute(sql)
            columns = tuple(d[0] for d in cur.description or ())
            rows: list = []
            size = 0
            for row in cur:  # row by row: the size is checked before the next row is built
                rows.append(row)
                size += sum(_size(v) for v in row)
                if size > max_bytes:
                    cur.close()
                    return ExecResult(columns, (), None, "size_limit", time.monotonic() - t0)
                if len(rows) > row_limit:
                    break
            cur.close()
            if len(rows) > row_limit:
                return ExecResult(columns, (), None, "row_limit", time.monotonic() - t0)
            return ExecResult(columns, tuple(rows), None, None, time.monotonic() - t0, size, TEXT.lossy() > lossy)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                return ExecResult(error=None, cut="time_limit", seconds=time.monotonic() - t0)
            return ExecResult(error=str(exc)[:500], seconds=time.monotonic() - t0)
        except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:
            # Warning: more than one statement; DatabaseError: not authorized, too big, ...
            return ExecResult(error=f"{exc}"[:500] or type(exc).__name__, seconds=time.monotonic() - t0)
        finally:
            conn.set_progress_handler(None, 0)

    async def run(self, path: str, sql: str, **kw) -> ExecResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self.run_sync(path, sql, **kw))
