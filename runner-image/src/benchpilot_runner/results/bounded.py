"""Blocking storage calls with a time budget that counts the storage client's own retries.

s3fs and botocore retry inside one call: a PUT that S3 answers ``503 SlowDown`` took ~50 s per call,
so eight attempts of a marker kept a finished run from exiting for minutes. A thread cannot be
interrupted, so a call runs in a daemon thread and is awaited at most ``seconds``: past that it is
abandoned (it may still finish in the background) and never holds up the process's exit, as a
thread of asyncio's default executor would (``asyncio.run`` waits for those at the end).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def call_within(seconds: float, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a daemon thread; its result, its exception, or ``TimeoutError`` after ``seconds``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, which decides
            outcome = (None, exc)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(_settle, future, *outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    future.add_done_callback(lambda f: f.cancelled() or f.exception())  # an abandoned call's error is not "unretrieved"
    threading.Thread(target=run, name=f"benchpilot-storage-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, seconds))
