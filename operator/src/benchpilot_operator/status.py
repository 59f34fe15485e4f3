"""PURE: observed children -> the run's status and what to do next. No I/O.

Given the spec, the plan, each shard's Job and pods as last seen, the progress scraped from
running pods and the previous status, :func:`reconcile` returns the new status (written in one
patch) and the actions: Jobs to create, Jobs to replace with more memory after an OOM kill, Jobs
to suspend or resume, events to post, retries to count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from benchpilot_runner.spec import RunSpec

from .config import OperatorConfig
from .manifests import OOM_ANNOTATION
from .plan import Plan, fmt_mib, grown_request

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
MAX_FAILED_LISTED = 20


@dataclass
class ShardObs:
    index: int
    job: dict | None = None
    pods: list[dict] = field(default_factory=list)
    done: int | None = None  # cases with a row, scraped from the running pod
    failed_cases: int | None = None


@dataclass(frozen=True)
class CreateJob:
    index: int
    request_bytes: int
    oom_retries: int
    replace: bool = False  # delete the existing Job first (its pod template is immutable)


@dataclass
class Actions:
    create: list[CreateJob] = field(default_factory=list)
    suspend: list[int] = field(default_factory=list)
    resume: list[int] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retries: list[str] = field(default_factory=list)  # reasons, one per retry started now
    urgent_status: dict | None = None  # written before acting (retry bookkeeping)


def job_state(job: dict) -> tuple[str, str, str]:
    """(state, reason, message): state is succeeded | failed | suspended | running | pending."""
    st = job.get("status") or {}
    conds = {c.get("type"): c for c in st.get("conditions") or [] if str(c.get("status")) == "True"}
    if "Complete" in conds or "SuccessCriteriaMet" in conds:
        return "succeeded", "Complete", ""
    for t in ("Failed", "FailureTarget"):
        if t in conds:
            reason = conds[t].get("reason") or "Failed"
            if reason == "PodFailurePolicy":
                reason = "ConfigError"
            return "failed", reason, conds[t].get("message") or ""
    if "Suspended" in conds or (job.get("spec") or {}).get("suspend"):
        return "suspended", "Suspended", ""
    if (st.get("active") or 0) > 0:
        return "running", "Running", ""
    return "pending", "Pending", ""


def oom_killed(pods: list[dict]) -> list[str]:
    """Names of the pods whose container was OOMKilled."""
    out = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if any(((cs.get(key) or {}).get("terminated") or {}).get("reason") == "OOMKilled"
                   for key in ("state", "lastState")):
                out.append((pod.get("metadata") or {}).get("name", ""))
                break
    return out


def pod_running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _condition(prev: list[dict], type_: str, status: bool, reason: str, message: str, now: str) -> dict:
    old = next((c for c in prev if c.get("type") == type_), None)
    value = "True" if status else "False"
    changed = old is None or old.get("status") != value
    return {"type": type_, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now)}


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def invalid_status(prev: dict, reason: str, message: str, generation: int | None) -> tuple[dict, list]:
    """The status of a run that cannot start (bad spec, does not fit): Failed with a condition."""
    now = utc_now()
    conds = prev.get("conditions") or []
    status = {"phase": "Failed", "observedGeneration": generation,
              "conditions": [_condition(conds, "Ready", False, reason, message, now),
                             _condition(conds, "Failed", True, reason, message, now)]}
    events = [] if _same_condition(conds, "Ready", "False", reason, message) else [("Warning", reason, message)]
    return status, events


def _same_condition(conds: list[dict], type_: str, status: str, reason: str, message: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == status and c.get("reason") == reason
               and c.get("message") == message for c in conds)


def reconcile(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, cfg: OperatorConfig, *,
              generation: int | None, results_uri: str, now: str | None = None) -> tuple[dict, Actions]:
    now = now or utc_now()
    acts = Actions()
    retries: dict[str, dict] = {k: dict(v) for k, v in (prev.get("shardRetries") or {}).items()}
    states: dict[int, tuple[str, str, str]] = {}
    failed: dict[int, tuple[str, str]] = {}
    for sp in plan.shards:
        i, key = sp.index, str(sp.index)
        rec = retries.get(key, {})
        obs = shards.get(i) or ShardObs(i)
        if rec.get("failed"):
            states[i] = ("failed", rec["failed"], rec.get("message", ""))
            failed[i] = (rec["failed"], rec.get("message", ""))
            continue
        if obs.job is None:
            states[i] = ("missing", "", "")
            continue
        state, reason, message = job_state(obs.job)
        job_oom = int(((obs.job.get("metadata") or {}).get("annotations") or {}).get(OOM_ANNOTATION, "0"))
        rec_oom = int(rec.get("oomKilled", 0))
        memory = int(rec.get("memoryBytes") or sp.request_bytes)
        if state != "succeeded" and rec_oom > job_oom:
            # a retry was recorded but the Job not yet replaced (the operator stopped in between)
            acts.create.append(CreateJob(i, memory, rec_oom, replace=True))
            state = "pending"
        elif state != "succeeded" and (new_oom := sorted(set(oom_killed(obs.pods)) - set(rec.get("oomPods", [])))):
            # each OOMKilled pod counts once, even if it lingers after its Job was replaced
            rec = {**rec, "oomPods": (list(rec.get("oomPods", [])) + new_oom)[-10:]}
            grown = grown_request(memory, spec, cfg)
            if grown is None or rec_oom >= cfg.max_oom_retries:
                why = (f"OOMKilled at {fmt_mib(memory)} (maxPodMemory {fmt_mib(spec.resources.max_pod_memory_bytes)})"
                       if grown is None else f"OOMKilled {rec_oom + 1} times; last at {fmt_mib(memory)}")
                retries[key] = {**rec, "failed": "OOMKilled", "message": why}
                acts.urgent_status = {"shardRetries": retries}
                failed[i] = ("OOMKilled", why)
                states[i] = ("failed", "OOMKilled", why)
                acts.events.append(("Warning", "ShardFailed", f"shard {i}: {why}"))
                continue
            retries[key] = {**rec, "oomKilled": rec_oom + 1, "memoryBytes": grown}
            acts.urgent_status = {"shardRetries": retries}
            acts.create.append(CreateJob(i, grown, rec_oom + 1, replace=True))
            acts.retries.append("OOMKilled")
            acts.events.append(("Warning", "ShardOOMKilled",
                                f"shard {i} was OOMKilled at {fmt_mib(memory)}; re-created with {fmt_mib(grown)} "
                                f"(retry {rec_oom + 1} of {cfg.max_oom_retries})"))
            state = "pending"
        elif state == "failed":
            failed[i] = (reason, message)
            if not (prev.get("failedShards") and any(f.get("index") == i for f in prev["failedShards"])):
                acts.events.append(("Warning", "ShardFailed", f"shard {i} failed: {reason} {message}".strip()))
                if reason in ("DeadlineExceeded", "BackoffLimitExceeded"):
                    acts.retries.append(reason)
        states[i] = (state, reason, message)

    fail_fast = spec.failure_policy == "fail" and failed
    unfinished = [i for i, s in states.items() if s[0] in ("running", "pending", "suspended")]
    replacing = {c.index for c in acts.create}
    if not spec.suspend and not fail_fast:
        budget = spec.sharding.max_parallel_shards - len(unfinished)
        for i in sorted(i for i, s in states.items() if s[0] == "missing"):
            if budget <= 0:
                break
            rec = retries.get(str(i), {})
            acts.create.append(CreateJob(i, int(rec.get("memoryBytes") or plan.shards[i].request_bytes),
                                         int(rec.get("oomKilled", 0))))
            budget -= 1
    for i, (state, _, _) in states.items():
        job = (shards.get(i) or ShardObs(i)).job
        if job is None or i in replacing or state in ("succeeded", "failed"):
            continue
        suspended = bool((job.get("spec") or {}).get("suspend"))
        if spec.suspend and not suspended:
            acts.suspend.append(i)
        elif not spec.suspend and suspended:
            acts.resume.append(i)

    counts = {"total": len(plan.shards), "pending": 0, "running": 0, "succeeded": 0, "failed": 0}
    done = failed_cases = 0
    for sp in plan.shards:
        state = states[sp.index][0]
        obs = shards.get(sp.index) or ShardObs(sp.index)
        if state == "succeeded":
            counts["succeeded"] += 1
            done += sp.cases
        elif state == "failed":
            counts["failed"] += 1
            done += min(sp.cases, obs.done or 0)
        elif state == "running" and (obs.job or {}).get("status", {}).get("active"):
            counts["running"] += 1
            done += min(sp.cases, obs.done or 0)
        else:
            counts["pending"] += 1
            done += min(sp.cases, obs.done or 0)
        failed_cases += obs.failed_cases or 0
    total_cases = spec.total_cases
    finished = counts["succeeded"] + counts["failed"] == counts["total"]
    conds_prev = prev.get("conditions") or []
    conditions = [_condition(conds_prev, "Ready", True, "Planned",
                             f"{counts['total']} shards, concurrency {plan.concurrency} per shard, memory "
                             f"request {fmt_mib(plan.request_bytes)} limit {fmt_mib(plan.limit_bytes)}"
                             + (f" (concurrency lowered from {plan.requested_concurrency} to fit maxPodMemory "
                                f"{fmt_mib(spec.resources.max_pod_memory_bytes)})" if plan.lowered else ""), now)]
    failed_msg = ", ".join(f"s{i}: {r}" for i, (r, _) in sorted(failed.items())[:MAX_FAILED_LISTED])
    if finished and not failed:
        phase = "Succeeded"
        conditions.append(_condition(conds_prev, "Complete", True, "Succeeded", "every shard succeeded", now))
    elif (finished or fail_fast) and failed:
        partial = spec.failure_policy == "partial" and counts["succeeded"] > 0 and finished
        phase = "Succeeded" if partial else "Failed"
        msg = f"{counts['succeeded']}/{counts['total']} shards succeeded; failed: {failed_msg}"
        conditions.append(_condition(conds_prev, "Complete", partial, "PartiallySucceeded" if partial
                                     else "ShardsFailed", msg, now))
        conditions.append(_condition(conds_prev, "Failed", not partial, "ShardsFailed", msg, now))
    elif spec.suspend:
        phase = "Suspended"
    elif counts["running"] > 0:
        phase = "Running"
    else:
        phase = "Pending" if counts["succeeded"] + counts["failed"] == 0 else "Running"
    conditions.append(_condition(conds_prev, "Suspended", spec.suspend, "SuspendedBySpec" if spec.suspend
                                 else "NotSuspended", "spec.suspend is true" if spec.suspend else "", now))
    if plan.lowered and not _same_condition(conds_prev, "Ready", "True", "Planned", conditions[0]["message"]):
        acts.events.append(("Warning", "ConcurrencyLowered", conditions[0]["message"]))
    if prev.get("phase") != phase:
        acts.events.append(("Warning" if phase == "Failed" else "Normal", f"Run{phase}",
                            f"run is {phase}: {counts['succeeded']}/{counts['total']} shards succeeded, "
                            f"{done}/{total_cases} cases"))
    status = {
        "phase": phase, "observedGeneration": generation,
        "shards": counts,
        "shardSummary": f"{counts['succeeded']}/{counts['total']}",
        "cases": {"total": total_cases, "completed": done, "failed": failed_cases},
        "progress": f"{(100 * done // total_cases) if total_cases else 100}%",
        "plan": {"concurrencyPerShard": plan.concurrency, "memoryRequest": fmt_mib(plan.request_bytes),
                 "memoryLimit": fmt_mib(plan.limit_bytes)},
        "results": {"uri": results_uri, "rows": done},
        "conditions": conditions,
        "shardRetries": retries or None,
        "failedShards": [{"index": i, "reason": r, "message": m[:300]}
                         for i, (r, m) in sorted(failed.items())[:MAX_FAILED_LISTED]] or None,
    }
    return status, acts
