"""Small builders shared by tests."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BENCHPILOT = [sys.executable, "-m", "benchpilot_runner"]


def manifest(**spec_overrides) -> dict:
    """A small valid BenchmarkRun manifest as data; keyword arguments replace top-level spec keys."""
    doc = {
        "apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun",
        "metadata": {"name": "t-run", "namespace": "default"},
        "spec": {
            "suite": "workflow",
            "matrix": {"models": ["sim/strong", "sim/weak"], "promptTypes": ["baseline", "optimal"],
                       "difficulties": ["easy"], "taskTypes": ["simple_task", "basic_task"], "instances": 2},
            "sharding": {"shards": 2, "concurrencyPerShard": 4},
            "output": {"flushEveryRows": 5, "flushEverySeconds": 1},
        },
    }
    doc["spec"].update(copy.deepcopy(spec_overrides))
    return doc


def write_manifest(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` seconds,
    saying what was awaited and the last value seen. The one way tests wait: never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what, value))
        time.sleep(interval)


async def eventually(fn: Callable[[], Awaitable[object]], timeout: float = 15.0, what: str = "condition",
                     interval: float = 0.05):
    """:func:`wait_for` for a coroutine function (tests that share the event loop with what they wait for)."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what, value))
        await asyncio.sleep(interval)


def _timed_out(timeout: float, what: str, last: object) -> str:
    return f"timed out after {timeout}s waiting for {what}; last value: {str(last)[:300]!r}"


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path | None = None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*BENCHPILOT, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd or ROOT)


def pod_env(container: dict, tmp: Path) -> dict[str, str]:
    """A runner container's literal env, as a test playing the kubelet runs it: the pod's scratch
    emptyDir (``BENCHPILOT_DATA_DIR``) is a folder under ``tmp``, never the mount path on this machine."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    assert mounts.get(env.get("BENCHPILOT_DATA_DIR")) == "data", "the data dir is the pod's scratch volume"
    env["BENCHPILOT_DATA_DIR"] = str(tmp / "data")
    return env
