"""One reconcile pass of one BenchmarkRun: observe (k8s.py), decide (plan/status), act (k8s.py).

Handlers call :func:`reconcile_run`; it never raises for a bad spec or a run that does not fit —
those become a condition — so one broken run never stops the operator from serving the others.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client.parser import text_string_to_metric_families

from benchpilot_runner.contract.api import SHARD_CASES_METRIC
from benchpilot_runner.contract.fields import SpecError
from benchpilot_runner.contract.layout import results_uri as layout_results_uri
from benchpilot_runner.contract.parse import parse_manifest

from . import manifests as M
from .config import OperatorConfig
from .k8s import APIError, KubeClient, build_event, configmaps_path, events_path, jobs_path, pods_path, runs_path
from .metrics import OperatorMetrics
from .plan import PlanError, limit_for, plan_run
from .status import ShardObs, invalid_status, merge_patch, pod_running, reconcile, utc_now, with_condition

log = logging.getLogger("benchpilot.controller")


def results_uri(spec, meta: dict) -> str:
    return layout_results_uri(spec.output.uri, meta["namespace"], meta["name"], meta["uid"])


async def scrape_progress(client: KubeClient, pod: dict, cfg: OperatorConfig) -> tuple[int | None, int | None]:
    """(done, failed) cases from a running runner pod's /metrics; (None, None) if it cannot be read."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None, None
    port = cfg.runner.port
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == "http":
                port = p.get("containerPort", port)
    try:
        text = await client.get_text(f"http://{ip}:{port}/metrics", cfg.watching.scrape_timeout_s)
    except Exception as exc:  # noqa: BLE001 - progress is best effort; the Job state is the truth
        log.debug("progress scrape failed", extra={"pod": pod["metadata"].get("name"), "error": str(exc)})
        return None, None
    done = failed = None
    for fam in text_string_to_metric_families(text):
        if fam.name == SHARD_CASES_METRIC:
            for s in fam.samples:
                if s.labels.get("state") == "done":
                    done = int(s.value)
                elif s.labels.get("state") == "failed":
                    failed = int(s.value)
    return done, failed


async def observe(client: KubeClient, meta: dict, n_shards: int, cfg: OperatorConfig) -> dict[int, ShardObs]:
    ns, run, uid = meta["namespace"], meta["name"], meta["uid"]
    selector = f"{M.RUN_LABEL}={run}"
    jobs, pods = await asyncio.gather(client.list(jobs_path(ns), selector), client.list(pods_path(ns), selector))
    shards = {i: ShardObs(i) for i in range(n_shards)}
    by_job: dict[str, int] = {}  # job uid (or name, where a server sets no uid) -> shard
    for job in jobs:
        md = job.get("metadata") or {}
        labels = md.get("labels") or {}
        # the label selector may be ignored by a server: check the label and the owner's uid
        if labels.get(M.RUN_LABEL) != run or not M.owned_by(job, uid) or md.get("deletionTimestamp"):
            continue
        try:
            i = int(labels.get(M.SHARD_LABEL, ""))
        except ValueError:
            continue
        if i in shards and md.get("name") == M.job_name(run, i):
            shards[i].job = job
            by_job[md.get("uid") or md["name"]] = i
    for pod in pods:
        md = pod.get("metadata") or {}
        owners = [r.get("uid") or r.get("name") for r in md.get("ownerReferences") or [] if r.get("kind") == "Job"]
        i = next((by_job[o] for o in owners if o in by_job), None)
        if i is not None and (md.get("labels") or {}).get(M.RUN_LABEL) == run:
            shards[i].pods.append(pod)
    running = [(i, p) for i, s in shards.items() for p in s.pods if pod_running(p)]
    if running:
        results = await asyncio.gather(*(scrape_progress(client, p, cfg) for _, p in running))
        for (i, _), (done, failed) in zip(running, results):
            if done is not None:
                shards[i].done = max(shards[i].done or 0, done)
                shards[i].failed_cases = (shards[i].failed_cases or 0) + (failed or 0)
    return shards


async def post_events(client: KubeClient, body: dict, events: list[tuple[str, str, str]]) -> None:
    now = utc_now()
    for type_, reason, message in events:
        try:
            await client.create(events_path(body["metadata"]["namespace"]), build_event(body, type_, reason, message, now))
        except Exception as exc:  # noqa: BLE001 - an event is informative; never fail a reconcile for it
            log.warning("could not post event", extra={"reason": reason, "error": str(exc)})


