"""Parquet part-files on any fsspec URI, exactly once by ``case_id``.

Layout (DESIGN.md)::

    <uri>/<namespace>/<run>/<run-uid>/shard-00003/part-<attempt>-<seq>.parquet
    <uri>/<namespace>/<run>/<run-uid>/shard-00003/_SUCCESS
    <uri>/<namespace>/<run>/<run-uid>/_SUCCESS

Each part is written whole in one PUT (``pipe_file``; on a local disk a temporary file renamed
into place, so a kill never leaves half a part). A restarted shard reads the case ids already in
its parts and skips them. Rows stay buffered until a write succeeds; failed writes are retried
with backoff.
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
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger("benchpilot.sink")

_TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema([
    ("run", pa.string()), ("namespace", pa.string()), ("case_id", pa.string()), ("suite", pa.string()),
    ("model", pa.string()), ("prompt_type", pa.string()), ("difficulty", pa.string()),
    ("task_type", pa.string()), ("instance", pa.int32()), ("shard", pa.int32()), ("attempt", pa.int32()),
    ("status", pa.string()), ("score", pa.float64()), ("error_type", pa.string()),
    ("error_message", pa.string()), ("latency_s", pa.float64()), ("turns", pa.int32()),
    ("tool_calls", pa.int32()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
    ("started_at", _TS), ("finished_at", _TS),
])
COLUMNS = tuple(SCHEMA.names)
PART_RE = re.compile(r"^part-(\d+)-(\d+)\.parquet$")
SUCCESS = "_SUCCESS"


class OutputError(Exception):
    """The output location cannot be used (bad URI, no permission, unreachable)."""


def open_uri(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of an fsspec URI (a plain path means the local disk)."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise OutputError(f"output URI {uri!r} is not usable: {exc}") from None
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(path)
    return fs, path.rstrip("/")


def run_path(root: str, namespace: str, run: str, uid: str) -> str:
    return f"{root}/{namespace}/{run}/{uid}"


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def part_name(attempt: int, seq: int) -> str:
    return f"part-{attempt:05d}-{seq:05d}.parquet"


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
                          f"{type(exc).__name__}: {exc}") from None


def rows_to_parquet(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def list_parts(fs: fsspec.AbstractFileSystem, shard_dir: str) -> list[str]:
    """The part files of a shard directory, sorted (missing directory: none)."""
    try:
        names = fs.ls(shard_dir, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if PART_RE.match(n.rsplit("/", 1)[-1]))


def read_case_ids(fs: fsspec.AbstractFileSystem, part: str) -> list[str]:
    with fs.open(part, "rb") as fh:
        return pq.read_table(fh, columns=["case_id"]).column("case_id").to_pylist()


def read_parts(fs: fsspec.AbstractFileSystem, parts: Iterable[str],
               known: Mapping[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The case ids of each readable part, taken from ``known`` where the caller has read it already.

    An unreadable part is logged and left out: its cases run again.
    """
    out: dict[str, list[str]] = {}
    for part in parts:
        if known is not None and part in known:
            out[part] = known[part]
            continue
        try:
            out[part] = read_case_ids(fs, part)
        except Exception as exc:  # noqa: BLE001 - an unreadable part: its cases run again
            log.warning("unreadable part skipped; its cases will run again",
                        extra={"part": part, "error": f"{type(exc).__name__}: {exc}"})
    return out


def read_run_parts(fs: fsspec.AbstractFileSystem, run_dir: str) -> dict[str, list[str]]:
    """The case ids of every part of a run, whatever shard wrote them (the shard count may have changed)."""
    if not fs.exists(run_dir):
        return {}
    return read_parts(fs, sorted(p for p in fs.find(run_dir) if PART_RE.match(p.rsplit("/", 1)[-1])))


@dataclass
class SinkStats:
    parts: list[str] = field(default_factory=list)
    rows_written: int = 0
    write_failures: int = 0


class ShardSink:
    """Buffers result rows of one shard and writes them as whole Parquet parts."""

    def __init__(self, fs: fsspec.AbstractFileSystem, run_dir: str, shard: int, *, flush_rows: int,
                 flush_s: float, on_flushed: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, max_backoff_s: float = 10.0):
        self.fs, self.run_dir, self.shard = fs, run_dir, shard
        self.dir = f"{run_dir}/{shard_name(shard)}"
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.on_flushed = on_flushed or (lambda n: None)
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.buffer: list[dict] = []
        self.oldest: float | None = None
        self.attempt = 1
        self.seq = 0
        self.done: set[str] = set()
        self.stats = SinkStats()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ resume
    def load_existing(self, known: Mapping[str, list[str]] | None = None) -> set[str]:
        """Read the case ids already written for this shard and choose this attempt's number.

        ``known`` holds parts the caller has read already (a local run reads the whole run first).
        """
        parts = list_parts(self.fs, self.dir)
        attempts = [int(PART_RE.match(p.rsplit("/", 1)[-1]).group(1)) for p in parts]
        self.attempt = max(attempts, default=0) + 1
        for ids in read_parts(self.fs, parts, known).values():
            self.done.update(ids)
        self.stats.parts = [p.rsplit("/", 1)[-1] for p in parts]
        return set(self.done)

    # ------------------------------------------------------------------ writing
    def add(self, row: dict) -> None:
        row["attempt"] = self.attempt
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
                name = part_name(self.attempt, self.seq)
                try:
                    data = rows_to_parquet(rows)
                    await asyncio.to_thread(write_whole, self.fs, f"{self.dir}/{name}", data)
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
                self.done.update(r["case_id"] for r in rows)
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

    def write_success(self, total_cases: int) -> dict:
        """The shard's commit manifest; written last, once every case has a row."""
        manifest = {
            "shard": self.shard, "parts": sorted(self.stats.parts), "rows": len(self.done),
            "cases": total_cases, "attempt": self.attempt,
            "schema": [f"{f.name}:{f.type}" for f in SCHEMA],
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        write_whole(self.fs, f"{self.dir}/{SUCCESS}", json.dumps(manifest, indent=1).encode())
        return manifest


def shard_succeeded(fs: fsspec.AbstractFileSystem, run_dir: str, shard: int) -> bool:
    return fs.exists(f"{run_dir}/{shard_name(shard)}/{SUCCESS}")


def maybe_write_run_success(fs: fsspec.AbstractFileSystem, run_dir: str, shards: int, *, run: str,
                            namespace: str, uid: str, total_cases: int) -> bool:
    """Write the run's ``_SUCCESS`` once every shard has its own; idempotent."""
    manifests = []
    for i in range(shards):
        try:
            manifests.append(json.loads(fs.cat_file(f"{run_dir}/{shard_name(i)}/{SUCCESS}")))
        except FileNotFoundError:
            return False
    body = {"run": run, "namespace": namespace, "uid": uid, "shards": shards, "cases": total_cases,
            "rows": sum(m.get("rows", 0) for m in manifests),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    write_whole(fs, f"{run_dir}/{SUCCESS}", json.dumps(body, indent=1).encode())
    return True
