"""PURE: observed children -> the run's status and what to do next. No I/O.

Given the spec, the plan, each shard's Job and pods as last seen, the progress scraped from
running pods and the previous status, :func:`reconcile` returns the new status (written in one
patch) and the actions: Jobs to create, Jobs to replace with more memory after an OOM kill, Jobs
to suspend or resume, events to post, retries to count.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace

from benchpilot_runner.estimate import estimate, from_spec
from benchpilot_runner.redact import scrub
from benchpilot_runner.spec import CONFIG_ERROR_EXIT, INCOMPLETE_EXIT, RunSpec

from .config import OperatorConfig
from .manifests import OOM_ANNOTATION
from .plan import Plan, fmt_mib, grown_request
from .shares import allocate

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
    share: float | None = None  # the shard's fraction of the run's endpoint limits (None: no endpoint)


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


@dataclass(frozen=True)
class Termination:
    """How the newest runner container of a shard ended, from its pod status."""

    exit_code: int | None
    reason: str | None = None  # the runner's own word (termination message), e.g. CasesUnfinished
    message: str = ""
    done: int | None = None  # cases of the shard with a final outcome
    failed: int | None = None  # cases that ended in error/timeout in that attempt
    total: int | None = None  # the shard's cases: fewer than planned when the suite's dataset has fewer


def last_termination(pods: list[dict]) -> Termination | None:
    """The newest terminated runner container among ``pods``, with the runner's termination message."""
    best: tuple[str, dict] | None = None
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = ((cs.get("state") or {}).get("terminated") or {})
            if "exitCode" in term:
                key = str(term.get("finishedAt") or "")
                best = (key, term) if best is None or key >= best[0] else best
    if best is None:
        return None
    term = best[1]
    info: dict = {}
    try:
        parsed = json.loads(term.get("message") or "")
        info = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        pass
    def count(key: str) -> int | None:
        value = info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    return Termination(int(term["exitCode"]), str(info.get("reason") or "")[:64] or None,
                       scrub(str(info.get("message") or ""))[:600], count("done"), count("failed"), count("total"))


def explain_failure(reason: str, message: str, pods: list[dict]) -> tuple[str, str]:
    """A failed shard's reason in the runner's terms where its exit code and message say more."""
    term = last_termination(pods)
    code = term.exit_code if term else None
    said = f": {term.message}" if term and term.message else ""
    if code == INCOMPLETE_EXIT:
        return "CasesUnfinished", (f"cases ended without a final outcome (infrastructure errors or timeouts) on "
                                   f"every attempt ({reason}){said or '; a rerun retries only those'}")
    if code == CONFIG_ERROR_EXIT:
        if term and term.reason == "AuthRefused":
            return "AuthRefused", f"an endpoint refused the API key{said}"
        return "ConfigError", f"the runner refused its configuration (exit 2){said or '; see the pod log'}"
    evicted = [p.get("status") or {} for p in pods if (p.get("status") or {}).get("reason") == "Evicted"]
    if evicted:
        said = str(evicted[-1].get("message") or "").strip()
        hint = ("; raise spec.resources.scratch (the pod's scratch volume, where a remote dataset is copied)"
                if "\"data\"" in said or "ephemeral" in said.lower() else "")
        return "Evicted", f"the kubelet evicted the shard's pod ({reason}): {said or 'no message'}{hint}"
    return reason, message


def merge_patch(prev: dict, new: dict, *, keep: tuple[str, ...] = ("kopf",)) -> dict:
    """The JSON merge patch (RFC 7386) that turns ``prev`` into ``new``: changed keys, nested maps
    diffed key by key, removed keys as None (a merge patch keeps what it does not mention)."""
    out: dict = {}
    for k, v in new.items():
        old = prev.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            sub = merge_patch(old, v, keep=())
            if sub:
                out[k] = sub
        elif old != v:
            out[k] = v
    for k in prev:
        if k not in new and k not in keep:
            out[k] = None
    return out


