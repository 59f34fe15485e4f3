"""Stopping: SIGINT/SIGTERM end a run cleanly and in bounded time, whatever storage does.

On the first signal no new case starts, cases in flight are cancelled (no row: they run again), what
is done is flushed (the final flush may take FINAL_FLUSH_S), and a watchdog thread ends the process at
STOP_GRACE_S (a pod's grace period is 15 s), saying how many rows were not written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from typing import Callable

log = logging.getLogger("benchpilot.signals")
STOP_GRACE_S = 9.0  # SIGTERM to exit, whatever storage does (a pod's grace period is 15 s)
FINAL_FLUSH_S = 6.0  # of which the final flush may take this long


class StopSignals:
    """SIGINT/SIGTERM while the block runs: set ``stop`` (no new case starts, what is done is flushed) and
    arm the watchdog that ends the process within STOP_GRACE_S whatever storage does. With
    ``second_sigint_exits``, a second Ctrl-C exits at once (the user means it)."""

    def __init__(self, sinks: list, *, second_sigint_exits: bool, context: dict | None = None):
        self.stop = asyncio.Event()
        self.signal: str | None = None
        self.sinks, self.second_sigint_exits, self.context = sinks, second_sigint_exits, context or {}

    def _on(self, name: str) -> None:
        if self.signal is not None:
            if self.second_sigint_exits and name == "SIGINT":
                os._exit(130)
            return
        self.signal = name
        log.warning("stopping: no new cases, flushing what is done", extra={"signal": name, **self.context})
        arm_stop_watchdog(lambda: sum(len(s.buffer) for s in self.sinks), 130 if name == "SIGINT" else 143)
        self.stop.set()

    def __enter__(self) -> "StopSignals":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on, sig.name)
        return self

    def __exit__(self, *exc) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def arm_stop_watchdog(unflushed: Callable[[], int], code: int) -> threading.Timer:
    """After SIGTERM/SIGINT: exit within STOP_GRACE_S whatever storage does (a hung PUT cannot hold us)."""
    def fire() -> None:
        n = unflushed()
        print(f"benchpilot: storage did not answer within {STOP_GRACE_S:g}s of the stop signal; exiting with "
              f"{n} result rows not written (those cases will run again)", file=sys.stderr, flush=True)
        os._exit(code)
    timer = threading.Timer(STOP_GRACE_S, fire)
    timer.daemon = True
    timer.start()
    return timer