async def reconcile_run(body: dict, client: KubeClient, cfg: OperatorConfig, metrics: OperatorMetrics) -> dict:
    """Reconcile one run; returns the status to write (the caller writes it in one patch)."""
    meta = body["metadata"]
    prev = dict(body.get("status") or {})
    generation = meta.get("generation")
    key = OperatorMetrics.key(meta["namespace"], meta["name"])
    try:
        spec = parse_manifest({"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                               "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                            "uid": meta.get("uid")}, "spec": body.get("spec")})
        plan = plan_run(spec, cfg)
    except (SpecError, PlanError) as exc:
        reason = "InvalidSpec" if isinstance(exc, SpecError) else exc.reason
        status, events = invalid_status(prev, reason, str(exc), generation)
        await post_events(client, body, events)
        metrics.observe(key, status)
        return status

    await client.create(configmaps_path(meta["namespace"]), M.build_configmap(meta, spec))
    shards = await observe(client, meta, spec.sharding.shards, cfg)
    status, acts = reconcile(spec, plan, shards, prev, cfg, generation=generation,
                             results_uri=results_uri(spec, meta))
    await _record_first(client, meta, status, prev, acts)
    for reason in acts.retries:
        metrics.retries.labels(key, reason).inc()
    status = await _act(client, meta, spec, plan, cfg, status, prev, acts)
    await post_events(client, body, acts.events)
    metrics.observe(key, status)
    return status


async def _record_first(client: KubeClient, meta: dict, status: dict, prev: dict, acts) -> None:
    """Write the bookkeeping an action depends on before acting, so a crash in between repeats nothing."""
    urgent = dict(acts.urgent_status or {})
    if status.get("limitShares") and status["limitShares"] != prev.get("limitShares"):
        # the shares new Jobs are created with are recorded first: a failure in between never lets the
        # next pass hand out what a pod already holds
        # (a merge patch: released shards must be sent as null, or the stored map would keep them)
        urgent.update(merge_patch({"limitShares": prev.get("limitShares") or {}},
                                  {"limitShares": status["limitShares"]}), limitSharesPublished=False)
    if urgent:
        await client.merge_patch(f"{runs_path(meta['namespace'])}/{meta['name']}/status", {"status": urgent})


async def _act(client: KubeClient, meta: dict, spec, plan, cfg: OperatorConfig, status: dict, prev: dict,
               acts) -> dict:
    """Create, replace, suspend and resume Jobs and publish the shares, all at once; returns the status
    with what could not be done said on it (RBAC refusals); any other failure is raised."""
    ns = meta["namespace"]

    async def create(c) -> None:
        sp = plan.shards[c.index]
        if c.replace:
            await client.delete(f"{jobs_path(ns)}/{M.job_name(meta['name'], c.index)}")
        job = M.build_job(meta, spec, c.index, concurrency=sp.concurrency, request_bytes=c.request_bytes,
                          limit_bytes=limit_for(c.request_bytes, spec, cfg), cfg=cfg, oom_retries=c.oom_retries,
                          suspend=spec.suspend, share=c.share)
        # A replaced Job may still be terminating (409): the next pass sees the shard missing and creates
        # it with the memory recorded in status.shardRetries.
        await client.create(jobs_path(ns), job)

    async def set_suspend(i: int, value: bool) -> None:
        await client.merge_patch(f"{jobs_path(ns)}/{M.job_name(meta['name'], i)}", {"spec": {"suspend": value}})

    async def update_shares() -> None:
        # grows reach running pods through this ConfigMap (they re-read it); new pods also get theirs in env
        shares = {int(k): v for k, v in status["limitShares"].items()}
        cm = M.build_shares_configmap(meta, spec, shares)
        if not await client.create(configmaps_path(ns), cm):
            await client.merge_patch(f"{configmaps_path(ns)}/{cm['metadata']['name']}", {"data": cm["data"]})

    # publish when the shares changed, or when the last attempt to publish them failed
    publish = bool(status.get("limitShares")) and (status["limitShares"] != prev.get("limitShares")
                                                   or prev.get("limitSharesPublished") is False)
    results = await asyncio.gather(*([update_shares()] if publish else []),
                                   *(create(c) for c in acts.create),
                                   *(set_suspend(i, True) for i in acts.suspend),
                                   *(set_suspend(i, False) for i in acts.resume), return_exceptions=True)
    if status.get("limitShares"):
        status["limitSharesPublished"] = not (publish and isinstance(results[0], BaseException))
    forbidden = [r for r in results if isinstance(r, APIError) and r.status == 403]
    other = [r for r in results if isinstance(r, BaseException) and r not in forbidden]
    if forbidden:
        # RBAC refused an action: say so on the run (and keep serving the others), never a crash loop
        status = with_condition(status, "Ready", False, "Forbidden",
                                f"the operator's RBAC refused an action: {str(forbidden[0])[:400]}; grant the "
                                "verb in the operator's Role/ClusterRole (charts/benchpilot/templates/rbac.yaml)")
        log.error("RBAC refused an action", extra={"run": f"{ns}/{meta['name']}", "error": str(forbidden[0])[:400]})
    if other:
        raise other[0]
    return status