def budget_key(spec: RunSpec) -> str:
    return json.dumps([spec.budget.max_cost_usd, spec.budget.max_tokens])


def pod_running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def _condition(prev: list[dict], type_: str, status: bool, reason: str, message: str, now: str) -> dict:
    old = next((c for c in prev if c.get("type") == type_), None)
    value = "True" if status else "False"
    changed = old is None or old.get("status") != value
    return {"type": type_, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now)}


def with_condition(status: dict, type_: str, value: bool, reason: str, message: str, now: str | None = None) -> dict:
    """``status`` with condition ``type_`` set (replacing one of that type)."""
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    conds.insert(0, _condition(status.get("conditions") or [], type_, value, reason, scrub(message), now or utc_now()))
    return {**status, "conditions": conds}


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


@dataclass
class Decisions:
    """What the per-shard pass decided: each shard's state, failures, and the retry bookkeeping."""

    states: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # (state, reason, message)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)
    retries: dict[str, dict] = field(default_factory=dict)


def decide_shard(spec: RunSpec, sp, obs: ShardObs, rec: dict, prev: dict, cfg: OperatorConfig,
                 d: Decisions, acts: Actions) -> None:
    """One shard's state, and what to do about it: replace after an OOM kill, resume after a budget
    raise, record a failure. Writes into ``d`` and ``acts``."""
    i, key = sp.index, str(sp.index)
    if rec.get("failed"):
        d.states[i] = ("failed", rec["failed"], rec.get("message", ""))
        d.failed[i] = (rec["failed"], rec.get("message", ""))
        return
    if obs.job is None:
        d.states[i] = ("missing", "", "")
        return
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
            d.retries[key] = {**rec, "failed": "OOMKilled", "message": why}
            acts.urgent_status = {"shardRetries": d.retries}
            d.failed[i] = ("OOMKilled", why)
            d.states[i] = ("failed", "OOMKilled", why)
            acts.events.append(("Warning", "ShardFailed", f"shard {i}: {why}"))
            return
        d.retries[key] = {**rec, "oomKilled": rec_oom + 1, "memoryBytes": grown}
        acts.urgent_status = {"shardRetries": d.retries}
        acts.create.append(CreateJob(i, grown, rec_oom + 1, replace=True))
        acts.retries.append("OOMKilled")
        acts.events.append(("Warning", "ShardOOMKilled",
                            f"shard {i} was OOMKilled at {fmt_mib(memory)}; re-created with {fmt_mib(grown)} "
                            f"(retry {rec_oom + 1} of {cfg.max_oom_retries})"))
        state = "pending"
    elif state == "succeeded" and (term := last_termination(obs.pods)) and term.reason == "BudgetExhausted":
        bkey = budget_key(spec)
        if rec.get("budgetStop") not in (None, bkey):
            # the budget was raised since this shard stopped: run it again for its missing cases
            d.retries[key] = {k: v for k, v in rec.items() if k != "budgetStop"}
            acts.urgent_status = {"shardRetries": d.retries}
            acts.create.append(CreateJob(i, memory, rec_oom, replace=True))
            acts.events.append(("Normal", "BudgetRaised", f"shard {i} resumes its missing cases"))
            state = "pending"
        else:
            if rec.get("budgetStop") is None:
                d.retries[key] = {**rec, "budgetStop": bkey}
                acts.urgent_status = {"shardRetries": d.retries}
            state, reason, message = "budget", "BudgetExhausted", term.message
    elif state == "failed":
        reason, message = explain_failure(reason, message, obs.pods)
        d.failed[i] = (reason, message)
        if not (prev.get("failedShards") and any(f.get("index") == i for f in prev["failedShards"])):
            acts.events.append(("Warning", "ShardFailed", f"shard {i} failed: {reason} {message}".strip()))
            if reason in ("DeadlineExceeded", "BackoffLimitExceeded"):
                acts.retries.append(reason)
    d.states[i] = (state, reason, message)


