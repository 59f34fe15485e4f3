"""Parquet part-files on any fsspec URI, exactly once by ``case_id``.

Layout (DESIGN.md, with a writer id in part names — see docs/design.md)::

    <uri>/<namespace>/<run>/<run-uid>/shard-00003/part-<attempt>-<seq>-<writer>.parquet
    <uri>/<namespace>/<run>/<run-uid>/shard-00003/_SUCCESS
    <uri>/<namespace>/<run>/<run-uid>/_writers/<writer>.json      # a live writer's lease
    <uri>/<namespace>/<run>/<run-uid>/_SUCCESS

Each part is written whole in one PUT (``pipe_file``; on a local disk a temporary file renamed
into place, so a kill never leaves half a part). Part names carry a random writer id, so two
writers never write the same name and no flushed row is ever overwritten. Rows stay buffered until
a write succeeds; failed writes are retried with backoff.

Resume: a case is done when a part holds a *final* row for it (success, partial, failure). Rows
with ``error``/``timeout`` are the infrastructure's: the case runs again, with the next attempt
number. Readers take one row per case: a final one if there is one, else the latest attempt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import os
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from . import procs
from .bounded import call_within
from .redact import scrub
from .spec import FINAL_STATUSES

log = logging.getLogger("benchpilot.sink")

_TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema([
    ("run", pa.string()), ("namespace", pa.string()), ("case_id", pa.string()), ("suite", pa.string()),
    ("model", pa.string()), ("prompt_type", pa.string()), ("difficulty", pa.string()),
    ("task_type", pa.string()), ("instance", pa.int32()), ("shard", pa.int32()), ("attempt", pa.int32()),
    ("status", pa.string()), ("score", pa.float64()), ("error_type", pa.string()),
    ("error_message", pa.string()), ("latency_s", pa.float64()), ("turns", pa.int32()),
    ("tool_calls", pa.int32()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("cost_usd", pa.float64()), ("started_at", _TS), ("finished_at", _TS), ("details", pa.string()),
])
COLUMNS = tuple(SCHEMA.names)
_TEXT_COLUMNS = tuple(f.name for f in SCHEMA if f.type == pa.string())
PART_RE = re.compile(r"^part-(\d+)-(\d+)(?:-([0-9a-z]+))?\.parquet$")
SUCCESS = "_SUCCESS"
WRITERS = "_writers"
LEASE_TTL_S = 30.0  # a lease not renewed for this long belongs to a writer that is gone
LEASE_RENEW_S = 10.0
_FINAL = pa.array(list(FINAL_STATUSES))


class OutputError(Exception):
    """The output location cannot be used (bad URI, no permission, unreachable)."""


class WriterConflict(Exception):
    """Another live writer is writing the same shard of the same run."""


def open_uri(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of an fsspec URI (a plain path means the local disk)."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError, TypeError) as exc:
        raise OutputError(f"output URI {uri!r} is not usable: {exc}") from None
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, path.rstrip("/")


def run_path(root: str, namespace: str, run: str, uid: str) -> str:
    for part in (namespace, run, uid):  # the spec parser checks these; never let one escape the root
        if not part or "/" in part or part in (".", ".."):
            raise OutputError(f"{part!r} cannot be a folder name under the output")
    return f"{root}/{namespace}/{run}/{uid}"


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def part_name(attempt: int, seq: int, writer: str) -> str:
    return f"part-{attempt:05d}-{seq:05d}-{writer}.parquet"


def new_writer_id() -> str:
    return uuid.uuid4().hex[:10]


def write_whole(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` as one object: one PUT on object stores, an atomic rename locally."""
    if isinstance(fs, LocalFileSystem):
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def check_writable(fs: fsspec.AbstractFileSystem, path: str) -> None:
    """Fail early, before any case runs, when the output cannot be written."""
    probe = f"{path}/.benchpilot-probe-{uuid.uuid4().hex[:8]}"
    try:
        write_whole(fs, probe, b"ok")
        fs.rm(probe)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not writable"; say which
        raise OutputError(f"output {fs.unstrip_protocol(path)} is not writable: "
                          f"{type(exc).__name__}: {scrub(str(exc))[:300]}") from None


