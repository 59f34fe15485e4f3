"""A writer's lease: its claim on some shards of a run, renewed while it writes, removed when it ends.

``<run-uid>/_writers/<writer>.json`` (``{writer, host, pid, pid_start, boot, shards, started,
renewed}``). A lease not renewed for LEASE_TTL_S belongs to a writer that is gone; on the same
host it is stale at once when its process no longer runs (:mod:`.procs`: a zombie or a reused pid
does not count). A new writer writes its lease, then looks for a live earlier lease on any of its
shards. The lease is a warning system; unique part names are what guarantee no row is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from dataclasses import dataclass, field

import fsspec

from ..contract.layout import WRITERS, lease_path
from ..contract.outcomes import ConfigError
from . import procs
from .bounded import call_within
from .store import write_whole

log = logging.getLogger("benchpilot.results")
LEASE_TTL_S = 30.0  # a lease not renewed for this long belongs to a writer that is gone
LEASE_RENEW_S = 10.0
LEASE_RELEASE_S = 5.0  # removing the lease at the end; a lease left behind expires by itself


class WriterConflict(ConfigError):
    """Another live writer is writing the same shard of the same run."""


@dataclass
class Lease:
    fs: fsspec.AbstractFileSystem
    run_dir: str
    writer: str
    shards: list[int]
    started: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return lease_path(self.run_dir, self.writer)

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
        for name in names:
            if name.rsplit("/", 1)[-1] == f"{self.writer}.json" or not name.endswith(".json"):
                continue
            info = self._read(name)
            if info is not None:
                out.append(info)
        return sorted(out, key=lambda i: (i.get("started", 0), i.get("writer", "")))

    def _read(self, name: str) -> dict | None:
        """Another writer's lease if it is live and on one of our shards."""
        try:
            info = json.loads(self.fs.cat_file(name))
        except Exception:  # noqa: BLE001 - a lease that cannot be read (being written, removed) is ignored
            return None
        if not isinstance(info, dict) or not set(self.shards) & set(info.get("shards") or []):
            return None
        age = time.time() - float(info.get("renewed") or 0)
        if age > LEASE_TTL_S or procs.gone_from_here(info, socket.gethostname()):
            return None
        return {**info, "age_s": round(age, 1)}

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


async def acquire_lease(fs: fsspec.AbstractFileSystem, run_dir: str, shards: list[int], writer: str, *,
                        wait_s: float) -> Lease:
    """Claim ``shards`` of the run for this writer. Another live writer on them is waited for up to
    ``wait_s`` (a pod whose predecessor's lease has not expired yet), then refused with
    :class:`WriterConflict`. Part names are unique per writer, so even a missed conflict loses no row."""
    lease = Lease(fs, run_dir, writer, shards)
    await asyncio.to_thread(lease.write)
    loop = asyncio.get_running_loop()
    until = loop.time() + wait_s
    while True:
        other = await asyncio.to_thread(lease.conflict)
        if other is None:
            return lease
        if loop.time() >= until:
            await asyncio.to_thread(lease.release)
            raise WriterConflict(f"another {describe(other)} is writing the same shards of this "
                                 f"run; stop it first, or wait {LEASE_TTL_S:g}s after it died")
        log.warning("another writer holds this shard; waiting for its lease to expire",
                    extra={"other": describe(other)})
        await asyncio.sleep(min(2.0, max(0.1, until - loop.time())))


@contextlib.asynccontextmanager
async def holding(lease: Lease):
    """Keep ``lease`` renewed while the block runs; release it at the end."""
    stop = asyncio.Event()
    renewer = asyncio.create_task(_renew(lease, stop))
    try:
        yield lease
    finally:
        stop.set()
        await renewer
        try:  # a final write too: never held up by a store that does not answer
            await call_within(LEASE_RELEASE_S, lease.release)
        except TimeoutError:
            log.warning("lease not removed in time; it expires by itself", extra={"writer": lease.writer})


async def _renew(lease: Lease, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=LEASE_RENEW_S)
            return
        except TimeoutError:
            pass
        try:
            await call_within(LEASE_RENEW_S, lease.write)
        except Exception as exc:  # noqa: BLE001 - storage trouble shows in the part writes too
            log.warning("lease renewal failed", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