def schedule(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, d: Decisions,
             acts: Actions) -> dict[int, float] | None:
    """Jobs to create (within maxParallelShards), to suspend or resume, and each shard's share of the
    run's endpoint limits (shares.py). Returns the shares (None when no model uses an endpoint)."""
    fail_fast = spec.failure_policy == "fail" and d.failed
    unfinished = [i for i, s in d.states.items() if s[0] in ("running", "pending", "suspended")]
    replacing = {c.index for c in acts.create}
    if not spec.suspend and not fail_fast:
        room = spec.sharding.max_parallel_shards - len(unfinished)
        for i in sorted(i for i, s in d.states.items() if s[0] == "missing"):
            if room <= 0:
                break
            rec = d.retries.get(str(i), {})
            acts.create.append(CreateJob(i, int(rec.get("memoryBytes") or plan.shards[i].request_bytes),
                                         int(rec.get("oomKilled", 0))))
            room -= 1
    shares = None
    if spec.needs_endpoint():
        # run-wide endpoint limits: each shard's fraction; finished shards release theirs
        created = {c.index for c in acts.create}
        holding = {i for i, (st, _, _) in d.states.items() if st in ("running", "pending", "suspended")}
        prev_shares = {int(k): float(v) for k, v in (prev.get("limitShares") or {}).items()}
        shares = allocate(prev_shares, holding, sorted(created - holding),
                          all_started=not any(st == "missing" and i not in created
                                              for i, (st, _, _) in d.states.items()))
        acts.create = [replace(c, share=shares.get(c.index, 0.0)) for c in acts.create]
    for i, (state, _, _) in d.states.items():
        job = (shards.get(i) or ShardObs(i)).job
        if job is None or i in replacing or state in ("succeeded", "failed", "budget"):
            continue
        suspended = bool((job.get("spec") or {}).get("suspend"))
        if spec.suspend and not suspended:
            acts.suspend.append(i)
        elif not spec.suspend and suspended:
            acts.resume.append(i)
    return shares


