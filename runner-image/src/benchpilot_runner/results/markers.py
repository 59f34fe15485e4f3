"""Commit markers: a shard's and the run's ``_SUCCESS``, each written within one time budget.

The budget counts the storage client's own retries (s3fs and botocore retry inside each call: a PUT
answered ``503 SlowDown`` took ~50 s per call, so eight attempts of a marker kept a finished run from
exiting for minutes). Past it, the run ends saying that every row is safe and a rerun writes the
marker (exit 1); nothing is lost: a rerun finds every case done and writes only the markers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Callable

import fsspec

from ..contract.fields import SpecError, check_number
from ..contract.layout import SUCCESS, shard_name
from ..redact import scrub
from .bounded import call_within
from .store import write_whole

log = logging.getLogger("benchpilot.results")
FINAL_WRITE_S = 30.0  # the default budget of a final write (the last part, a marker), client retries included
FINAL_WRITE_ENV = "BENCHPILOT_FINAL_WRITE_SECONDS"  # another budget, for a store known to be slow


def final_write_budget(env=None) -> float:
    """Seconds a shard's final writes (its last part and its ``_SUCCESS``; the run's ``_SUCCESS``) may take,
    the storage client's own retries included: ``BENCHPILOT_FINAL_WRITE_SECONDS``, else 30."""
    raw = (os.environ if env is None else env).get(FINAL_WRITE_ENV)
    if raw in (None, ""):
        return FINAL_WRITE_S
    try:
        value = float(raw)
    except ValueError:
        raise SpecError(f"env {FINAL_WRITE_ENV}", f"{raw[:40]!r} is not a number of seconds") from None
    return check_number(value, f"env {FINAL_WRITE_ENV}", minimum=0.0, maximum=3600.0, exclusive_min=True)


@dataclass
class Written:
    """Whether a final write happened; if not, why (the last error seen)."""

    ok: bool
    error: str = ""

    def __bool__(self) -> bool:
        return self.ok


async def put_retrying(fs: fsspec.AbstractFileSystem, path: str, data: bytes, *, what: str,
                       deadline: float | None = None, clock: Callable[[], float] = time.monotonic) -> Written:
    """One whole-object write, retried with backoff (a 503 from a busy store is no reason to fail) until
    ``deadline`` (default: ``FINAL_WRITE_S`` from now): one budget, the client's own retries included."""
    deadline = clock() + FINAL_WRITE_S if deadline is None else deadline
    backoff, error = 0.25, "no time left"
    while (left := deadline - clock()) > 0:
        try:
            await call_within(left, write_whole, fs, path, data)
            return Written(True)
        except TimeoutError:
            return Written(False, "the storage client was still retrying when the time ran out"
                           + (f"; before: {error}" if error != "no time left" else ""))
        except Exception as exc:  # noqa: BLE001 - retried; the last failure is reported by the caller
            error = f"{type(exc).__name__}: {scrub(str(exc))[:200]}"
            log.warning(f"{what} write failed; retrying", extra={"path": path, "error": error[:300]})
            if clock() + backoff >= deadline:
                break
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            backoff = min(10.0, backoff * 2)
    return Written(False, error)


async def maybe_write_run_success(fs: fsspec.AbstractFileSystem, run_dir: str, shards: int, *, run: str,
                                  namespace: str, uid: str, total_cases: int,
                                  deadline: float | None = None) -> Written | None:
    """Write the run's ``_SUCCESS`` once every shard has its own (None: not yet); idempotent. Reading the
    shards' markers and writing the run's share one budget, until ``deadline`` (``time.monotonic``)."""
    deadline = time.monotonic() + FINAL_WRITE_S if deadline is None else deadline
    manifests = []
    for i in range(shards):
        try:
            text = await call_within(deadline - time.monotonic(), fs.cat_file, f"{run_dir}/{shard_name(i)}/{SUCCESS}")
            manifests.append(json.loads(text))
        except FileNotFoundError:
            return None
        except TimeoutError:
            return Written(False, "the storage did not answer reading the shards' markers in time")
        except Exception as exc:  # noqa: BLE001 - said in the outcome: a rerun writes the marker
            return Written(False, f"reading shard {i}'s marker: {type(exc).__name__}: {scrub(str(exc))[:200]}")
    counts: dict[str, int] = {}
    for m in manifests:
        for k, v in (m.get("counts") or {}).items():
            counts[k] = counts.get(k, 0) + int(v)
    body = {"run": run, "namespace": namespace, "uid": uid, "shards": shards, "cases": total_cases,
            "rows": sum(m.get("rows", 0) for m in manifests), "counts": counts,
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    return await put_retrying(fs, f"{run_dir}/{SUCCESS}", json.dumps(body, indent=1).encode(), what="run _SUCCESS",
                              deadline=deadline)
