"""Every field a BenchmarkRun manifest may hold, and its default in the manifest's own form. Pure.

The parser reads the known fields of each mapping here (so a field it does not know is refused), and
tests hold the CRD's property tree, its defaults and the README against this tree: adding a field
means this tree, :mod:`.types`, :mod:`.parse`, the CRD (``crds/`` and the chart's copy) and the
README, and the test names what was forgotten.

A leaf is the field's default (``NONE``: no default), a nested mapping is a sub-object, ``ListOf`` a
list of sub-objects, ``MapOf`` a mapping from the user's names to sub-objects; ``OPEN`` is a
mapping whose keys are not fixed here (``suiteConfig``: the suite's; ``headers``: the user's).
The suites' own matrix fields are added from the installed suites (:func:`matrix_fields`).
"""

from __future__ import annotations

from .types import (DEFAULT_SUITE, Endpoint, EndpointLimits, Expected, Limits, Matrix, ModelSpec, Output, Resources,
                    Reuse, RunSpec, Sharding, SimModel)


class _Mark:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


NONE = _Mark("NONE")  # no default: optional without one, or required (the parser says which)
OPEN = _Mark("OPEN")  # a mapping with keys of its own (described elsewhere)


class ListOf(dict):
    """A list whose items are mappings with these fields."""


class MapOf(dict):
    """A mapping from names of the user's to mappings with these fields."""


def quantity(n_bytes: int) -> str:
    """A byte count as the Kubernetes quantity a manifest would write (``8Gi``, ``512Mi``)."""
    for unit, size in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n_bytes % size == 0:
            return f"{n_bytes // size}{unit}"
    return str(n_bytes)


TOP = ("apiVersion", "kind", "metadata", "spec", "status")
METADATA = ("name", "namespace", "uid", "labels", "annotations", "generation", "resourceVersion",
            "creationTimestamp", "managedFields", "finalizers", "generateName")
SIMULATION = {"accuracy": SimModel.accuracy, "latencySeconds": SimModel.latency_s}  # per simulated model
MODEL_PARAMS = {  # what a model entry may send with each request, and the type of each
    "temperature": float, "top_p": float, "max_tokens": int, "max_completion_tokens": int, "seed": int,
    "presence_penalty": float, "frequency_penalty": float, "stop": list, "reasoning_effort": str,
}
TOOL_CALLING = ("native", "prompt")  # how a model is offered tools: in the request, or in the prompt (read from text)
MODEL = {"name": NONE, "endpoint": Endpoint.name, "model": NONE, "params": dict.fromkeys(MODEL_PARAMS, NONE),
         "toolCalling": ModelSpec.tool_calling,
         "price": {"inputPerMillionTokens": NONE, "outputPerMillionTokens": NONE}}  # an object in matrix.models
MATRIX = {"models": NONE, "promptTypes": NONE, "difficulties": NONE, "taskTypes": NONE, "instances": Matrix.instances}
ENDPOINT = {
    "name": NONE, "baseURL": NONE, "apiKeySecretRef": {"name": NONE, "key": "api-key"}, "apiKeyEnv": NONE,
    "limits": {"requestsPerMinute": EndpointLimits.requests_per_minute, "tokensPerMinute": NONE,
               "maxConcurrency": NONE},
    "requestTimeoutSeconds": Endpoint.request_timeout_s, "maxRetries": Endpoint.max_retries, "headers": OPEN,
}
SPEC = {
    "suite": DEFAULT_SUITE,
    "suiteConfig": OPEN,
    "matrix": MATRIX,
    "endpoint": {**{k: v for k, v in ENDPOINT.items() if k != "name"}, "qps": NONE},  # the endpoint named default
    "endpoints": ListOf(ENDPOINT),
    "budget": {"maxCostUSD": NONE, "maxTokens": NONE},
    "estimate": {"expectedTokensPerCase": NONE, "expectedRequestsPerCase": NONE,
                 "promptTokenShare": Expected.prompt_token_share},
    "sharding": {"shards": Sharding.shards, "concurrencyPerShard": Sharding.concurrency_per_shard,
                 "maxParallelShards": Sharding.max_parallel_shards},
    "resources": {"footprint": {"sharedMiB": Resources.shared_mib, "perWorkerMiB": Resources.per_worker_mib},
                  "maxPodMemory": quantity(Resources.max_pod_memory_bytes),
                  "scratch": quantity(Resources.scratch_bytes)},
    "cache": {"claimName": NONE, "path": NONE},
    "limits": {"activeDeadlineSeconds": Limits.active_deadline_s, "caseTimeoutSeconds": Limits.case_timeout_s,
               "hangTimeoutSeconds": Limits.hang_timeout_s, "backoffLimit": Limits.backoff_limit},
    "output": {"uri": Output.uri, "credentialsSecretRef": {"name": NONE}, "flushEveryRows": Output.flush_every_rows,
               "flushEverySeconds": Output.flush_every_s},
    "suspend": RunSpec.suspend,
    "simulation": MapOf(SIMULATION),  # by simulated model name
    "failurePolicy": RunSpec.failure_policy,
    "reuse": {"enabled": Reuse.enabled, "sources": NONE},
}


def matrix_fields(suites) -> dict:
    """``spec.matrix``'s fields: the core's and those the given suites add (name -> default)."""
    out = dict(MATRIX)
    for suite in suites:
        out.update(getattr(suite, "matrix_fields", {}))
    return out