def summarize(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, d: Decisions, acts: Actions,
              shares: dict[int, float] | None, *, generation: int | None, results_uri: str, now: str) -> dict:
    """Counts, progress, phase and conditions: the status, written in one patch."""
    counts = {"total": len(plan.shards), "pending": 0, "running": 0, "succeeded": 0, "failed": 0}
    done = failed_cases = 0
    total_cases = 0
    budget_stopped: dict[int, str] = {}
    for sp in plan.shards:
        state, _, message = d.states[sp.index]
        obs = shards.get(sp.index) or ShardObs(sp.index)
        term = last_termination(obs.pods) if state in ("succeeded", "failed", "budget") else None
        # positions of the matrix the suite's dataset has no case for are not cases: a finished
        # shard's runner says how many cases it really had
        total_cases += min(sp.cases, term.total) if term and term.total is not None else sp.cases
        if state == "succeeded":
            counts["succeeded"] += 1
            done += min(sp.cases, term.total) if term and term.total is not None else sp.cases
        elif state in ("failed", "budget"):
            counts["succeeded" if state == "budget" else "failed"] += 1
            if state == "budget":
                budget_stopped[sp.index] = message
            # a finished shard's runner said in its termination message how far it got
            done += min(sp.cases, term.done if term and term.done is not None else (obs.done or 0))
        elif state == "running" and (obs.job or {}).get("status", {}).get("active"):
            counts["running"] += 1
            done += min(sp.cases, obs.done or 0)
        else:
            counts["pending"] += 1
            done += min(sp.cases, obs.done or 0)
        # error/timeout cases: the running pod's, else what a finished shard's last attempt reported
        failed_cases += obs.failed_cases if obs.failed_cases is not None else ((term.failed or 0) if term else 0)
    finished = counts["succeeded"] + counts["failed"] == counts["total"]
    fail_fast = spec.failure_policy == "fail" and d.failed
    conds_prev = prev.get("conditions") or []
    conditions = [_condition(conds_prev, "Ready", True, "Planned",
                             f"{counts['total']} shards, concurrency {plan.concurrency} per shard, memory "
                             f"request {fmt_mib(plan.request_bytes)} limit {fmt_mib(plan.limit_bytes)}"
                             + (f" (concurrency lowered from {plan.requested_concurrency} to fit maxPodMemory "
                                f"{fmt_mib(spec.resources.max_pod_memory_bytes)})" if plan.lowered else ""), now)]
    failed_msg = ", ".join(f"s{i}: {r}" for i, (r, _) in sorted(d.failed.items())[:MAX_FAILED_LISTED])
    if finished and not d.failed and budget_stopped:
        phase = "Succeeded"
        conditions.append(_condition(conds_prev, "Complete", True, "BudgetExhausted",
                                     scrub(f"the budget stopped {len(budget_stopped)} shards with {done}/{total_cases} "
                                           "cases done; raise spec.budget to run the missing cases: "
                                           + next(iter(budget_stopped.values()), ""))[:1000], now))
    elif finished and not d.failed:
        phase = "Succeeded"
        conditions.append(_condition(conds_prev, "Complete", True, "Succeeded", "every shard succeeded", now))
    elif (finished or fail_fast) and d.failed:
        # never "Succeeded" with failed shards: the phase says Failed, Complete says whether every shard ran
        partial = spec.failure_policy == "partial" and counts["succeeded"] > 0 and finished
        phase = "Failed"
        msg = scrub(f"{counts['succeeded']}/{counts['total']} shards succeeded; failed: {failed_msg}")
        conditions.append(_condition(conds_prev, "Complete", partial, "PartiallySucceeded" if partial
                                     else "ShardsFailed", msg, now))
        conditions.append(_condition(conds_prev, "Failed", True, "ShardsFailed", msg, now))
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
    return {
        "phase": phase, "observedGeneration": generation,
        "shards": counts,
        "shardSummary": f"{counts['succeeded']}/{counts['total']}",
        "cases": {"total": total_cases, "completed": done, "failed": failed_cases},
        "progress": f"{(100 * done // total_cases) if total_cases else 100}%",
        "plan": {"concurrencyPerShard": plan.concurrency, "memoryRequest": fmt_mib(plan.request_bytes),
                 "memoryLimit": fmt_mib(plan.limit_bytes)},
        "results": {"uri": results_uri, "rows": done},
        "conditions": conditions,
        "shardRetries": d.retries or None,
        "limitShares": {str(i): round(f, 6) for i, f in shares.items()} if shares else None,
        "estimate": estimate(spec, from_spec(spec), source="spec.estimate"),
        "failedShards": [{"index": i, "reason": r, "message": scrub(m)[:300]}
                         for i, (r, m) in sorted(d.failed.items())[:MAX_FAILED_LISTED]] or None,
    }


def reconcile(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, cfg: OperatorConfig, *,
              generation: int | None, results_uri: str, now: str | None = None) -> tuple[dict, Actions]:
    """The new status of a run and the actions to take: per-shard decisions, scheduling, summary."""
    now = now or utc_now()
    acts = Actions()
    d = Decisions(retries={k: dict(v) for k, v in (prev.get("shardRetries") or {}).items()})
    for sp in plan.shards:
        decide_shard(spec, sp, shards.get(sp.index) or ShardObs(sp.index), d.retries.get(str(sp.index), {}), prev,
                     cfg, d, acts)
    shares = schedule(spec, plan, shards, prev, d, acts)
    status = summarize(spec, plan, shards, prev, d, acts, shares, generation=generation, results_uri=results_uri,
                       now=now)
    return status, acts