def rows_to_parquet(rows: list[dict]) -> bytes:
    clean = []
    for r in rows:
        row = {c: r.get(c) for c in COLUMNS}
        for c in _TEXT_COLUMNS:  # nothing that leaves the process carries a secret
            if row[c] is not None:
                row[c] = scrub(str(row[c]))
        clean.append(row)
    table = pa.Table.from_pylist(clean, schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def list_parts(fs: fsspec.AbstractFileSystem, folder: str, *, recursive: bool = False) -> list[str]:
    """The part files under a folder, sorted (missing folder: none)."""
    try:
        names = fs.find(folder) if recursive else fs.ls(folder, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if PART_RE.match(n.rsplit("/", 1)[-1]))


DICTIONARY_COLUMNS = ("run", "namespace", "suite", "model", "prompt_type", "difficulty", "task_type", "status",
                      "error_type")  # few distinct values: kept dictionary-encoded when read in bulk


def read_part(fs: fsspec.AbstractFileSystem, part: str, columns: Iterable[str] | None = None, *,
              dictionaries: bool = False) -> pa.Table:
    with fs.open(part, "rb") as fh:
        pf = pq.ParquetFile(fh, read_dictionary=list(DICTIONARY_COLUMNS) if dictionaries else None)
        have = set(pf.schema_arrow.names)
        cols = [c for c in (columns or COLUMNS) if c in have]
        table = pf.read(columns=cols)
    for c in columns or COLUMNS:
        if c not in table.column_names:
            table = table.append_column(SCHEMA.field(c), pa.nulls(table.num_rows, SCHEMA.field(c).type))
    return table.select(list(columns or COLUMNS))


@dataclass
class ResumeState:
    """What the parts already hold: the cases with a final outcome, and attempts of the others.

    Only ids are kept (a set and a dict), never rows: resuming after a million rows stays small.
    """

    done: set[str] = field(default_factory=set)
    tries: dict[str, int] = field(default_factory=dict)  # case_id -> attempts so far (error/timeout rows)
    parts: list[str] = field(default_factory=list)
    max_attempt: int = 0
    unreadable: list[str] = field(default_factory=list)
    spent_usd: float = 0.0  # what every row so far cost (error rows too: their tokens were used)
    spent_tokens: int = 0

    def add_table(self, table: pa.Table) -> None:
        self.spent_usd += float(pc.sum(table.column("cost_usd")).as_py() or 0.0)
        self.spent_tokens += int(pc.sum(table.column("prompt_tokens")).as_py() or 0) \
            + int(pc.sum(table.column("completion_tokens")).as_py() or 0)
        final = pc.is_in(table.column("status"), value_set=_FINAL)
        self.done.update(table.column("case_id").filter(final).to_pylist())
        rest = table.filter(pc.invert(final))
        if rest.num_rows:
            attempts = rest.column("attempt").fill_null(1).to_pylist()
            for cid, a in zip(rest.column("case_id").to_pylist(), attempts):
                if self.tries.get(cid, 0) < a:
                    self.tries[cid] = a

    def next_attempt(self, case_id: str) -> int:
        return self.tries.get(case_id, 0) + 1


def read_state(fs: fsspec.AbstractFileSystem, folder: str, *, recursive: bool) -> ResumeState:
    """The resume state of a shard folder, or of a whole run (``recursive``: whatever shard wrote them)."""
    state = ResumeState()
    for part in list_parts(fs, folder, recursive=recursive):
        try:
            table = read_part(fs, part, ("case_id", "status", "attempt", "cost_usd", "prompt_tokens",
                                         "completion_tokens"))
        except Exception as exc:  # noqa: BLE001 - an unreadable part: its cases run again
            state.unreadable.append(part)
            log.warning("unreadable part skipped; its cases will run again",
                        extra={"part": part, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        state.parts.append(part)
        state.max_attempt = max(state.max_attempt, int(PART_RE.match(part.rsplit("/", 1)[-1]).group(1)))
        state.add_table(table)
    return state


# ----------------------------------------------------------------------------- writer leases


@dataclass
class Lease:
    """This writer's claim on some shards of a run, renewed while it writes, removed when it ends."""

    fs: fsspec.AbstractFileSystem
    run_dir: str
    writer: str
    shards: list[int]
    started: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return f"{self.run_dir}/{WRITERS}/{self.writer}.json"

    def body(self) -> bytes:
        return json.dumps({"writer": self.writer, "host": socket.gethostname(), **procs.identity(),
                           "shards": self.shards, "started": self.started, "renewed": time.time()}).encode()

    def write(self) -> None:
        write_whole(self.fs, self.path, self.body())

    def others(self) -> list[dict]:
        """Live leases of other writers on any of our shards, oldest first."""
        try:
            names = self.fs.ls(f"{self.run_dir}/{WRITERS}", detail=False, refresh=True)
        except FileNotFoundError:
            return []
        out = []
        mine = set(self.shards)
        for name in names:
            if name.rsplit("/", 1)[-1] == f"{self.writer}.json" or not name.endswith(".json"):
                continue
            try:
                info = json.loads(self.fs.cat_file(name))
            except Exception:  # noqa: BLE001 - a lease that cannot be read (being written, removed) is ignored
                continue
            if not isinstance(info, dict) or not mine & set(info.get("shards") or []):
                continue
            age = time.time() - float(info.get("renewed") or 0)
            if age > LEASE_TTL_S or procs.gone_from_here(info, socket.gethostname()):
                continue
            info["age_s"] = round(age, 1)
            out.append(info)
        return sorted(out, key=lambda i: (i.get("started", 0), i.get("writer", "")))

    def conflict(self) -> dict | None:
        """The live writer that came first on one of our shards, if any (ties broken by writer id)."""
        for info in self.others():
            if (info.get("started", 0), info.get("writer", "")) < (self.started, self.writer):
                return info
        return None

    def release(self) -> None:
        try:
            self.fs.rm(self.path)
        except Exception as exc:  # noqa: BLE001 - a stale lease expires by itself
            log.info("lease not removed; it expires by itself", extra={"error": str(exc)[:200]})


def describe(info: dict) -> str:
    return (f"writer {info.get('writer')} (pid {info.get('pid')} on {info.get('host')}, shards "
            f"{','.join(map(str, (info.get('shards') or [])[:8]))}, lease renewed {info.get('age_s')}s ago)")


# ----------------------------------------------------------------------------- the shard's sink


@dataclass
class SinkStats:
    parts: list[str] = field(default_factory=list)
    rows_written: int = 0
    write_failures: int = 0


class ShardSink:
    """Buffers result rows of one shard and writes them as whole Parquet parts."""

    def __init__(self, fs: fsspec.AbstractFileSystem, run_dir: str, shard: int, *, flush_rows: int,
                 flush_s: float, writer: str | None = None, attempt: int = 1,
                 on_flushed: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, max_backoff_s: float = 10.0):
        self.fs, self.run_dir, self.shard = fs, run_dir, shard
        self.dir = f"{run_dir}/{shard_name(shard)}"
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.writer = writer or new_writer_id()
        self.on_flushed = on_flushed or (lambda n: None)
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.buffer: list[dict] = []
        self.oldest: float | None = None
        self.attempt = attempt
        self.seq = 0
        self.final: set[str] = set()  # cases this sink wrote a final row for
        self.stats = SinkStats()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if self.oldest is None:
            self.oldest = self.clock()
        if self.due():
            self._wake.set()

    def due(self) -> bool:
        if not self.buffer:
            return False
        return len(self.buffer) >= self.flush_rows or (self.clock() - (self.oldest or 0)) >= self.flush_s

    async def flush(self, *, deadline: float | None = None) -> bool:
        """Write everything buffered as one part; retries with backoff until written or ``deadline``."""
        async with self._lock:
            backoff = 0.25
            while self.buffer:
                rows = list(self.buffer)
                name = part_name(self.attempt, self.seq, self.writer)
                try:
                    data = rows_to_parquet(rows)
                    if deadline is None:
                        await asyncio.to_thread(write_whole, self.fs, f"{self.dir}/{name}", data)
                    else:  # a final flush: within the budget, however long the client retries inside
                        await call_within(deadline - self.clock(), write_whole, self.fs, f"{self.dir}/{name}", data)
                except Exception as exc:  # noqa: BLE001 - storage errors are retried, rows kept
                    self.stats.write_failures += 1
                    log.warning("part write failed; rows kept, retrying",
                                extra={"shard": self.shard, "part": name, "rows": len(rows),
                                       "error": f"{type(exc).__name__}: {exc}"[:300], "retry_in_s": backoff})
                    if deadline is not None and self.clock() + backoff > deadline:
                        return False
                    await asyncio.sleep(backoff * (0.5 + random.random() / 2))
                    backoff = min(self.max_backoff_s, backoff * 2)
                    continue
                del self.buffer[:len(rows)]
                self.oldest = self.clock() if self.buffer else None
                self.seq += 1
                self.stats.parts.append(name)
                self.stats.rows_written += len(rows)
                self.final.update(r["case_id"] for r in rows if r["status"] in FINAL_STATUSES)
                self.on_flushed(len(rows))
            return True

    async def run_flusher(self, stop: asyncio.Event) -> None:
        """Background task: flush when enough rows are buffered or the oldest is old enough."""
        tick = max(0.05, min(1.0, self.flush_s / 4))
        while not stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=tick)
            except TimeoutError:
                pass
            self._wake.clear()
            if self.due():
                await self.flush()

    async def write_success(self, total_cases: int, counts: dict, *, deadline: float | None = None):
        """The shard's commit manifest, written last, once every case has a final row; retried until
        ``deadline`` (a ``clock`` time; default: ``markers.FINAL_WRITE_S`` from now)."""
        manifest = {
            "shard": self.shard, "parts": sorted(self.stats.parts), "rows": self.stats.rows_written,
            "cases": total_cases, "attempt": self.attempt, "writer": self.writer, "counts": counts,
            "schema": [f"{f.name}:{f.type}" for f in SCHEMA],
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        from .markers import put_retrying  # markers builds on this module

        return await put_retrying(self.fs, f"{self.dir}/{SUCCESS}", json.dumps(manifest, indent=1).encode(),
                                  what="shard _SUCCESS", deadline=deadline, clock=self.clock)
