"""One shard's sink: result rows buffered and written as whole Parquet parts, flushed when enough rows
wait or the oldest is old enough; a failed write keeps its rows and is retried with backoff. Part names
carry the writer id (:func:`contract.layout.part_name`), so no writer ever overwrites another's part.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import fsspec

from ..contract.layout import SUCCESS, part_name, shard_name
from ..contract.outcomes import FINAL_STATUSES
from .bounded import call_within
from .markers import Written, put_retrying
from .rows import SCHEMA, rows_to_parquet
from .store import new_writer_id, write_whole

log = logging.getLogger("benchpilot.results")


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

    async def write_success(self, total_cases: int, counts: dict, *, deadline: float | None = None) -> Written:
        """The shard's commit manifest, written last, once every case has a final row; retried until
        ``deadline`` (a ``clock`` time; default: ``markers.FINAL_WRITE_S`` from now)."""
        manifest = {
            "shard": self.shard, "parts": sorted(self.stats.parts), "rows": self.stats.rows_written,
            "cases": total_cases, "attempt": self.attempt, "writer": self.writer, "counts": counts,
            "schema": [f"{f.name}:{f.type}" for f in SCHEMA],
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        return await put_retrying(self.fs, f"{self.dir}/{SUCCESS}", json.dumps(manifest, indent=1).encode(),
                                  what="shard _SUCCESS", deadline=deadline, clock=self.clock)
