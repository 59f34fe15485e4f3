"""``benchpilot run``: every shard of a manifest on this machine, concurrently, with a progress bar."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import replace

from . import report as reportmod
from . import sink as sinkmod
from .execute import finish_run, local_uid, retrieval_kind, run_shard
from .health import Heartbeat, serve
from .metrics import RunnerMetrics
from .models import build_client
from .spec import RunSpec, iter_cases
from .suites.workflow.case import CaseRunner

log = logging.getLogger("benchpilot.local")


class Progress:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise (CI logs)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.counts: dict[str, int] = {}
        self._bar = None
        self._last_line = 0.0
        self._start = time.monotonic()
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, \
                TimeElapsedColumn, TimeRemainingColumn
            self._bar = Bar(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task("sweep", total=total, stats="")
            self._bar.start()

    def advance(self, n: int = 1, status: str | None = None) -> None:
        self.done += n
        if status:
            self.counts[status] = self.counts.get(status, 0) + 1
        stats = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, stats=stats)
        elif self.enabled and (time.monotonic() - self._last_line > 5 or self.done == self.total):
            self._last_line = time.monotonic()
            print(f"progress {self.done}/{self.total} ({self.done / max(1, self.total):.0%}) {stats} "
                  f"elapsed {time.monotonic() - self._start:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


async def run_local(spec: RunSpec, *, output: str | None = None, shards: int | None = None,
                    metrics_port: int | None = None, show_progress: bool = True,
                    retriever=None) -> int:
    if output:
        spec = replace(spec, output=replace(spec.output, uri=output))
    if shards:
        spec = replace(spec, sharding=replace(spec.sharding, shards=shards))
    fs, root = sinkmod.open_uri(spec.output.uri)
    uid = spec.uid or local_uid(spec, retrieval_kind(retriever))
    run_dir = sinkmod.run_path(root, spec.namespace, spec.name, uid)
    await asyncio.to_thread(sinkmod.check_writable, fs, run_dir)

    metrics = RunnerMetrics()
    heartbeat = Heartbeat(spec.limits.hang_timeout_s,
                          on_beat=lambda ts: metrics.last_progress.labels(spec.name).set(ts))
    client, closer = build_client(spec, metrics, heartbeat)
    runner = CaseRunner(spec, retriever=retriever, client=client, on_progress=heartbeat.beat)
    known_parts = await asyncio.to_thread(sinkmod.read_run_parts, fs, run_dir)  # each part read once
    done_before = set().union(*known_parts.values())
    total = spec.total_cases
    all_ids = {c.case_id for c in iter_cases(spec.matrix)}
    progress = Progress(total, enabled=show_progress)
    progress.done = len(done_before & all_ids)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupted = []

    def on_signal(signame: str) -> None:
        if interrupted:
            os._exit(130)  # second Ctrl-C: the user means it
        interrupted.append(signame)
        log.warning("stopping: no new cases, flushing what is done", extra={"signal": signame})
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    server = await serve(heartbeat, metrics.registry, "127.0.0.1", metrics_port) if metrics_port else None
    fs_uri = fs.unstrip_protocol(run_dir)
    log.info("sweep start", extra={"run": spec.name, "cases": total, "already_done": len(done_before),
                                   "retrieval": retrieval_kind(retriever),
                                   "shards": spec.sharding.shards, "output": fs_uri})
    heartbeat.busy = True
    try:
        results = await asyncio.gather(*(
            run_shard(spec, i, spec.sharding.shards, fs=fs, run_dir=run_dir, runner=runner, metrics=metrics,
                      heartbeat=heartbeat, stop=stop, concurrency=spec.sharding.concurrency_per_shard,
                      skip=done_before, known_parts=known_parts,
                      on_case_done=lambda row: progress.advance(1, row["status"]))
            for i in range(spec.sharding.shards)))
    finally:
        heartbeat.busy = False
        progress.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if closer:
            await closer()
        if server:
            await server.cleanup()
    complete = all(r.complete for r in results)
    if complete:
        await finish_run(spec, fs, run_dir, uid)
    ran = sum(r.ran for r in results)
    summary = reportmod.summarize(await asyncio.to_thread(reportmod.load, fs_uri))
    if show_progress:
        reportmod.render_table(summary)
    print(f"{ran} cases run now, {len(done_before)} were already done; results: {fs_uri}", file=sys.stderr)
    if interrupted:
        print(f"interrupted ({interrupted[0]}): {summary['total']}/{total} cases have results; "
              "run the same command again to resume", file=sys.stderr)
        return 130 if interrupted[0] == "SIGINT" else 143
    if not complete:
        print("some rows could not be written; run the same command again to finish", file=sys.stderr)
        return 1
    return 0
