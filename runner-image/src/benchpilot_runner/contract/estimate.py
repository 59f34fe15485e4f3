"""PURE: what a run will use before it runs — cases, memory, requests, tokens, cost, time.

Per model: cases × requests per case and tokens per case, from a pilot of real cases
(``benchpilot plan --pilot N``) or from ``spec.estimate``; cost from the model's price; per
endpoint, the wall time its limits imply at best (requests / requestsPerMinute, tokens /
tokensPerMinute): a lower bound, since the run cannot go faster than its slowest endpoint allows.
The operator writes the same figures to ``status.estimate`` before it creates Jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .sizing import memory_request_mib
from .types import RunSpec


@dataclass(frozen=True)
class PerCase:
    requests: float
    prompt_tokens: float
    completion_tokens: float


def from_spec(spec: RunSpec) -> dict[str, PerCase] | None:
    """Per model, what ``spec.estimate`` says a case uses (None when it says nothing)."""
    e = spec.expected
    if e.tokens_per_case is None and e.requests_per_case is None:
        return None
    tokens = e.tokens_per_case or 0.0
    out = {}
    for m in spec.models:
        if m.simulated:
            out[m.name] = PerCase(0.0, 0.0, 0.0)
        else:
            out[m.name] = PerCase(e.requests_per_case if e.requests_per_case is not None else 1.0,
                                  tokens * e.prompt_token_share, tokens * (1 - e.prompt_token_share))
    return out


def estimate(spec: RunSpec, per_case: Mapping[str, PerCase] | None, *, source: str) -> dict:
    per_model_cases = spec.total_cases // max(1, len(spec.models))
    memory = memory_request_mib(spec.resources.shared_mib, spec.resources.per_worker_mib,
                                spec.sharding.concurrency_per_shard)
    out: dict = {"cases": spec.total_cases, "shards": spec.sharding.shards, "memoryPerPodMiB": memory,
                 "source": source, "models": {}, "endpoints": {}}
    if per_case is None:
        out["note"] = "give spec.estimate.expectedTokensPerCase (or run benchpilot plan --pilot N) for requests, tokens and cost"
        return out
    endpoints: dict[str, dict] = {}
    total_cost = 0.0
    cost_known = True
    for m in spec.models:
        pc = per_case.get(m.name)
        if pc is None:
            continue
        req = pc.requests * per_model_cases
        pt, ct = pc.prompt_tokens * per_model_cases, pc.completion_tokens * per_model_cases
        cost = m.cost_usd(int(pt), int(ct))
        if cost is None:
            cost_known = False
        else:
            total_cost += cost
        out["models"][m.name] = {"cases": per_model_cases, "requests": round(req), "promptTokens": round(pt),
                                 "completionTokens": round(ct), "costUSD": round(cost, 4) if cost is not None else None}
        if not m.simulated:
            e = endpoints.setdefault(m.endpoint, {"requests": 0.0, "tokens": 0.0})
            e["requests"] += req
            e["tokens"] += pt + ct
    bound = 0.0
    for ep in spec.endpoints:
        if ep.name not in endpoints:
            continue
        e = endpoints[ep.name]
        minutes = [e["requests"] / ep.limits.requests_per_minute if ep.limits.requests_per_minute else 0.0,
                   e["tokens"] / ep.limits.tokens_per_minute if ep.limits.tokens_per_minute else 0.0]
        out["endpoints"][ep.name] = {"requests": round(e["requests"]), "tokens": round(e["tokens"]),
                                     "requestsPerMinute": ep.limits.requests_per_minute,
                                     "tokensPerMinute": ep.limits.tokens_per_minute,
                                     "minMinutes": round(max(minutes), 2)}
        bound = max(bound, *minutes)
    out["requests"] = round(sum(e["requests"] for e in endpoints.values()))
    out["tokens"] = round(sum(e["tokens"] for e in endpoints.values()))
    out["costUSD"] = round(total_cost, 4) if cost_known else None
    out["wallTimeLowerBoundMinutes"] = round(bound, 2)
    if spec.budget.max_cost_usd is not None and cost_known and total_cost > spec.budget.max_cost_usd:
        out["warning"] = (f"the expected cost ${total_cost:.2f} is above budget.maxCostUSD "
                          f"${spec.budget.max_cost_usd:.2f}: the budget will stop the run early")
    return out


def render(est: dict) -> str:
    lines = [f"cases {est['cases']} in {est['shards']} shards; memory request per pod {est['memoryPerPodMiB']} MiB"]
    if "note" in est:
        return "\n".join(lines + [est["note"]])
    lines.append(f"estimate from {est['source']}:")
    for name, m in est["models"].items():
        cost = f"${m['costUSD']:.4f}" if m["costUSD"] is not None else "no price"
        lines.append(f"  {name:24s} {m['cases']:>8} cases {m['requests']:>10} requests "
                     f"{m['promptTokens'] + m['completionTokens']:>12} tokens  {cost}")
    for name, e in est["endpoints"].items():
        lines.append(f"  endpoint {name}: {e['requests']} requests at {e['requestsPerMinute']} RPM, {e['tokens']} tokens"
                     f"{' at ' + str(e['tokensPerMinute']) + ' TPM' if e['tokensPerMinute'] else ''} "
                     f">= {e['minMinutes']} min")
    cost = f"${est['costUSD']:.4f}" if est["costUSD"] is not None else "unknown (a model has no price)"
    lines.append(f"total: {est['requests']} requests, {est['tokens']} tokens, cost {cost}, wall time >= "
                 f"{est['wallTimeLowerBoundMinutes']} min (the endpoints' limits)")
    if est.get("warning"):
        lines.append("warning: " + est["warning"])
    return "\n".join(lines)
