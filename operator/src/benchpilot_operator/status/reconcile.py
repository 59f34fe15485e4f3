"""One pass of the policies over a run: per-shard retries, scheduling, summary."""

from __future__ import annotations

from benchpilot_runner.contract.types import RunSpec

from ..config import OperatorConfig
from ..plan import Plan
from .conditions import utc_now
from .model import Actions, Decisions, ShardObs
from .retries import decide_shard
from .schedule import schedule
from .summary import summarize


def reconcile(spec: RunSpec, plan: Plan, shards: dict[int, ShardObs], prev: dict, cfg: OperatorConfig, *,
              generation: int | None, results_uri: str, now: str | None = None) -> tuple[dict, Actions]:
    """The new status of a run and the actions to take."""
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
