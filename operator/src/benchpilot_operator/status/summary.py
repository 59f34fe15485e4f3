"""Counts, progress, phase and conditions: the status, written in one patch."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchpilot_runner.contract.estimate import estimate, from_spec
from benchpilot_runner.contract.outcomes import Reason
from benchpilot_runner.redact import scrub
from benchpilot_runner.contract.types import RunSpec

from ..plan import Plan, fmt_mib
from .children import last_termination
from .conditions import condition, same_condition
from .model import FINISHED, MAX_FAILED_LISTED, Actions, Decisions, ShardObs


@dataclass
class Progress:
    counts: dict = field(default_factory=dict)  # shards by state
    done: int = 0  # cases with a final outcome (or a row, for running shards)
    failed: int = 0  # cases that ended in error/timeout
    total: int = 0  # the run's cases (fewer than planned when a suite's dataset has fewer)
    budget_stopped: dict = field(default_factory=dict)  # shard -> the runner's message


def progress(plan: Plan, shards: dict[int, ShardObs], d: Decisions) -> Progress:
    p = Progress(counts={"total": len(plan.shards), "pending": 0, "running": 0, "succeeded": 0, "failed": 0})
    for sp in plan.shards:
        state, _, message = d.states[sp.index]
        obs = shards.get(sp.index) or ShardObs(sp.index)
        term = last_termination(obs.pods) if state in FINISHED else None
        # positions the suite's dataset has no case for are not cases: a finished shard's runner says
        # how many cases it really had, and how far it got
        cases = min(sp.cases, term.said.total) if term and term.said.total is not None else sp.cases
        p.total += cases
        if state == "succeeded":
            p.counts["succeeded"] += 1
            p.done += cases
        elif state in ("failed", "budget"):
            p.counts["succeeded" if state == "budget" else "failed"] += 1
            if state == "budget":
                p.budget_stopped[sp.index] = message
            p.done += min(sp.cases, term.said.done if term and term.said.done is not None else (obs.done or 0))
        else:
            running = state == "running" and (obs.job or {}).get("status", {}).get("active")
            p.counts["running" if running else "pending"] += 1
            p.done += min(sp.cases, obs.done or 0)
        # error/timeout cases: the running pod's, else what a finished shard's last attempt reported
        p.failed += obs.failed_cases if obs.failed_cases is not None else ((term.said.failed or 0) if term else 0)
    return p


def planned(spec: RunSpec, plan: Plan, conds_prev: list[dict], now: str) -> dict:
    """The Ready condition: what the plan is, and whether concurrency was lowered to fit memory."""
    return condition(conds_prev, "Ready", True, "Planned",
                     f"{len(plan.shards)} shards, concurrency {plan.concurrency} per shard, memory "
                     f"request {fmt_mib(plan.request_bytes)} limit {fmt_mib(plan.limit_bytes)}"
                     + (f" (concurrency lowered from {plan.requested_concurrency} to fit maxPodMemory "
                        f"{fmt_mib(spec.resources.max_pod_memory_bytes)})" if plan.lowered else ""), now)


def phase_of(spec: RunSpec, p: Progress, d: Decisions, conds_prev: list[dict], now: str) -> tuple[str, list[dict]]:
    """The run's phase and its Complete/Failed conditions: never Succeeded with a failed shard."""
    c = p.counts
    finished = c["succeeded"] + c["failed"] == c["total"]
    fail_fast = spec.failure_policy == "fail" and d.failed
    if finished and not d.failed and p.budget_stopped:
        return "Succeeded", [condition(conds_prev, "Complete", True, Reason.BUDGET_EXHAUSTED.value, scrub(
            f"the budget stopped {len(p.budget_stopped)} shards with {p.done}/{p.total} cases done; raise "
            "spec.budget to run the missing cases: " + next(iter(p.budget_stopped.values()), ""))[:1000], now)]
    if finished and not d.failed:
        return "Succeeded", [condition(conds_prev, "Complete", True, "Succeeded", "every shard succeeded", now)]
    if (finished or fail_fast) and d.failed:
        partial = spec.failure_policy == "partial" and c["succeeded"] > 0 and finished
        listed = ", ".join(f"s{i}: {r}" for i, (r, _) in sorted(d.failed.items())[:MAX_FAILED_LISTED])
        msg = scrub(f"{c['succeeded']}/{c['total']} shards succeeded; failed: {listed}")
        return "Failed", [condition(conds_prev, "Complete", partial, "PartiallySucceeded" if partial
                                    else "ShardsFailed", msg, now),
                          condition(conds_prev, "Failed", True, "ShardsFailed", msg, now)]
    if spec.suspend:
        return "Suspended", []
    if c["running"] > 0:
        return "Running", []
    return ("Pending" if c["succeeded"] + c["failed"] == 0 else "Running"), []


