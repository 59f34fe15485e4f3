"""What each shard's Job leads to: re-create it with more memory after an OOM kill, resume it after a
budget raise, or record its failure (in the runner's terms). ``status.shardRetries`` keeps the
bookkeeping, written before the action so a restart in between repeats nothing."""

from __future__ import annotations

import json

from benchpilot_runner.contract.outcomes import Reason
from benchpilot_runner.contract.types import RunSpec

from ..config import OperatorConfig
from ..manifests import OOM_ANNOTATION
from ..plan import fmt_mib, grown_request
from .children import explain_failure, job_state, last_termination, oom_killed
from .model import Actions, CreateJob, Decisions, ShardObs

RETRIED_FAILURES = ("DeadlineExceeded", "BackoffLimitExceeded")  # counted as retries in the metrics


def budget_key(spec: RunSpec) -> str:
    return json.dumps([spec.budget.max_cost_usd, spec.budget.max_tokens])


def decide_shard(spec: RunSpec, sp, obs: ShardObs, rec: dict, prev: dict, cfg: OperatorConfig,
                 d: Decisions, acts: Actions) -> None:
    """One shard's state and what to do about it; writes into ``d`` and ``acts``."""
    i = sp.index
    if rec.get("failed"):  # failed for good in an earlier pass (OOM retries spent)
        d.states[i] = ("failed", rec["failed"], rec.get("message", ""))
        d.failed[i] = (rec["failed"], rec.get("message", ""))
        return
    if obs.job is None:
        d.states[i] = ("missing", "", "")
        return
    state, reason, message = job_state(obs.job)
    memory = int(rec.get("memoryBytes") or sp.request_bytes)
    if state != "succeeded" and (found := replace_after_oom(spec, i, obs, rec, memory, cfg, d, acts)):
        d.states[i] = found
    elif state == "succeeded" and (found := after_budget_stop(spec, i, obs, rec, memory, d, acts)):
        d.states[i] = found
    elif state == "failed":
        d.states[i] = record_failure(i, reason, message, obs, prev, d, acts)
    else:
        d.states[i] = (state, reason, message)


def replace_after_oom(spec: RunSpec, i: int, obs: ShardObs, rec: dict, memory: int, cfg: OperatorConfig,
                      d: Decisions, acts: Actions) -> tuple[str, str, str] | None:
    """An OOM kill: the Job is re-created with memory × the OOM factor (up to maxPodMemory, at most
    maxOomRetries times), then the shard fails. None when no pod of the shard was OOM-killed."""
    job_oom = int(((obs.job.get("metadata") or {}).get("annotations") or {}).get(OOM_ANNOTATION, "0"))
    rec_oom = int(rec.get("oomKilled", 0))
    if rec_oom > job_oom:  # a retry was recorded but the Job not yet replaced (the operator stopped in between)
        acts.create.append(CreateJob(i, memory, rec_oom, replace=True))
        return ("pending", "", "")
    new_oom = sorted(set(oom_killed(obs.pods)) - set(rec.get("oomPods", [])))
    if not new_oom:
        return None
    # each OOMKilled pod counts once, even if it lingers after its Job was replaced
    rec = {**rec, "oomPods": (list(rec.get("oomPods", [])) + new_oom)[-10:]}
    grown = grown_request(memory, spec, cfg)
    if grown is None or rec_oom >= cfg.memory.max_oom_retries:
        why = (f"OOMKilled at {fmt_mib(memory)} (maxPodMemory {fmt_mib(spec.resources.max_pod_memory_bytes)})"
               if grown is None else f"OOMKilled {rec_oom + 1} times; last at {fmt_mib(memory)}")
        d.record(str(i), {**rec, "failed": "OOMKilled", "message": why}, acts)
        d.failed[i] = ("OOMKilled", why)
        acts.events.append(("Warning", "ShardFailed", f"shard {i}: {why}"))
        return ("failed", "OOMKilled", why)
    d.record(str(i), {**rec, "oomKilled": rec_oom + 1, "memoryBytes": grown}, acts)
    acts.create.append(CreateJob(i, grown, rec_oom + 1, replace=True))
    acts.retries.append("OOMKilled")
    acts.events.append(("Warning", "ShardOOMKilled",
                        f"shard {i} was OOMKilled at {fmt_mib(memory)}; re-created with {fmt_mib(grown)} "
                        f"(retry {rec_oom + 1} of {cfg.memory.max_oom_retries})"))
    return ("pending", "", "")


def after_budget_stop(spec: RunSpec, i: int, obs: ShardObs, rec: dict, memory: int, d: Decisions,
                      acts: Actions) -> tuple[str, str, str] | None:
    """A shard the budget stopped is finished, until the budget changes: then it runs its missing cases.
    None when the shard completed for another reason."""
    term = last_termination(obs.pods)
    if not term or term.reason != Reason.BUDGET_EXHAUSTED:
        return None
    bkey = budget_key(spec)
    if rec.get("budgetStop") not in (None, bkey):  # the budget was raised since this shard stopped
        d.record(str(i), {k: v for k, v in rec.items() if k != "budgetStop"}, acts)
        acts.create.append(CreateJob(i, memory, int(rec.get("oomKilled", 0)), replace=True))
        acts.events.append(("Normal", "BudgetRaised", f"shard {i} resumes its missing cases"))
        return ("pending", "", "")
    if rec.get("budgetStop") is None:
        d.record(str(i), {**rec, "budgetStop": bkey}, acts)
    return ("budget", Reason.BUDGET_EXHAUSTED.value, term.message)


def record_failure(i: int, reason: str, message: str, obs: ShardObs, prev: dict, d: Decisions,
                   acts: Actions) -> tuple[str, str, str]:
    """A failed Job, explained in the runner's terms; an event the first time it is seen."""
    reason, message = explain_failure(reason, message, obs.pods)
    d.failed[i] = (reason, message)
    if not any(f.get("index") == i for f in prev.get("failedShards") or []):
        acts.events.append(("Warning", "ShardFailed", f"shard {i} failed: {reason} {message}".strip()))
        if reason in RETRIED_FAILURES:
            acts.retries.append(reason)
    return ("failed", reason, message)
