"""PURE: what a run will use before it runs — cases, memory, requests, tokens, cost, time.

Per model: cases × requests per case and tokens per case, from a pilot of real cases
(``benchpilot plan --pilot N``) or from ``spec.estimate``; cost from the model's price; per
endpoint, the wall time its limits imply at best (requests / requestsPerMinute, tokens /
tokensPerMinute): a lower bound, since the run cannot go faster than its slowest endpoint allows.
The operator writes the same figures to ``status.estimate`` before it creates Jobs.

Power: two cells of the matrix (two models under one prompt type, or two prompt types of one model)
are compared on the same items — difficulties × task types × instances of them — so the matrix says
what difference in success rate such a comparison can detect (80 % power, two-sided alpha 0.05,
McNemar's exact test), and how many instances per cell a given difference needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..stats import power as P
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


def power(spec: RunSpec, *, detect: float | None = None, discordance: float = P.DISCORDANCE) -> dict:
    """What the matrix can tell apart: the smallest detectable paired difference in success rate between
    two cells, and (``detect``) the instances per cell a given difference needs. ``detect`` must be at most
    ``discordance`` (a ValueError says so otherwise)."""
    m = spec.matrix
    per_instance = len(m.difficulties) * len(m.task_types)
    pairs = per_instance * m.instances
    out: dict = {"alpha": P.ALPHA, "power": P.POWER, "discordance": discordance, "test": "McNemar exact",
                 "pairsPerComparison": pairs,
                 "detectableDifference": P.detectable_difference(pairs, discordance=discordance),
                 "promptTypes": len(m.prompt_types),
                 "pooledDetectableDifference": P.detectable_difference(pairs * len(m.prompt_types),
                                                                       discordance=discordance)}
    if detect is not None:
        needed = P.pairs_needed(detect, discordance=discordance)
        out["detect"] = {"difference": detect, "pairsNeeded": needed,
                         "instancesPerCell": -(-needed // per_instance), "cases": -(-needed // per_instance)
                         * per_instance * len(m.prompt_types) * len(m.models)}
    return out


def _pts(d: float | None) -> str:
    return "none (too few items)" if d is None else f"{d:.3f} ({d * 100:.1f} points)"


def render_power(pw: dict) -> list[str]:
    lines = [f"power ({pw['power']:.0%}, two-sided alpha {pw['alpha']:g}, {pw['test']}, discordance "
             f"{pw['discordance']:g} assumed: --discordance, or the report's measured 'discordance'):",
             f"  two cells compared on their {pw['pairsPerComparison']} items (a prompt type against the reference "
             f"in one model, two models in one prompt type): smallest detectable difference in success rate "
             f"{_pts(pw['detectableDifference'])}"]
    if pw["promptTypes"] > 1:
        lines.append(f"  two models pooled over the {pw['promptTypes']} prompt types: between "
                     f"{_pts(pw['pooledDetectableDifference'])} and the above (an item repeats once per prompt type)")
    if "detect" in pw:
        d = pw["detect"]
        lines.append(f"  to detect {d['difference']:g}: {d['pairsNeeded']} items per comparison = "
                     f"{d['instancesPerCell']} instances per cell ({d['cases']} cases in this matrix)")
    return lines


def render(est: dict) -> str:
    lines = [f"cases {est['cases']} in {est['shards']} shards; memory request per pod {est['memoryPerPodMiB']} MiB"]
    tail = render_power(est["power"]) if "power" in est else []
    if "note" in est:
        return "\n".join(lines + [est["note"]] + tail)
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
    return "\n".join(lines + tail)