def served_models(shards: dict[int, ShardObs]) -> dict[str, list[str]]:
    """model -> every served model (and fingerprint) that answered it, over the shards' last attempts."""
    out: dict[str, list[str]] = {}
    for i in sorted(shards):
        term = last_termination(shards[i].pods)
        for model, ids in (term.said.served if term else ()):
            seen = out.setdefault(model, [])
            seen.extend(x for x in ids if x not in seen)
    return out


def drift_condition(shards: dict[int, ShardObs], conds_prev: list[dict], now: str) -> list[dict]:
    """``ServedModelChanged`` once a model was answered by more than one served model or fingerprint
    (within a pod, or across pods); nothing while every model was served by one."""
    changed = {m: ids for m, ids in served_models(shards).items() if len(ids) > 1}
    if not changed:
        return []
    said = "; ".join(f"{m}: {', '.join(ids)}" for m, ids in sorted(changed.items()))
    return [condition(conds_prev, "ServedModelChanged", True, "ServedModelChanged",
                      scrub(f"served by more than one model or fingerprint during the run: {said}")[:1000], now)]


def summarize(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, d: Decisions, acts: Actions,
              shares: dict[int, float] | None, *, generation: int | None, results_uri: str, now: str) -> dict:
    p = progress(plan, shards, d)
    conds_prev = prev.get("conditions") or []
    ready = planned(spec, plan, conds_prev, now)
    phase, outcome = phase_of(spec, p, d, conds_prev, now)
    conditions = [ready, *outcome, condition(conds_prev, "Suspended", spec.suspend,
                                             "SuspendedBySpec" if spec.suspend else "NotSuspended",
                                             "spec.suspend is true" if spec.suspend else "", now),
                  *drift_condition(shards, conds_prev, now)]
    drift = conditions[-1] if conditions[-1]["type"] == "ServedModelChanged" else None
    if drift and not same_condition(conds_prev, "ServedModelChanged", "True", "ServedModelChanged", drift["message"]):
        acts.events.append(("Warning", "ServedModelChanged", drift["message"]))
    if plan.lowered and not same_condition(conds_prev, "Ready", "True", "Planned", ready["message"]):
        acts.events.append(("Warning", "ConcurrencyLowered", ready["message"]))
    if prev.get("phase") != phase:
        acts.events.append(("Warning" if phase == "Failed" else "Normal", f"Run{phase}",
                            f"run is {phase}: {p.counts['succeeded']}/{p.counts['total']} shards succeeded, "
                            f"{p.done}/{p.total} cases"))
    return {
        "phase": phase, "observedGeneration": generation,
        "shards": p.counts,
        "shardSummary": f"{p.counts['succeeded']}/{p.counts['total']}",
        "cases": {"total": p.total, "completed": p.done, "failed": p.failed},
        "progress": f"{(100 * p.done // p.total) if p.total else 100}%",
        "plan": {"concurrencyPerShard": plan.concurrency, "memoryRequest": fmt_mib(plan.request_bytes),
                 "memoryLimit": fmt_mib(plan.limit_bytes)},
        "results": {"uri": results_uri, "rows": p.done},
        "conditions": conditions,
        "shardRetries": d.retries or None,
        "limitShares": {str(i): round(f, 6) for i, f in shares.items()} if shares else None,
        "estimate": estimate(spec, from_spec(spec), source="spec.estimate"),
        "failedShards": [{"index": i, "reason": r, "message": scrub(m)[:300]}
                         for i, (r, m) in sorted(d.failed.items())[:MAX_FAILED_LISTED]] or None,
    }
