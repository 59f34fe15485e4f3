"""Which Jobs to create (within maxParallelShards), which to suspend or resume, and each shard's share
of the run's endpoint limits (the allocation rules are in ``shares.py``)."""

from __future__ import annotations

from dataclasses import replace

from benchpilot_runner.contract.types import RunSpec

from ..plan import Plan
from ..shares import allocate
from .model import FINISHED, UNFINISHED, Actions, CreateJob, Decisions, ShardObs


def schedule(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, d: Decisions,
             acts: Actions) -> dict[int, float] | None:
    """Fill ``acts`` with the Jobs to create, suspend or resume; returns the limit shares (None when no
    model uses an endpoint). Replacements decided by the retry policy are already in ``acts.create``."""
    replacing = {c.index for c in acts.create}
    if not spec.suspend and not (spec.failure_policy == "fail" and d.failed):
        acts.create += new_jobs(spec, plan, d)
    shares = None
    if spec.needs_endpoint():
        shares = limit_shares(prev, d, acts)
        acts.create = [replace(c, share=shares.get(c.index, 0.0)) for c in acts.create]
    suspend_or_resume(spec, shards, d, acts, skip=replacing)
    return shares


def new_jobs(spec: RunSpec, plan: Plan, d: Decisions) -> list[CreateJob]:
    """Missing shards in index order, as many as maxParallelShards leaves room for, with the memory and
    OOM count their retries recorded."""
    room = spec.sharding.max_parallel_shards - sum(1 for s in d.states.values() if s[0] in UNFINISHED)
    out = []
    for i in sorted(i for i, s in d.states.items() if s[0] == "missing"):
        if len(out) >= room:
            break
        rec = d.retries.get(str(i), {})
        out.append(CreateJob(i, int(rec.get("memoryBytes") or plan.shards[i].request_bytes),
                             int(rec.get("oomKilled", 0))))
    return out


def limit_shares(prev: dict, d: Decisions, acts: Actions) -> dict[int, float]:
    """Run-wide endpoint limits: each shard's fraction; finished shards release theirs."""
    created = {c.index for c in acts.create}
    holding = {i for i, (st, _, _) in d.states.items() if st in UNFINISHED}
    prev_shares = {int(k): float(v) for k, v in (prev.get("limitShares") or {}).items()}
    waiting = any(st == "missing" and i not in created for i, (st, _, _) in d.states.items())
    return allocate(prev_shares, holding, sorted(created - holding), all_started=not waiting)


def suspend_or_resume(spec: RunSpec, shards: dict[int, ShardObs], d: Decisions, acts: Actions, *,
                      skip: set[int]) -> None:
    """Existing, unfinished Jobs follow spec.suspend (a Job being replaced is left alone)."""
    for i, (state, _, _) in d.states.items():
        job = (shards.get(i) or ShardObs(i)).job
        if job is None or i in skip or state in FINISHED:
            continue
        suspended = bool((job.get("spec") or {}).get("suspend"))
        if spec.suspend and not suspended:
            acts.suspend.append(i)
        elif not spec.suspend and suspended:
            acts.resume.append(i)
