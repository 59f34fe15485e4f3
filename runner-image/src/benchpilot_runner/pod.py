"""``benchpilot shard``: the pod entry point — one shard, health and metrics on one port.

Exit codes: 0 when every case of the shard has a final outcome (``_SUCCESS`` written); 2 on a
configuration error (bad spec or env, missing credentials, unusable output or cache, an endpoint
that refused the key), so the Job's podFailurePolicy fails fast; 1 when rows could not be written;
3 when cases were left without a final outcome (infrastructure errors: the Job's next pod retries
them); 143 when stopped by SIGTERM before the shard was complete. Why it ended goes to the
container's termination message (:class:`contract.outcomes.Reason`), which the operator reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import replace

from .contract.fields import SpecError
from .contract.outcomes import ConfigError, ExitCode, Reason
from .contract.podenv import ENV, PodEnv
from .manifest import load_manifest
from .models import apply_fraction
from .redact import scrub
from .results.lease import LEASE_TTL_S
from .answers.runs import summary_lines
from .session import Setup, auth_refused, conclude, open_run, run_shards
from .signals import StopSignals
from .suites.base import Retrieval

log = logging.getLogger("benchpilot.pod")


def write_termination(env: PodEnv | None, reason: Reason, message: str, **counts: int) -> None:
    """Why the shard ended, for the operator: the kubelet copies this file into the pod's status
    (``state.terminated.message``). One JSON object, scrubbed, under the kubelet's 4 KiB."""
    if env is None or not env.termination_log:
        return
    try:
        with open(env.termination_log, "w", encoding="utf-8") as fh:
            fh.write(reason.to_message(scrub(message), **counts))
    except OSError as exc:
        log.warning("termination message not written", extra={"path": env.termination_log, "error": str(exc)})


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


async def follow_shares(env: PodEnv, spec, endpoints, stop: asyncio.Event, *, start: float,
                        every_s: float = 2.0) -> None:
    """Re-read the shares file while the shard runs; take a larger share as soon as it is there."""
    current = start
    while not stop.is_set():
        share = read_share(env.shares_file, env.shard)
        if share is not None and share > current + 1e-9:
            log.info("limit share grew", extra={"shard": env.shard, "from": round(current, 6), "to": round(share, 6)})
            current = share
            apply_fraction(spec, endpoints, current)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        except TimeoutError:
            pass


def _spec(env: PodEnv):
    """The resolved spec (a manifest: the same parser as every other path in), checked against the env."""
    spec = load_manifest(env.spec_path)
    if env.shards != spec.sharding.shards:
        raise SpecError(f"env {ENV['shards']}", f"{env.shards} does not match spec.sharding.shards "
                                                f"{spec.sharding.shards}")
    if env.concurrency:
        spec = replace(spec, sharding=replace(spec.sharding, concurrency_per_shard=env.concurrency))
    return spec


async def run_pod(env: PodEnv, *, retrieval: Retrieval | None = None, transport=None) -> int:
    spec = _spec(env)
    share = max(env.share, read_share(env.shares_file, env.shard) or 0.0)  # a share only grows
    setup = Setup(shards=(env.shard,), retrieval=retrieval, cache_dir=env.cache_dir or spec.cache_path,
                  fraction=share, lease_wait_s=LEASE_TTL_S + 5,  # a replaced pod may find its predecessor's lease
                  serve_at=(env.health_host, env.health_port), serve_field=f"env {ENV['health_port']}",
                  memory_request_bytes=env.memory_request_bytes, transport=transport)
    async with open_run(spec, setup) as session:
        done = asyncio.Event()
        follower = asyncio.create_task(follow_shares(env, spec, session.endpoints, done, start=share))
        try:
            with StopSignals(session.sinks, second_sigint_exits=False, context={"shard": env.shard}) as signals:
                (result,) = await run_shards(session, signals.stop)
            code, lines = await conclude(session, [result], signals.signal)
        finally:
            done.set()
            await follower
        refused = auth_refused(session)
    for line in summary_lines(session.answers):  # reuse counts; a served model that changed (drift)
        log.log(logging.WARNING if line.startswith("warning") else logging.INFO, line, extra={"shard": env.shard})
    for line in lines:
        log.log(logging.INFO if code == 0 else logging.ERROR, line, extra={"shard": env.shard, "exit_code": code})
    for name, why in refused.items():
        log.error("endpoint refused the API key; its cases were left unrun", extra={"endpoint": name, "reason": why})
    reason = Reason.for_exit(code, auth_refused=bool(refused),
                             budget_stopped=bool(result.stopped_by) and not result.complete)
    total = result.total - result.absent  # positions without a case in the dataset are not cases
    write_termination(env, reason, "; ".join(lines) or f"{result.final}/{total} cases with a final outcome",
                      done=result.final, failed=result.retryable, total=total, served={m: [scrub(x) for x in ids] for m, ids in session.answers.seen.items()})
    return code


def main_shard(spec_path: str | None) -> int:
    env = None
    try:
        env = PodEnv.from_env(os.environ, spec_path)
        return asyncio.run(run_pod(env))
    except ConfigError as exc:
        log.error("configuration error", extra={"error": scrub(str(exc))})
        write_termination(env or _termination_only(), Reason.CONFIG_ERROR, str(exc))
        return int(ExitCode.CONFIG_ERROR)


def _termination_only() -> PodEnv | None:
    """Where to say why when the env itself was refused: the termination log is still named there."""
    path = os.environ.get(ENV["termination_log"])
    return PodEnv(shard=0, shards=1, termination_log=path) if path else None
