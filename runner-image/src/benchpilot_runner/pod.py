"""``benchpilot shard``: the pod entry point — one shard, health and metrics on one port.

Exit codes: 0 when every case of the shard has a result row; 2 on a configuration error (bad
spec, missing credentials, unusable output or cache), so the Job's podFailurePolicy fails fast;
1 when rows could not be written; 143 when stopped by SIGTERM before the shard was complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from dataclasses import dataclass, replace

from . import sink as sinkmod
from .execute import finish_run, local_uid, retrieval_kind, run_shard
from .health import Heartbeat, serve
from .metrics import RunnerMetrics
from .models import build_client
from .spec import CONFIG_ERROR_EXIT, RunSpec, SpecError, from_resolved, load_manifest_text, read_text
from .suites.workflow.case import CaseRunner

log = logging.getLogger("benchpilot.pod")
DEFAULT_SPEC_PATH = "/etc/benchpilot/run.json"


@dataclass(frozen=True)
class PodConfig:
    spec_path: str
    shard: int
    shards: int
    concurrency: int | None
    health_host: str
    health_port: int
    cache_dir: str | None


def _env_int(env: dict, name: str, default: int | None = None) -> int | None:
    raw = env.get(name)
    if raw in (None, ""):
        if default is None:
            raise SpecError(f"env {name}", "is not set")
        return default
    try:
        return int(raw)
    except ValueError:
        raise SpecError(f"env {name}", f"{raw!r} is not an integer") from None


def pod_config(env: dict, spec_path: str | None = None) -> PodConfig:
    shards = _env_int(env, "BENCHPILOT_SHARDS")
    shard = _env_int(env, "BENCHPILOT_SHARD")
    if shards < 1 or not 0 <= shard < shards:
        raise SpecError("env BENCHPILOT_SHARD", f"shard {shard} of {shards} does not exist (0..{shards - 1})")
    conc = env.get("BENCHPILOT_CONCURRENCY")
    return PodConfig(
        spec_path=spec_path or env.get("BENCHPILOT_SPEC", DEFAULT_SPEC_PATH), shard=shard, shards=shards,
        concurrency=_env_int(env, "BENCHPILOT_CONCURRENCY") if conc else None,
        health_host=env.get("BENCHPILOT_HEALTH_HOST", "0.0.0.0"),
        health_port=_env_int(env, "BENCHPILOT_HEALTH_PORT", 8080),
        cache_dir=env.get("BENCHPILOT_CACHE_DIR") or None,
    )


def load_spec_file(path: str) -> RunSpec:
    """The resolved spec the operator mounts (JSON), or a plain manifest (YAML/JSON)."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "matrix" in data and "apiVersion" not in data:
        try:
            return from_resolved(data)
        except (KeyError, TypeError) as exc:
            raise SpecError(path, f"is not a resolved benchpilot spec: {exc}") from None
    return load_manifest_text(text, source=path)


async def run_pod(cfg: PodConfig, *, retriever=None, transport=None) -> int:
    spec = load_spec_file(cfg.spec_path)
    if cfg.shards != spec.sharding.shards:
        raise SpecError("env BENCHPILOT_SHARDS", f"{cfg.shards} does not match spec.sharding.shards "
                                                 f"{spec.sharding.shards}")
    if cfg.concurrency:
        spec = replace(spec, sharding=replace(spec.sharding, concurrency_per_shard=cfg.concurrency))
    cache_dir = cfg.cache_dir or spec.cache_path
    try:
        fs, root = sinkmod.open_uri(spec.output.uri)
        await asyncio.to_thread(sinkmod.check_writable, fs, root)
    except sinkmod.OutputError as exc:
        raise SpecError("spec.output.uri", str(exc)) from None

    metrics = RunnerMetrics()
    heartbeat = Heartbeat(spec.limits.hang_timeout_s,
                          on_beat=lambda ts: metrics.last_progress.labels(spec.name).set(ts))
    heartbeat.beat()
    client, closer = build_client(spec, metrics, heartbeat, transport=transport)
    runner = CaseRunner(spec, retriever=retriever, client=client, on_progress=heartbeat.beat)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stopped: list[str] = []

    def on_signal(name: str) -> None:
        stopped.append(name)
        log.warning("stopping: no new cases, flushing", extra={"signal": name, "shard": cfg.shard})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    server = await serve(heartbeat, metrics.registry, cfg.health_host, cfg.health_port)
    try:
        if retriever is None and cache_dir:
            # the startup probe covers this: the health server answers while the cache opens
            from .resources import CacheError, open_cache

            try:
                retriever = (await asyncio.to_thread(open_cache, cache_dir)).retriever()
            except CacheError as exc:
                raise SpecError("cache", str(exc)) from None
            runner.retriever = retriever
        uid = spec.uid or local_uid(spec, retrieval_kind(retriever))
        run_dir = sinkmod.run_path(root, spec.namespace, spec.name, uid)
    except BaseException:
        await server.cleanup()
        raise
    heartbeat.busy = True
    try:
        result = await run_shard(spec, cfg.shard, cfg.shards, fs=fs, run_dir=run_dir, runner=runner,
                                 metrics=metrics, heartbeat=heartbeat, stop=stop,
                                 concurrency=spec.sharding.concurrency_per_shard)
        if result.complete and not stopped:
            await finish_run(spec, fs, run_dir, uid)
    finally:
        heartbeat.busy = False
        if closer:
            await closer()
        await server.cleanup()
    if stopped:
        return 143
    return 0 if result.complete else 1


def main_shard(spec_path: str | None) -> int:
    try:
        cfg = pod_config(dict(os.environ), spec_path)
        return asyncio.run(run_pod(cfg))
    except SpecError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        return CONFIG_ERROR_EXIT
