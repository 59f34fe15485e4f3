"""One table of bad manifests, checked thinly at every layer that refuses them.

- the parser (tests/unit/test_spec.py): a SpecError naming ``path``, its message holding ``words``;
- the CRD as an API server applies it (tests/unit/test_crd.py: structural schema and CEL here;
  tests/cluster: the real API server, whose message holds ``crd``): ``crd`` is None where the
  schema cannot say it (a model is a string or an object, so CEL cannot see models), and the
  operator refuses instead (tests/operator: Ready=False reason=InvalidSpec naming ``path``);
- the command line (tests/integration/test_local_sweep.py): exit 2, one line naming ``path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Bad:
    id: str
    change: Callable[[dict], object]
    path: str  # the field the parser names
    words: tuple[str, ...]  # in the parser's message
    crd: str | None  # in a real API server's refusal; None: the CRD admits it (only the operator can refuse)


def _spec(key, value):
    return lambda d: d["spec"].__setitem__(key, value)


def _matrix(key, value):
    return lambda d: d["spec"]["matrix"].__setitem__(key, value)


BAD = [
    Bad("prompt type", _matrix("promptTypes", ["baseline", "clever"]), "spec.matrix.promptTypes[1]",
        ("'clever'", "flawed_semantic_drift"), None),
    Bad("provider", _matrix("models", ["anthropic/claude"]), "spec.matrix.models[0]",
        ("unknown model provider", "sim, openai"), None),
    Bad("sim preset", _matrix("models", ["sim/genius"]), "spec.matrix.models[0]", ("sim/strong",), None),
    Bad("openai without endpoint", _matrix("models", ["openai/gpt"]), "spec.endpoint.baseURL", ("required",), None),
    Bad("more shards than cases", lambda d: d["spec"]["sharding"].__setitem__("shards", 1000),
        "spec.sharding.shards", ("at most",), None),
    Bad("shards not a number", lambda d: d["spec"]["sharding"].__setitem__("shards", "two"), "spec.sharding.shards",
        ("integer",), "spec.sharding.shards"),
    Bad("scratch", _spec("resources", {"scratch": "-1Gi"}), "spec.resources.scratch", ("8Gi",), "should match"),
    Bad("memory", _spec("resources", {"maxPodMemory": "lots"}), "spec.resources.maxPodMemory", ("512Mi",),
        "should match"),
    Bad("case timeout", _spec("limits", {"caseTimeoutSeconds": 0}), "spec.limits.caseTimeoutSeconds", ("> 0",),
        "caseTimeoutSeconds"),
    Bad("name", lambda d: d["metadata"].__setitem__("name", "Bad_Name"), "metadata.name", ("lower-case",), None),
    Bad("long name", lambda d: d["metadata"].__setitem__("name", "x" * 41), "metadata.name", ("at most 40",),
        "at most 40 characters"),
    Bad("api version", lambda d: d.__setitem__("apiVersion", "benchpilot.io/v2"), "apiVersion", ("v1alpha1",), None),
    Bad("kind", lambda d: d.__setitem__("kind", "Job"), "kind", ("BenchmarkRun",), None),
    Bad("flush rows", _spec("output", {"flushEveryRows": 0}), "spec.output.flushEveryRows", (">= 1",),
        "flushEveryRows"),
    Bad("memory output", _spec("output", {"uri": "memory://x"}), "spec.output.uri", ("does not keep results",),
        "filesystem that keeps results"),
    Bad("suspend", _spec("suspend", "yes"), "spec.suspend", ("true or false",), "spec.suspend"),
    Bad("suite name", _spec("suite", "Not A Suite"), "spec.suite", ("not an installed suite",), "should match"),
    Bad("no models", _matrix("models", []), "spec.matrix.models", ("non-empty",), "spec.matrix.models"),
    Bad("zero instances", _matrix("instances", 0), "spec.matrix.instances", (">= 1",), "spec.matrix.instances"),
    Bad("tool success rate", _matrix("toolSuccessRate", 2), "spec.matrix.toolSuccessRate", ("<= 1",),
        "toolSuccessRate"),
    Bad("url", _spec("endpoint", {"baseURL": "llm:8000"}), "spec.endpoint.baseURL", ("http://",), "should match"),
    Bad("qps and rpm", _spec("endpoint", {"baseURL": "http://a/v1", "qps": 1, "limits": {"requestsPerMinute": 5}}),
        "spec.endpoint.qps", ("not both",), "not both"),
    Bad("policy", _spec("failurePolicy", "maybe"), "spec.failurePolicy", ("partial, fail",), "failurePolicy"),
    Bad("no matrix", lambda d: d["spec"].pop("matrix"), "spec.matrix", ("required",), "matrix"),
    Bad("unknown field", _spec("shardz", 3), "spec.shardz", ("unknown field",), None),
]
IDS = [b.id for b in BAD]
