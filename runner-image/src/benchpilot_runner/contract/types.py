"""The BenchmarkRun spec as frozen dataclasses: the one place each field's default is written.

The parser (:mod:`.parse`) reads defaults from here; the CRD's defaults and the README are checked
against them (tests/unit/test_contract_fields.py). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

DEFAULT_SUITE = "workflow"  # suites are found by name (the benchpilot.suites entry-point group)
DEFAULT_ENDPOINT = "default"
DEFAULT_KEY_ENV = "BENCHPILOT_API_KEY"
GiB = 1024**3


@dataclass(frozen=True)
class SimModel:
    """Parameters of a simulated model (``spec.simulation``, or a preset of the ``sim`` provider)."""

    accuracy: float = 0.8
    latency_s: float = 0.05


@dataclass(frozen=True)
class ModelSpec:
    """One model of the matrix. ``name`` is its label in results, metrics and ``case_id``."""

    name: str
    endpoint: str | None  # the endpoint's name; None for a simulated model
    model: str  # the id sent to the endpoint
    params: tuple[tuple[str, Any], ...] = ()
    price_in_per_mtok: float | None = None  # USD per million prompt tokens
    price_out_per_mtok: float | None = None
    provider: str = "openai"  # the model provider (a registry name: sim, openai, ...)
    tool_calling: str = "native"  # tree.TOOL_CALLING: "prompt" for a model or server without native tool calls

    @property
    def simulated(self) -> bool:
        return self.endpoint is None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.price_in_per_mtok is None and self.price_out_per_mtok is None:
            return 0.0 if self.simulated else None
        return ((self.price_in_per_mtok or 0.0) * prompt_tokens
                + (self.price_out_per_mtok or 0.0) * completion_tokens) / 1e6


@dataclass(frozen=True)
class Matrix:
    models: tuple[str, ...]
    prompt_types: tuple[str, ...]
    difficulties: tuple[str, ...]
    task_types: tuple[str, ...]
    instances: int = 5
    suite_version: str = ""  # part of every case id: the suite's version
    suite_fields: tuple[tuple[str, Any], ...] = ()  # the suite's own matrix fields (workflow: toolSuccessRate)

    @property
    def total(self) -> int:
        return len(self.models) * len(self.prompt_types) * len(self.difficulties) * len(self.task_types) \
            * self.instances

    def suite_field(self, name: str, default: Any = None) -> Any:
        return dict(self.suite_fields).get(name, default)


@dataclass(frozen=True)
class EndpointLimits:
    """Limits of one endpoint for the whole run, summed over all its shards and pods."""

    requests_per_minute: float | None = 600.0
    tokens_per_minute: float | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True)
class Endpoint:
    name: str = DEFAULT_ENDPOINT
    base_url: str | None = None
    api_key_secret: dict | None = None  # {name, key}: the operator turns it into a secretKeyRef
    api_key_env: str | None = None  # explicit variable; else key_env() below
    limits: EndpointLimits = EndpointLimits()
    request_timeout_s: float = 30.0
    max_retries: int = 3
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def key_env(self) -> str:
        """The environment variable the runner reads this endpoint's key from."""
        if self.api_key_env:
            return self.api_key_env
        if self.name == DEFAULT_ENDPOINT:
            return DEFAULT_KEY_ENV
        return f"{DEFAULT_KEY_ENV}_{self.name.upper().replace('-', '_')}"

    @property
    def key_required(self) -> bool:
        """A key was asked for (a Secret reference or a named variable): its absence is an error."""
        return bool(self.api_key_secret or self.api_key_env)


@dataclass(frozen=True)
class Budget:
    max_cost_usd: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Expected:
    """What one case is expected to use, for estimates before a run (``benchpilot plan``, status.estimate)."""

    tokens_per_case: float | None = None
    requests_per_case: float | None = None
    prompt_token_share: float = 0.9  # of the tokens, the share that is prompt (priced as input)


@dataclass(frozen=True)
class Sharding:
    shards: int = 1
    concurrency_per_shard: int = 32
    max_parallel_shards: int = 8


@dataclass(frozen=True)
class Resources:
    shared_mib: float = 250.0
    per_worker_mib: float = 8.0
    max_pod_memory_bytes: int = 8 * GiB
    scratch_bytes: int = 4 * GiB  # a pod's scratch space for what a suite copies in: an emptyDir's sizeLimit


@dataclass(frozen=True)
class Limits:
    active_deadline_s: int = 7200
    case_timeout_s: float = 300.0
    hang_timeout_s: float = 120.0
    backoff_limit: int = 2


@dataclass(frozen=True)
class Output:
    uri: str = "./results"
    credentials_secret: str | None = None
    flush_every_rows: int = 50
    flush_every_s: float = 30.0


@dataclass(frozen=True)
class Reuse:
    """``spec.reuse``: answer identical requests from earlier results instead of the provider (answers/)."""

    enabled: bool = False  # on when sources are given and enabled is not set; this run's own parts always count
    sources: tuple[str, ...] = ()  # result URIs (run folders or roots) whose transcripts may answer


@dataclass(frozen=True)
class RunSpec:
    name: str
    namespace: str
    uid: str | None
    suite: str
    matrix: Matrix
    endpoints: tuple[Endpoint, ...]
    models: tuple[ModelSpec, ...]
    sharding: Sharding = Sharding()
    resources: Resources = Resources()
    limits: Limits = Limits()
    output: Output = Output()
    budget: Budget = Budget()
    expected: Expected = Expected()
    cache_claim: str | None = None
    cache_path: str | None = None
    suspend: bool = False
    simulation: Mapping[str, SimModel] = field(default_factory=dict)
    failure_policy: str = "partial"  # run outcome when some shards fail: "partial" or "fail"
    suite_config: Mapping[str, Any] = field(default_factory=dict)  # the suite's parsed spec.suiteConfig
    reuse: Reuse = Reuse()

    def sim_model(self, model: str) -> SimModel:
        """The parameters of a ``sim/...`` model: a spec override, else its provider's preset."""
        if model in self.simulation:
            return self.simulation[model]
        from .registry import find_provider

        spec = self.model(model)
        return find_provider(spec.provider).preset(spec.model)

    @cached_property
    def _by_name(self) -> tuple[dict[str, ModelSpec], dict[str, Endpoint]]:
        return {m.name: m for m in self.models}, {e.name: e for e in self.endpoints}

    def model(self, name: str) -> ModelSpec:
        """The model named ``name`` (called several times per case: a lookup, not a scan)."""
        return self._by_name[0][name]

    def endpoint(self, name: str) -> Endpoint:
        return self._by_name[1][name]

    @property
    def total_cases(self) -> int:
        return self.matrix.total

    def needs_endpoint(self) -> bool:
        return any(not m.simulated for m in self.models)

    def to_resolved(self) -> dict:
        """The spec with every default filled in, as a manifest (the pod's run.json), read back by the
        same parser as any manifest: one parser for every path in."""
        from .resolved import to_manifest

        return to_manifest(self)
