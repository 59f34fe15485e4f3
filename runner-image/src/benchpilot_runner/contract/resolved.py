"""The resolved form: a spec written back as a complete camelCase manifest, every default filled in
(the pod's ``run.json``), read back by the same parser: ``parse_manifest(to_manifest(s)) == s``. Pure."""

from __future__ import annotations

from typing import Any

from .api import API_GROUP, API_VERSION, KIND
from .registry import find_provider
from .types import Endpoint, ModelSpec, RunSpec


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def _model_doc(m: ModelSpec) -> Any:
    """A model as a string where the string reads back as the same model, else as an object."""
    plain = (m.name == f"{m.provider}/{m.model}" and not m.params and m.price_in_per_mtok is None
             and m.price_out_per_mtok is None and m.tool_calling == ModelSpec.tool_calling)
    if m.simulated or (plain and find_provider(m.provider).model(m.model, "", {}) == m):
        return m.name
    price = _drop_none({"inputPerMillionTokens": m.price_in_per_mtok, "outputPerMillionTokens": m.price_out_per_mtok})
    return _drop_none({"name": m.name, "endpoint": m.endpoint, "model": m.model,
                       "params": {k: list(v) if isinstance(v, tuple) else v for k, v in m.params}, "price": price,
                       "toolCalling": m.tool_calling if m.tool_calling != ModelSpec.tool_calling else None})


def _endpoint_doc(e: Endpoint) -> dict:
    return _drop_none({
        "name": e.name, "baseURL": e.base_url, "apiKeySecretRef": e.api_key_secret, "apiKeyEnv": e.api_key_env,
        "limits": _drop_none({"requestsPerMinute": e.limits.requests_per_minute,
                              "tokensPerMinute": e.limits.tokens_per_minute,
                              "maxConcurrency": e.limits.max_concurrency}),
        "requestTimeoutSeconds": e.request_timeout_s, "maxRetries": e.max_retries, "headers": dict(e.headers)})


def _matrix_doc(spec: RunSpec) -> dict:
    m = spec.matrix
    return {"models": [_model_doc(x) for x in spec.models], "promptTypes": list(m.prompt_types),
            "difficulties": list(m.difficulties), "taskTypes": list(m.task_types), "instances": m.instances,
            **dict(m.suite_fields)}


def to_manifest(spec: RunSpec) -> dict:
    """The spec as a complete camelCase manifest."""
    sh, r, lim, out = spec.sharding, spec.resources, spec.limits, spec.output
    body = {
        "suite": spec.suite,
        "suiteConfig": dict(spec.suite_config),
        "matrix": _matrix_doc(spec),
        "endpoints": [_endpoint_doc(e) for e in spec.endpoints],
        "budget": _drop_none({"maxCostUSD": spec.budget.max_cost_usd, "maxTokens": spec.budget.max_tokens}),
        "estimate": _drop_none({"expectedTokensPerCase": spec.expected.tokens_per_case,
                                "expectedRequestsPerCase": spec.expected.requests_per_case,
                                "promptTokenShare": spec.expected.prompt_token_share}),
        "sharding": {"shards": sh.shards, "concurrencyPerShard": sh.concurrency_per_shard,
                     "maxParallelShards": sh.max_parallel_shards},
        "resources": {"footprint": {"sharedMiB": r.shared_mib, "perWorkerMiB": r.per_worker_mib},
                      "maxPodMemory": str(r.max_pod_memory_bytes), "scratch": str(r.scratch_bytes)},
        "cache": _drop_none({"claimName": spec.cache_claim, "path": spec.cache_path}),
        "limits": {"activeDeadlineSeconds": lim.active_deadline_s, "caseTimeoutSeconds": lim.case_timeout_s,
                   "hangTimeoutSeconds": lim.hang_timeout_s, "backoffLimit": lim.backoff_limit},
        "output": _drop_none({"uri": out.uri, "credentialsSecretRef": {"name": out.credentials_secret}
                              if out.credentials_secret else None,
                              "flushEveryRows": out.flush_every_rows, "flushEverySeconds": out.flush_every_s}),
        "suspend": spec.suspend,
        "simulation": {k: {"accuracy": v.accuracy, "latencySeconds": v.latency_s} for k, v in spec.simulation.items()},
        "failurePolicy": spec.failure_policy,
        "reuse": {"enabled": spec.reuse.enabled, "sources": list(spec.reuse.sources)},
    }
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
            "metadata": _drop_none({"name": spec.name, "namespace": spec.namespace, "uid": spec.uid}),
            "spec": _drop_none(body)}


def from_resolved(data) -> RunSpec:
    """Inverse of :func:`to_manifest`: the one parser, on the resolved manifest."""
    from .parse import parse_manifest

    return parse_manifest(data)
