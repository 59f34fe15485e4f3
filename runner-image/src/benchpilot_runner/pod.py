"""``benchpilot shard``: the pod entry point — one shard, health and metrics on one port.

Exit codes: 0 when every case of the shard has a final outcome (``_SUCCESS`` written); 2 on a
configuration error (bad spec or env, missing credentials, unusable output or cache, an endpoint
that refused the key), so the Job's podFailurePolicy fails fast; 1 when rows could not be written;
3 when cases were left without a final outcome (infrastructure errors: the Job's next pod retries
them); 143 when stopped by SIGTERM before the shard was complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, replace

from . import sink as sinkmod
from .budget import BudgetTracker
from .execute import (StopSignals, acquire_lease, finish_run, holding, local_uid, outcome,
                      run_shard)
from .health import Heartbeat, serve
from .manifest import load_manifest
from .metrics import RunnerMetrics
from .models import apply_fraction, build_clients
from .spec import CONFIG_ERROR_EXIT, SpecError, check_number
from .cases import make_runner
from .suites.base import Retrieval, SuiteError

log = logging.getLogger("benchpilot.pod")
DEFAULT_SPEC_PATH = "/etc/benchpilot/run.json"
TERMINATION_LOG_ENV = "BENCHPILOT_TERMINATION_LOG"  # the operator sets it to the container's terminationMessagePath


def write_termination(reason: str, message: str, env: dict | None = None, **counts: int) -> None:
    """Why the shard ended, for the operator: the kubelet copies this file into the pod's status
    (``state.terminated.message``). One JSON object, scrubbed, at most 4 KiB (the kubelet's cap)."""
    path = (env if env is not None else os.environ).get(TERMINATION_LOG_ENV)
    if not path:
        return
    from .redact import scrub

    body = json.dumps({"reason": reason, "message": scrub(message)[:3500], **counts})
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(body)
    except OSError as exc:
        log.warning("termination message not written", extra={"path": path, "error": str(exc)})


@dataclass(frozen=True)
class PodConfig:
    spec_path: str
    shard: int
    shards: int
    concurrency: int | None
    health_host: str
    health_port: int
    cache_dir: str | None
    limit_share: float = 1.0  # this shard's fraction of the run's endpoint limits (set by the operator)
    shares_file: str | None = None  # the run's shares ConfigMap, re-read: a share only grows


def _env_int(env: dict, name: str, default: int | None = None, *, minimum: int = 0,
             maximum: int = 10**9) -> int | None:
    raw = env.get(name)
    if raw in (None, ""):
        if default is None:
            raise SpecError(f"env {name}", "is not set")
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SpecError(f"env {name}", f"{raw[:40]!r} is not an integer") from None
    return check_number(value, f"env {name}", minimum=minimum, maximum=maximum, integer=True)


def pod_config(env: dict, spec_path: str | None = None) -> PodConfig:
    shards = _env_int(env, "BENCHPILOT_SHARDS", minimum=1, maximum=10000)
    shard = _env_int(env, "BENCHPILOT_SHARD", minimum=0, maximum=10000)
    if not 0 <= shard < shards:
        raise SpecError("env BENCHPILOT_SHARD", f"shard {shard} of {shards} does not exist (0..{shards - 1})")
    conc = env.get("BENCHPILOT_CONCURRENCY")
    return PodConfig(
        spec_path=spec_path or env.get("BENCHPILOT_SPEC", DEFAULT_SPEC_PATH), shard=shard, shards=shards,
        concurrency=_env_int(env, "BENCHPILOT_CONCURRENCY", minimum=1, maximum=4096) if conc else None,
        health_host=env.get("BENCHPILOT_HEALTH_HOST", "0.0.0.0"),
        health_port=_env_int(env, "BENCHPILOT_HEALTH_PORT", 8080, minimum=1, maximum=65535),
        cache_dir=env.get("BENCHPILOT_CACHE_DIR") or None,
        limit_share=_env_share(env),
        shares_file=env.get("BENCHPILOT_SHARES_FILE") or None,
    )


def _env_share(env: dict) -> float:
    raw = env.get("BENCHPILOT_LIMIT_SHARE")
    if raw in (None, ""):
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise SpecError("env BENCHPILOT_LIMIT_SHARE", f"{raw[:40]!r} is not a number") from None
    return check_number(value, "env BENCHPILOT_LIMIT_SHARE", minimum=0.0, maximum=1.0)


def read_share(path: str | None, shard: int) -> float | None:
    """This shard's fraction in the shares file, or None when there is none (yet)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh).get("shards", {}).get(str(shard))
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


async def follow_shares(cfg: PodConfig, spec, endpoints, stop: asyncio.Event, *, start: float,
                        every_s: float = 2.0) -> None:
    """Re-read the shares file while the shard runs; take a larger share as soon as it is there."""
    current = start
    while not stop.is_set():
        share = read_share(cfg.shares_file, cfg.shard)
        if share is not None and share > current + 1e-9:
            log.info("limit share grew", extra={"shard": cfg.shard, "from": round(current, 6), "to": round(share, 6)})
            current = share
            apply_fraction(spec, endpoints, current)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except TimeoutError:
            pass


async def run_pod(cfg: PodConfig, *, retrieval: Retrieval | None = None, transport=None) -> int:
    # the resolved spec is a manifest: the same parser as every other path in
    spec = load_manifest(cfg.spec_path)
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
    share = max(cfg.limit_share, read_share(cfg.shares_file, cfg.shard) or 0.0)  # a share only grows
    endpoints = build_clients(spec, metrics, heartbeat, transport=transport,
                              concurrency=spec.sharding.concurrency_per_shard, fraction=share)
    try:
        server = await serve(heartbeat, metrics.registry, cfg.health_host, cfg.health_port)
    except OSError as exc:
        await endpoints.close()
        raise SpecError("env BENCHPILOT_HEALTH_PORT", f"cannot listen on {cfg.health_host}:{cfg.health_port}: "
                                                      f"{exc.strerror or exc}") from None
    try:
        return await _run(cfg, spec, fs, root, metrics, heartbeat, endpoints, retrieval, cache_dir)
    finally:
        await endpoints.close()
        await server.cleanup()


async def _run(cfg, spec, fs, root, metrics, heartbeat, endpoints, retrieval, cache_dir) -> int:
    # the startup probe covers this: the health server answers while the cache opens and the suite
    # loads its dataset (checked before any case runs: a bad one is a configuration error naming the file)
    from .resources import CacheError, open_cache

    try:
        if retrieval is None:
            retrieval = Retrieval(await asyncio.to_thread(open_cache, cache_dir, suite=spec.suite)
                                  if cache_dir else None)
        runner = await asyncio.to_thread(make_runner, spec, retrieval=retrieval, endpoints=endpoints,
                                         on_progress=heartbeat.beat)
    except CacheError as exc:
        raise SpecError("cache", str(exc)) from None
    except SuiteError as exc:
        raise SpecError("spec.suiteConfig", str(exc)) from None
    uid = spec.uid or local_uid(spec, retrieval.kind)
    run_dir = sinkmod.run_path(root, spec.namespace, spec.name, uid)
    writer = sinkmod.new_writer_id()
    # a replaced pod may find its predecessor's lease: wait for it to expire rather than fail the Job
    try:
        lease = await acquire_lease(fs, run_dir, [cfg.shard], writer, wait_s=sinkmod.LEASE_TTL_S + 5)
    except sinkmod.WriterConflict as exc:
        raise SpecError("shard", str(exc)) from None
    shard_dir = f"{run_dir}/{sinkmod.shard_name(cfg.shard)}"
    state = await asyncio.to_thread(sinkmod.read_state, fs, shard_dir, recursive=False)
    budget = BudgetTracker(spec.budget, share=1.0 / cfg.shards, spent_usd=state.spent_usd,
                           spent_tokens=state.spent_tokens)
    sinks: list = []
    heartbeat.busy = True
    done = asyncio.Event()
    follower = asyncio.create_task(follow_shares(cfg, spec, endpoints, done,
                                                 start=max(cfg.limit_share, read_share(cfg.shares_file, cfg.shard) or 0.0)))
    run_marker_error = None
    try:
        async with holding(lease):
            with StopSignals(sinks, second_sigint_exits=False, context={"shard": cfg.shard}) as signals:
                result = await run_shard(spec, cfg.shard, cfg.shards, fs=fs, run_dir=run_dir, runner=runner,
                                         metrics=metrics, heartbeat=heartbeat, stop=signals.stop,
                                         concurrency=spec.sharding.concurrency_per_shard, state=state, writer=writer,
                                         gate=budget.exhausted, on_case_done=budget.add, sinks=sinks)
                if result.complete and not signals.signal:
                    run_marker_error = await finish_run(spec, fs, run_dir, uid)
    finally:
        heartbeat.busy = False
        done.set()
        await follower
    auth = {n: why for n, (st, why) in endpoints.unavailable().items() if st == "auth_refused"}
    code, lines = outcome([result], interrupted=signals.signal, auth_refused=bool(auth),
                          unavailable=endpoints.unavailable(), run_marker_error=run_marker_error)
    for line in lines:
        log.log(logging.INFO if code == 0 else logging.ERROR, line, extra={"shard": cfg.shard, "exit_code": code})
    for name, why in auth.items():
        log.error("endpoint refused the API key; its cases were left unrun", extra={"endpoint": name, "reason": why})
    if auth:
        reason = "AuthRefused"
    elif code == 0:
        reason = "BudgetExhausted" if result.stopped_by and not result.complete else "Complete"
    else:
        reason = {1: "WriteFailed", 3: "CasesUnfinished", 143: "Stopped"}.get(code, "Failed")
    total = result.total - result.absent  # positions without a case in the dataset are not cases
    write_termination(reason, "; ".join(lines) or f"{result.final}/{total} cases with a final outcome",
                      done=result.final, failed=result.retryable, total=total)
    return code


def main_shard(spec_path: str | None) -> int:
    try:
        cfg = pod_config(dict(os.environ), spec_path)
        return asyncio.run(run_pod(cfg))
    except SpecError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        write_termination("ConfigError", str(exc))
        return CONFIG_ERROR_EXIT
