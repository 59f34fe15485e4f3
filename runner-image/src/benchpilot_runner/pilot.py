"""``benchpilot plan --pilot N``: run N real cases per model, nothing written, and measure them."""

from __future__ import annotations

import asyncio

from .contract.estimate import PerCase
from .health import Heartbeat
from .metrics import RunnerMetrics
from .models import build_clients
from .contract.cases import case_at
from .contract.types import RunSpec
from .cases import CaseProgress, make_runner


async def run_pilot(spec: RunSpec, n: int) -> dict[str, PerCase]:
    """Per model, the mean requests and tokens of ``n`` of its cases, spread over its prompt types."""
    metrics = RunnerMetrics()
    endpoints = build_clients(spec, metrics, Heartbeat(spec.limits.hang_timeout_s))
    runner = make_runner(spec, endpoints=endpoints)
    per_model = spec.total_cases // len(spec.models)
    step = max(1, per_model // n)
    out: dict[str, PerCase] = {}
    try:
        for idx, model in enumerate(spec.models):
            if model.simulated:
                out[model.name] = PerCase(0.0, 0.0, 0.0)
                continue
            cases = [c for c in (case_at(spec.matrix, idx * per_model + k * step) for k in range(min(n, per_model)))
                     if runner.exists(c)] or [case_at(spec.matrix, idx * per_model)]
            progress = [CaseProgress() for _ in cases]
            await asyncio.gather(*(asyncio.wait_for(runner.run(c, p), spec.limits.case_timeout_s)
                                   for c, p in zip(cases, progress)), return_exceptions=True)
            k = len(cases)
            out[model.name] = PerCase(sum(p.turns for p in progress) / k, sum(p.prompt_tokens for p in progress) / k,
                                      sum(p.completion_tokens for p in progress) / k)
    finally:
        await endpoints.close()
    return out
