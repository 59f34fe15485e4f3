"""The contract shared by the operator and the runner: the BenchmarkRun spec, cases and shards.

Pure code: no I/O. The operator imports this module to plan shards; the runner imports it to know
which cases are its own. Both must agree on the expansion order and on ``case_id``, so both call
the functions here and nothing else. Text and files are turned into data by :mod:`.manifest`.

One parser (:func:`parse_manifest`) validates every way a spec arrives: the manifest, the resolved
copy the operator mounts into pods (:meth:`RunSpec.to_resolved` is a manifest with every default
filled in), and command-line overrides (:func:`with_overrides`). Unknown fields are errors, numbers
must be finite, names cannot escape a path, and messages quote a bounded prefix of the value.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import reprlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable, Iterator, Mapping

# ---- constants both sides share (the one place they are defined; the chart's values.yaml is checked
# against them by tests/chart)
API_GROUP = "benchpilot.io"
API_VERSION = "v1alpha1"
KIND = "BenchmarkRun"
PLURAL = "benchmarkruns"
SHARD_CASES_METRIC = "benchpilot_shard_cases"  # what the operator scrapes from runner pods for progress
BASE_MIB = 160.0  # a runner process before the cache and workers (measured by `benchpilot footprint`)
HEADROOM_RATIO = 0.2
HEADROOM_MIN_MIB = 64.0
LIMIT_FACTOR = 1.5  # memory limit = request × this, capped at maxPodMemory

DEFAULT_SUITE = "workflow"  # suites are found by name: benchpilot_runner.suites (entry-point group)
WORKFLOW_VERSION = "workflow-1"  # the workflow suite's version (case ids made before suites were plug-ins)
MODEL_PROVIDERS = ("sim", "openai")
SIM_PRESETS = {
    # name: (accuracy, mean latency in seconds)
    "oracle": (1.0, 0.05),
    "strong": (0.9, 0.08),
    "medium": (0.7, 0.08),
    "weak": (0.4, 0.05),
    "random": (0.1, 0.02),
}
STATUSES = ("success", "partial", "failure", "error", "timeout")
FINAL_STATUSES = ("success", "partial", "failure")  # the model's outcome: never run again
RETRY_STATUSES = ("error", "timeout")  # the infrastructure's: a rerun or a new attempt retries them
CONFIG_ERROR_EXIT = 2  # the runner's exit code for a configuration error (the Job fails fast on it)
INCOMPLETE_EXIT = 3  # cases left without a final outcome (infrastructure errors); a rerun retries them
DEFAULT_ENDPOINT = "default"
DEFAULT_KEY_ENV = "BENCHPILOT_API_KEY"
# Output filesystems that keep what is written (fsspec protocols); memory://, http:// etc. do not.
OUTPUT_PROTOCOLS = ("file", "local", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hdfs",
                    "webhdfs", "sftp")
TOOL_CALLING = ("native", "prompt")  # how a model is offered tools: in the request, or in the prompt (read from text)
MODEL_PARAMS = {  # what a model entry may send with each request, and the type of each
    "temperature": float, "top_p": float, "max_tokens": int, "max_completion_tokens": int, "seed": int,
    "presence_penalty": float, "frequency_penalty": float, "stop": list, "reasoning_effort": str,
}

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_UID_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$")
_ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$")
_MEM_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEM_UNITS = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
MAX_NAME = 63
MAX_MODEL_NAME = 200
MAX_STRING = 2048

_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict, _short.maxlevel = 60, 60, 4, 4, 2
_short.maxtuple = _short.maxset = 4


def show(value: Any) -> str:
    """A bounded, printable rendering of a value for error messages (never the whole of a huge one)."""
    try:
        return _short.repr(value)
    except Exception:  # noqa: BLE001 - a value too strange to print is shown by its type only
        return f"<{type(value).__name__}>"


class SpecError(ValueError):
    """An invalid manifest: names the field, the value seen, and what would be right."""

    def __init__(self, path: str, message: str):
        path = path if len(path) <= 200 else path[:200] + "..."
        super().__init__(f"{path}: {message}")
        self.path = path
        self.detail = message


# ----------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SimModel:
    """Parameters of a built-in simulated model."""

    accuracy: float
    latency_s: float


@dataclass(frozen=True)
class ModelSpec:
    """One model of the matrix. ``name`` is its label in results, metrics and ``case_id``."""

    name: str
    endpoint: str | None  # the endpoint's name; None for a simulated model
    model: str  # the id sent to the endpoint
    params: tuple[tuple[str, Any], ...] = ()
    price_in_per_mtok: float | None = None  # USD per million prompt tokens
    price_out_per_mtok: float | None = None
    tool_calling: str = "native"  # TOOL_CALLING: "prompt" for a model or server without native tool calls

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
    tool_success_rate: float = 0.8  # the workflow suite's (kept in the matrix, where manifests have it)
    suite_version: str = WORKFLOW_VERSION  # part of every case id; the suite's version

    @property
    def total(self) -> int:
        return len(self.models) * len(self.prompt_types) * len(self.difficulties) * len(self.task_types) \
            * self.instances


@dataclass(frozen=True)
class EndpointLimits:
    """Limits of one endpoint for the whole run, summed over all its shards and pods."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_concurrency: int | None = None


@dataclass(frozen=True)
class Endpoint:
    name: str = DEFAULT_ENDPOINT
    base_url: str | None = None
    api_key_secret: dict | None = None  # {name, key}: the operator turns it into a secretKeyRef
    api_key_env: str | None = None  # explicit variable; else key_env() below
    limits: EndpointLimits = EndpointLimits(requests_per_minute=600.0)
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
    max_pod_memory_bytes: int = 8 * 1024**3
    # a pod's scratch space for what a suite copies in (a remote suiteConfig.dataset): an emptyDir's sizeLimit
    scratch_bytes: int = 4 * 1024**3


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
class RunSpec:
    name: str
    namespace: str
    uid: str | None
    suite: str
    matrix: Matrix
    endpoints: tuple[Endpoint, ...]
    models: tuple[ModelSpec, ...]
    sharding: Sharding
    resources: Resources
    limits: Limits
    output: Output
    budget: Budget = Budget()
    expected: Expected = Expected()
    cache_claim: str | None = None
    cache_path: str | None = None
    suspend: bool = False
    simulation: Mapping[str, SimModel] = field(default_factory=dict)
    failure_policy: str = "partial"  # run outcome when some shards fail: "partial" or "fail"
    suite_config: Mapping[str, Any] = field(default_factory=dict)  # the suite's parsed spec.suiteConfig

    def sim_model(self, model: str) -> SimModel:
        """The parameters of a ``sim/...`` model: a spec override, else a preset."""
        if model in self.simulation:
            return self.simulation[model]
        preset = self.model(model).model
        acc, lat = SIM_PRESETS[preset]
        return SimModel(accuracy=acc, latency_s=lat)

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
        """The spec with every default filled in, as a manifest (the pod's run.json).

        It is read back by the same :func:`parse_manifest` as any manifest: one parser for every path in.
        """
        return to_manifest(self)


def from_resolved(data: Mapping) -> RunSpec:
    """Inverse of :meth:`RunSpec.to_resolved`: the one parser, on the resolved manifest."""
    return parse_manifest(data)


# ----------------------------------------------------------------------------- parsing


def parse_memory(value: Any, path: str) -> int:
    """A Kubernetes quantity such as ``8Gi`` or ``512Mi`` in bytes."""
    m = _MEM_RE.match(str(value).strip()) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if not m or len(str(value)) > 40:
        raise SpecError(path, f"{show(value)} is not a memory quantity; use e.g. 512Mi or 8Gi")
    number = int(float(m.group(1)) * _MEM_UNITS[m.group(2)])
    if not 0 < number <= 64 * 1024**4:
        raise SpecError(path, f"{show(value)} is out of range; use between 1 byte and 64Ti")
    return number


class _Fields:
    """Reads one mapping of the manifest, checking types and ranges; paths name the field.

    Unknown fields are refused before anything else is read, so a misspelt or unsupported
    section is named as such rather than producing a message about some other field.
    """

    def __init__(self, data: Any, path: str, known: Iterable[str]):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(path or "manifest", f"expected a mapping, got {type(data).__name__} {show(data)}")
        self.data, self.path = data, path
        known = tuple(known)
        for key in data:
            if not isinstance(key, str):
                raise SpecError(path or "manifest", f"key {show(key)} is not a string")
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise SpecError(self._p(unknown[0]), f"unknown field; known fields here: {', '.join(known)}")

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def _get(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        return default if value is None else value  # null means unset, as in Kubernetes

    def number(self, key: str, default: float | None, *, minimum: float | None = None,
               maximum: float | None = None, integer: bool = False, exclusive_min: bool = False) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        return check_number(value, self._p(key), minimum=minimum, maximum=maximum, integer=integer,
                            exclusive_min=exclusive_min)

    def string(self, key: str, default: str | None, *, pattern: re.Pattern | None = None,
               allowed: Iterable[str] | None = None, hint: str = "", max_len: int = MAX_NAME) -> str | None:
        value = self._get(key, default)
        p = self._p(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise SpecError(p, f"{show(value)} is not a non-empty string")
        if len(value) > max_len:
            raise SpecError(p, f"{show(value)} is {len(value)} characters long; at most {max_len} allowed")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise SpecError(p, f"{show(value)} contains control characters")
        if allowed is not None and value not in allowed:
            raise SpecError(p, f"{show(value)} is not allowed; allowed: {', '.join(allowed)}")
        if pattern is not None and not pattern.match(value):
            raise SpecError(p, f"{show(value)} is not valid{hint}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise SpecError(self._p(key), f"{show(value)} is not true or false")
        return value

    def sub(self, key: str, known: Iterable[str]) -> "_Fields":
        return _Fields(self.data.get(key), self._p(key), known)

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string_list(self, key: str, allowed: Iterable[str] | None, default: Iterable[str] | None = None,
                    what: str = "value") -> tuple[str, ...]:
        value = self.data.get(key)
        p = self._p(key)
        if value is None:
            if default is None:
                raise SpecError(p, f"is required: a list of {what}s"
                                   + (f" from {', '.join(allowed)}" if allowed else ""))
            return tuple(default)
        if not isinstance(value, list) or not value:
            raise SpecError(p, f"{show(value)} is not a non-empty list of {what}s")
        if len(value) > 1000:
            raise SpecError(p, f"has {len(value)} entries; at most 1000 allowed")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{p}[{i}]", f"{show(item)} is not a string")
            if allowed is not None and item not in allowed:
                raise SpecError(f"{p}[{i}]", f"{show(item)} is not a known {what}; allowed: {', '.join(allowed)}")
            if item in seen:
                raise SpecError(f"{p}[{i}]", f"{show(item)} appears twice")
            seen.add(item)
        return tuple(value)


def check_number(value: Any, path: str, *, minimum: float | None = None, maximum: float | None = None,
                 integer: bool = False, exclusive_min: bool = False) -> Any:
    """A finite number (an integer when ``integer``) within bounds, or a SpecError naming ``path``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(path, f"{show(value)} is not {kind}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(path, f"{show(value)} is not a finite number")
    if integer and isinstance(value, float) and not value.is_integer():
        raise SpecError(path, f"{show(value)} is not {kind}")
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        raise SpecError(path, f"{show(value)} is too small; must be {'>' if exclusive_min else '>='} {minimum:g}")
    if maximum is not None and value > maximum:
        raise SpecError(path, f"{show(value)} is too large; must be <= {maximum:g}")
    return int(value) if integer else float(value)


def check_output_uri(value: Any, path: str) -> str:
    """An output location that keeps what is written: a local path or a persistent fsspec protocol."""
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise SpecError(path, f"{show(value)} is not a usable output URI (a path or e.g. s3://bucket/prefix)")
    if any(ord(ch) < 32 for ch in value) or "::" in value:
        raise SpecError(path, f"{show(value)} is not a usable output URI (control characters or a chained URL)")
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if m and m.group(1).lower() not in OUTPUT_PROTOCOLS:
        raise SpecError(path, f"{show(value)}: protocol {m.group(1)!r} does not keep results; "
                              f"use a path or one of {', '.join(p + '://' for p in OUTPUT_PROTOCOLS)}")
    return value


def _parse_models(mx: _Fields, simulation: Mapping[str, Any]) -> tuple[ModelSpec, ...]:
    raw = mx.raw("models")
    p = mx._p("models")
    if raw is None:
        raise SpecError(p, "is required: a list of models (sim/<preset>, openai/<id>, or "
                           "{name, endpoint, model, params, price, toolCalling})")
    if not isinstance(raw, list) or not raw:
        raise SpecError(p, f"{show(raw)} is not a non-empty list of models")
    if len(raw) > 1000:
        raise SpecError(p, f"has {len(raw)} entries; at most 1000 allowed")
    out: list[ModelSpec] = []
    for i, item in enumerate(raw):
        path = f"{p}[{i}]"
        if isinstance(item, str):
            m = _model_from_string(item, path, simulation)
        elif isinstance(item, Mapping):
            m = _model_from_object(_Fields(item, path, ("name", "endpoint", "model", "params", "price",
                                                        "toolCalling")), path)
        else:
            raise SpecError(path, f"{show(item)} is not a model name or a model object")
        if any(o.name == m.name for o in out):
            raise SpecError(path, f"{show(m.name)} appears twice")
        out.append(m)
    return tuple(out)


def _check_model_name(name: str, path: str) -> None:
    if len(name) > MAX_MODEL_NAME:
        raise SpecError(path, f"{show(name)} is {len(name)} characters long; at most {MAX_MODEL_NAME} allowed")
    if not _MODEL_RE.match(name) or ".." in name:
        raise SpecError(path, f"{show(name)} is not a valid model name (letters, digits and ._:/@+-)")


def _model_from_string(model: str, path: str, simulation: Mapping[str, Any]) -> ModelSpec:
    _check_model_name(model, path)
    if "/" not in model:
        raise SpecError(path, f"{show(model)} is not a model; write <provider>/<model>, providers: "
                              f"{', '.join(MODEL_PROVIDERS)} (e.g. sim/strong, openai/gpt-4o-mini), or an object "
                              "{name, endpoint, model}")
    provider, name = model.split("/", 1)
    if provider not in MODEL_PROVIDERS:
        raise SpecError(path, f"unknown model provider {show(provider)} in {show(model)}; "
                              f"allowed providers: {', '.join(MODEL_PROVIDERS)}")
    if provider == "sim":
        if model not in simulation and name not in SIM_PRESETS:
            raise SpecError(path, f"unknown simulated model {show(model)}; built-in: "
                                  f"{', '.join('sim/' + p for p in SIM_PRESETS)}, or define it under spec.simulation")
        return ModelSpec(name=model, endpoint=None, model=name)
    return ModelSpec(name=model, endpoint=DEFAULT_ENDPOINT, model=name)


def _model_from_object(f: _Fields, path: str) -> ModelSpec:
    name = f.string("name", None, max_len=MAX_MODEL_NAME)
    if name is None:
        raise SpecError(f"{path}.name", "is required: the model's label in results and metrics")
    _check_model_name(name, f"{path}.name")
    if name.startswith("sim/"):
        raise SpecError(f"{path}.name", f"{show(name)}: simulated models are plain strings (sim/<preset>)")
    endpoint = f.string("endpoint", DEFAULT_ENDPOINT, pattern=_NAME_RE, hint="; an endpoint name")
    model = f.string("model", name.split("/", 1)[-1], max_len=MAX_MODEL_NAME)
    params = f.sub("params", tuple(MODEL_PARAMS))
    checked: list[tuple[str, Any]] = []
    for key, kind in MODEL_PARAMS.items():
        if not params.has(key):
            continue
        pp = params._p(key)
        if kind is float:
            value = params.number(key, None, minimum=-100.0, maximum=100.0)
        elif kind is int:
            value = params.number(key, None, minimum=0, maximum=10_000_000, integer=True)
        elif kind is str:
            value = params.string(key, None)
        else:
            value = params.raw(key)
            if not isinstance(value, list) or len(value) > 8 or not all(isinstance(v, str) and len(v) <= 64
                                                                         for v in value):
                raise SpecError(pp, f"{show(value)} is not a list of at most 8 short strings")
            value = tuple(value)
        checked.append((key, value))
    price = f.sub("price", ("inputPerMillionTokens", "outputPerMillionTokens"))
    return ModelSpec(name=name, endpoint=endpoint, model=model, params=tuple(checked),
                     tool_calling=_tool_calling(f, path),
                     price_in_per_mtok=price.number("inputPerMillionTokens", None, minimum=0.0, maximum=1e6),
                     price_out_per_mtok=price.number("outputPerMillionTokens", None, minimum=0.0, maximum=1e6))


def _tool_calling(f: _Fields, path: str) -> str:
    value = f.raw("toolCalling")
    if value is None:
        return "native"
    if not isinstance(value, str) or value not in TOOL_CALLING:
        raise SpecError(f"{path}.toolCalling", f"{show(value)} is not allowed; allowed: {', '.join(TOOL_CALLING)} "
                                               "(native: tools in the request; prompt: tools in the prompt, "
                                               "calls read from the answer's text)")
    return value


_ENDPOINT_FIELDS = ("name", "baseURL", "apiKeySecretRef", "apiKeyEnv", "limits", "requestTimeoutSeconds",
                    "maxRetries", "headers")


def _parse_endpoint(f: _Fields, path: str, *, legacy: bool) -> Endpoint:
    """One endpoint; ``legacy`` is the single ``spec.endpoint`` (named default, with ``qps``)."""
    if legacy:
        name = DEFAULT_ENDPOINT
    else:
        name = f.string("name", None, pattern=_NAME_RE, hint="; a lower-case DNS label such as openai")
        if name is None:
            raise SpecError(f"{path}.name", "is required")
    ref = f.sub("apiKeySecretRef", ("name", "key"))
    secret = None
    if ref.data:
        secret = {"name": ref.string("name", None, pattern=_NAME_RE, hint="; a Secret name"),
                  "key": ref.string("key", "api-key", pattern=re.compile(r"^[-._a-zA-Z0-9]+$"),
                                    hint="; a Secret key")}
        if secret["name"] is None:
            raise SpecError(f"{path}.apiKeySecretRef.name", "is required")
    base_url = f.string("baseURL", None, pattern=_URL_RE, max_len=MAX_STRING,
                        hint="; use an http:// or https:// URL such as http://llm:8000/v1")
    lim = f.sub("limits", ("requestsPerMinute", "tokensPerMinute", "maxConcurrency"))
    rpm = lim.number("requestsPerMinute", None, minimum=0.0, maximum=1e7, exclusive_min=True)
    if legacy and f.has("qps"):
        if rpm is not None:
            raise SpecError(f"{path}.qps", "give either qps or limits.requestsPerMinute, not both")
        rpm = 60.0 * f.number("qps", None, minimum=0.0, maximum=100000.0, exclusive_min=True)
    limits = EndpointLimits(
        requests_per_minute=rpm if rpm is not None else 600.0,
        tokens_per_minute=lim.number("tokensPerMinute", None, minimum=0.0, maximum=1e10, exclusive_min=True),
        max_concurrency=lim.number("maxConcurrency", None, minimum=1, maximum=100000, integer=True))
    hdrs = f.raw("headers")
    headers: list[tuple[str, str]] = []
    if hdrs is not None:
        if not isinstance(hdrs, Mapping) or len(hdrs) > 32:
            raise SpecError(f"{path}.headers", f"{show(hdrs)} is not a mapping of at most 32 headers")
        for k, v in hdrs.items():
            hp = f"{path}.headers.{show(k)}"
            if not isinstance(k, str) or not _HEADER_RE.match(k) or len(k) > 64:
                raise SpecError(hp, "is not a valid header name")
            if k.lower() in ("authorization", "content-type", "content-length", "host", "api-key", "x-api-key"):
                raise SpecError(hp, "is set by benchpilot; give the key with apiKeySecretRef or apiKeyEnv")
            if not isinstance(v, str) or len(v) > 1024 or any(ord(ch) < 32 for ch in v):
                raise SpecError(hp, f"{show(v)} is not a header value (a string without line breaks)")
            headers.append((k, v))
    return Endpoint(
        name=name, base_url=base_url.rstrip("/") if base_url else None, api_key_secret=secret,
        api_key_env=f.string("apiKeyEnv", None, pattern=_ENV_RE, hint="; an environment variable name"),
        limits=limits,
        request_timeout_s=f.number("requestTimeoutSeconds", 30.0, minimum=0.0, maximum=3600.0, exclusive_min=True),
        max_retries=f.number("maxRetries", 3, minimum=0, maximum=20, integer=True),
        headers=tuple(sorted(headers)),
    )


def _parse_endpoints(s: _Fields) -> tuple[Endpoint, ...]:
    out: list[Endpoint] = []
    if s.has("endpoint"):
        out.append(_parse_endpoint(s.sub("endpoint", (*_ENDPOINT_FIELDS, "qps")), "spec.endpoint", legacy=True))
    raw = s.raw("endpoints")
    if raw is not None:
        if not isinstance(raw, list) or len(raw) > 64:
            raise SpecError("spec.endpoints", f"{show(raw)} is not a list of at most 64 endpoints")
        for i, item in enumerate(raw):
            path = f"spec.endpoints[{i}]"
            ep = _parse_endpoint(_Fields(item, path, _ENDPOINT_FIELDS), path, legacy=False)
            if any(o.name == ep.name for o in out):
                raise SpecError(f"{path}.name", f"{ep.name!r} is defined twice"
                                + (" (spec.endpoint is the endpoint named default)" if ep.name == DEFAULT_ENDPOINT
                                   else ""))
            out.append(ep)
    return tuple(out)


def find_suite(name: str):
    """The installed suite named ``name`` (its vocabulary and configuration rules), or a SpecError listing them."""
    from . import suites  # the registry: names to suite objects (entry points), loaded on first use

    try:
        return suites.get(name)
    except suites.UnknownSuite as exc:
        raise SpecError("spec.suite", str(exc)) from None


Fields = _Fields  # what a suite's parse_config reads spec.suiteConfig with


_SPEC_FIELDS = ("suite", "suiteConfig", "matrix", "endpoint", "endpoints", "budget", "estimate", "sharding",
                "resources", "cache", "limits", "output", "suspend", "simulation", "failurePolicy")


def parse_manifest(doc: Any, *, namespace_default: str = "default") -> RunSpec:
    """Validate a BenchmarkRun manifest (already parsed YAML/JSON) and fill in the defaults."""
    top = _Fields(doc, "", ("apiVersion", "kind", "metadata", "spec", "status"))
    api = top.string("apiVersion", None, max_len=100)
    if api != f"{API_GROUP}/{API_VERSION}":
        raise SpecError("apiVersion", f"{show(api)} is not supported; use {API_GROUP}/{API_VERSION}")
    kind = top.string("kind", None, max_len=100)
    if kind != KIND:
        raise SpecError("kind", f"{show(kind)} is not supported; use {KIND}")
    meta = _Fields(top.raw("metadata"), "metadata", ("name", "namespace", "uid", "labels", "annotations",
                                                    "generation", "resourceVersion", "creationTimestamp",
                                                    "managedFields", "finalizers", "generateName"))
    name = meta.string("name", None)
    if name is None:
        raise SpecError("metadata.name", "is required")
    if len(name) > 40 or not _NAME_RE.match(name):
        raise SpecError("metadata.name", f"{show(name)} must be lower-case letters, digits and '-', "
                                         "start and end alphanumeric, at most 40 characters")
    namespace = meta.string("namespace", namespace_default, pattern=_NAME_RE, hint="; use a DNS label")
    uid = meta.string("uid", None, pattern=_UID_RE,
                      hint="; a uid is letters, digits, '-', '_' and '.', starting and ending alphanumeric")
    if top.raw("spec") is None:
        raise SpecError("spec", "is required")
    s = _Fields(top.raw("spec"), "spec", _SPEC_FIELDS)
    suite_name = s.string("suite", DEFAULT_SUITE)
    suite = find_suite(suite_name)
    if s.has("suiteConfig") and not isinstance(s.raw("suiteConfig"), Mapping):
        raise SpecError("spec.suiteConfig", f"{show(s.raw('suiteConfig'))} is not a mapping")
    config = _Fields(s.raw("suiteConfig"), "spec.suiteConfig", suite.config_fields)
    try:
        suite_config = dict(suite.parse_config(config))
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plug-in's bug is a refusal naming it, never a traceback
        raise SpecError("spec.suiteConfig", f"suite {suite_name!r} could not read it: "
                                            f"{type(exc).__name__}: {show(str(exc))}") from None
    vocab = suite.vocabulary

    sim_raw = s.raw("simulation")
    if sim_raw is not None and not isinstance(sim_raw, Mapping):
        raise SpecError("spec.simulation", f"expected a mapping, got {type(sim_raw).__name__} {show(sim_raw)}")
    simulation: dict[str, SimModel] = {}
    for key in list(sim_raw or {}):
        p = f"spec.simulation.{show(key)}"
        if not isinstance(key, str) or not key.startswith("sim/") or not _MODEL_RE.match(key) \
                or len(key) > MAX_MODEL_NAME:
            raise SpecError(p, "simulated model names start with 'sim/' (letters, digits and ._:/@+-)")
        f = _Fields(sim_raw[key], f"spec.simulation.{key}", ("accuracy", "latencySeconds"))
        simulation[key] = SimModel(
            accuracy=f.number("accuracy", 0.8, minimum=0.0, maximum=1.0),
            latency_s=f.number("latencySeconds", 0.05, minimum=0.0, maximum=600.0),
        )

    if s.raw("matrix") is None:
        raise SpecError("spec.matrix", "is required: models, promptTypes, difficulties, taskTypes")
    mx = s.sub("matrix", ("models", "promptTypes", "difficulties", "taskTypes", "instances", "toolSuccessRate"))
    models = _parse_models(mx, simulation)
    matrix = Matrix(
        models=tuple(m.name for m in models),
        prompt_types=mx.string_list("promptTypes", vocab.prompt_types, what=f"{suite_name} prompt type"),
        difficulties=mx.string_list("difficulties", vocab.difficulties,
                                    default=vocab.default_difficulties or vocab.difficulties[:1],
                                    what=f"{suite_name} difficulty"),
        task_types=mx.string_list("taskTypes", vocab.task_types, default=vocab.default_task_types or vocab.task_types,
                                  what=f"{suite_name} task type"),
        instances=mx.number("instances", 5, minimum=1, maximum=1_000_000, integer=True),
        tool_success_rate=mx.number("toolSuccessRate", 0.8, minimum=0.0, maximum=1.0),
        suite_version=suite.version,
    )
    if matrix.total > 100_000_000:
        raise SpecError("spec.matrix", f"expands to {matrix.total} cases; at most 100000000 allowed")

    endpoints = _parse_endpoints(s)
    names = {e.name for e in endpoints}
    for i, m in enumerate(models):
        if m.simulated or m.endpoint in names:
            continue
        if m.endpoint == DEFAULT_ENDPOINT:
            raise SpecError("spec.endpoint.baseURL", f"is required for model {show(m.name)} (it uses the endpoint "
                                                     "named default); or give the model an endpoint from "
                                                     "spec.endpoints")
        raise SpecError(f"spec.matrix.models[{i}].endpoint",
                        f"{show(m.endpoint)} is not an endpoint of spec.endpoints; defined: "
                        f"{', '.join(sorted(names)) or 'none'}")
    for e in endpoints:
        used = any(m.endpoint == e.name for m in models)
        if used and not e.base_url:
            where = "spec.endpoint" if e.name == DEFAULT_ENDPOINT and s.has("endpoint") else \
                f"spec.endpoints[{[x.name for x in endpoints].index(e.name)}]"
            raise SpecError(f"{where}.baseURL", f"is required for the models of endpoint {e.name!r}")

    bud = s.sub("budget", ("maxCostUSD", "maxTokens"))
    budget = Budget(max_cost_usd=bud.number("maxCostUSD", None, minimum=0.0, maximum=1e9, exclusive_min=True),
                    max_tokens=bud.number("maxTokens", None, minimum=1, maximum=10**15, integer=True))

    est = s.sub("estimate", ("expectedTokensPerCase", "expectedRequestsPerCase", "promptTokenShare"))
    expected = Expected(
        tokens_per_case=est.number("expectedTokensPerCase", None, minimum=0.0, maximum=1e9),
        requests_per_case=est.number("expectedRequestsPerCase", None, minimum=0.0, maximum=1e6),
        prompt_token_share=est.number("promptTokenShare", 0.9, minimum=0.0, maximum=1.0))

    sh = s.sub("sharding", ("shards", "concurrencyPerShard", "maxParallelShards"))
    sharding = Sharding(
        shards=sh.number("shards", 1, minimum=1, maximum=10000, integer=True),
        concurrency_per_shard=sh.number("concurrencyPerShard", 32, minimum=1, maximum=4096, integer=True),
        max_parallel_shards=sh.number("maxParallelShards", 8, minimum=1, maximum=10000, integer=True),
    )

    rs = s.sub("resources", ("footprint", "maxPodMemory", "scratch"))
    fp = rs.sub("footprint", ("sharedMiB", "perWorkerMiB"))
    resources = Resources(
        shared_mib=fp.number("sharedMiB", 250.0, minimum=0.0, maximum=1024.0 * 1024),
        per_worker_mib=fp.number("perWorkerMiB", 8.0, minimum=0.0, maximum=1024.0 * 64),
        max_pod_memory_bytes=parse_memory(rs.raw("maxPodMemory") if rs.has("maxPodMemory") else "8Gi",
                                          "spec.resources.maxPodMemory"),
        scratch_bytes=parse_memory(rs.raw("scratch") if rs.has("scratch") else "4Gi", "spec.resources.scratch"),
    )

    cache = s.sub("cache", ("claimName", "path"))
    cache_claim = cache.string("claimName", None, pattern=_NAME_RE, hint="; a PersistentVolumeClaim name")
    cache_path = cache.string("path", None, max_len=MAX_STRING)

    lim = s.sub("limits", ("activeDeadlineSeconds", "caseTimeoutSeconds", "hangTimeoutSeconds", "backoffLimit"))
    limits = Limits(
        active_deadline_s=lim.number("activeDeadlineSeconds", 7200, minimum=1, maximum=30 * 86400, integer=True),
        case_timeout_s=lim.number("caseTimeoutSeconds", 300.0, minimum=0.0, maximum=86400.0, exclusive_min=True),
        hang_timeout_s=lim.number("hangTimeoutSeconds", 120.0, minimum=0.0, maximum=86400.0, exclusive_min=True),
        backoff_limit=lim.number("backoffLimit", 2, minimum=0, maximum=100, integer=True),
    )

    out = s.sub("output", ("uri", "credentialsSecretRef", "flushEveryRows", "flushEverySeconds"))
    creds = out.sub("credentialsSecretRef", ("name",))
    cred_name = creds.string("name", None, pattern=_NAME_RE, hint="; a Secret name") if creds.data else None
    output = Output(
        uri=check_output_uri(out.raw("uri") if out.has("uri") else "./results", "spec.output.uri"),
        credentials_secret=cred_name,
        flush_every_rows=out.number("flushEveryRows", 50, minimum=1, maximum=1_000_000, integer=True),
        flush_every_s=out.number("flushEverySeconds", 30.0, minimum=0.0, maximum=3600.0, exclusive_min=True),
    )

    spec = RunSpec(
        name=name, namespace=namespace, uid=uid, suite=suite_name, suite_config=suite_config, matrix=matrix, endpoints=endpoints, models=models,
        budget=budget, expected=expected, sharding=sharding, resources=resources, limits=limits, output=output,
        cache_claim=cache_claim, cache_path=cache_path, suspend=s.boolean("suspend", False),
        simulation=simulation,
        failure_policy=s.string("failurePolicy", "partial", allowed=("partial", "fail")),
    )
    if spec.sharding.shards > spec.total_cases:
        raise SpecError("spec.sharding.shards", f"{spec.sharding.shards} shards for {spec.total_cases} cases; "
                                                "shards must be at most the number of cases")
    return spec


def with_overrides(spec: RunSpec, *, output: str | None = None, shards: int | None = None) -> RunSpec:
    """Command-line overrides, checked by the same rules as the manifest and named by their flag."""
    if output is not None:
        spec = replace(spec, output=replace(spec.output, uri=check_output_uri(output, "--output")))
    if shards is not None:
        n = check_number(shards, "--shards", minimum=1, maximum=10000, integer=True)
        if n > spec.total_cases:
            raise SpecError("--shards", f"{n} shards for {spec.total_cases} cases; use at most {spec.total_cases}")
        spec = replace(spec, sharding=replace(spec.sharding, shards=n))
    return spec


# ----------------------------------------------------------------------------- the resolved form


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def _model_doc(m: ModelSpec) -> Any:
    if m.simulated or (m.endpoint == DEFAULT_ENDPOINT and m.name == f"openai/{m.model}" and not m.params
                       and m.price_in_per_mtok is None and m.price_out_per_mtok is None
                                                        and m.tool_calling == "native"):
        return m.name
    price = _drop_none({"inputPerMillionTokens": m.price_in_per_mtok, "outputPerMillionTokens": m.price_out_per_mtok})
    return _drop_none({"name": m.name, "endpoint": m.endpoint, "model": m.model,
                       "params": {k: list(v) if isinstance(v, tuple) else v for k, v in m.params}, "price": price,
                       "toolCalling": m.tool_calling if m.tool_calling != "native" else None})


def _endpoint_doc(e: Endpoint) -> dict:
    return _drop_none({
        "name": e.name, "baseURL": e.base_url, "apiKeySecretRef": e.api_key_secret, "apiKeyEnv": e.api_key_env,
        "limits": _drop_none({"requestsPerMinute": e.limits.requests_per_minute,
                              "tokensPerMinute": e.limits.tokens_per_minute,
                              "maxConcurrency": e.limits.max_concurrency}),
        "requestTimeoutSeconds": e.request_timeout_s, "maxRetries": e.max_retries, "headers": dict(e.headers)})


def to_manifest(spec: RunSpec) -> dict:
    """The spec as a complete camelCase manifest: ``parse_manifest(to_manifest(s)) == s``."""
    m, sh, r, lim, out = spec.matrix, spec.sharding, spec.resources, spec.limits, spec.output
    body = {
        "suite": spec.suite,
        "suiteConfig": dict(spec.suite_config),
        "matrix": {"models": [_model_doc(x) for x in spec.models], "promptTypes": list(m.prompt_types),
                   "difficulties": list(m.difficulties), "taskTypes": list(m.task_types),
                   "instances": m.instances, "toolSuccessRate": m.tool_success_rate},
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
    }
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
            "metadata": _drop_none({"name": spec.name, "namespace": spec.namespace, "uid": spec.uid}),
            "spec": _drop_none(body)}


# ----------------------------------------------------------------------------- cases and shards


@dataclass(frozen=True, slots=True)
class Case:
    model: str
    prompt_type: str
    difficulty: str
    task_type: str
    instance: int
    case_id: str

    @property
    def seed(self) -> int:
        return int(self.case_id[:12], 16)


def case_id(model: str, prompt_type: str, difficulty: str, task_type: str, instance: int,
            suite_version: str = WORKFLOW_VERSION) -> str:
    """Stable id of one case: a hash of its fields and the suite version (not of the run)."""
    key = json.dumps([suite_version, model, prompt_type, difficulty, task_type, int(instance)],
                     separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def case_at(matrix: Matrix, position: int) -> Case:
    """The case at ``position`` of the expansion order, computed directly (no expansion)."""
    rest, instance = divmod(position, matrix.instances)
    rest, t = divmod(rest, len(matrix.task_types))
    rest, d = divmod(rest, len(matrix.difficulties))
    m, p = divmod(rest, len(matrix.prompt_types))
    model, prompt, diff, task = matrix.models[m], matrix.prompt_types[p], matrix.difficulties[d], matrix.task_types[t]
    return Case(model, prompt, diff, task, instance, case_id(model, prompt, diff, task, instance, matrix.suite_version))


def iter_cases(matrix: Matrix) -> Iterator[Case]:
    """Every case of the matrix in the one deterministic order both sides use:
    model, then prompt type, difficulty, task type, instance (the innermost)."""
    for p in range(matrix.total):
        yield case_at(matrix, p)


def expand(matrix: Matrix) -> list[Case]:
    return list(iter_cases(matrix))


def shard_of(position: int, shards: int) -> int:
    return position % shards


def iter_shard_cases(matrix: Matrix, shard: int, shards: int) -> Iterator[Case]:
    """The cases of shard ``shard`` of ``shards``, lazily: positions p with p % shards == shard."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards} does not exist; shards are 0..{shards - 1}")
    for p in range(shard, matrix.total, shards):
        yield case_at(matrix, p)


def shard_cases(matrix: Matrix, shard: int, shards: int) -> list[Case]:
    return list(iter_shard_cases(matrix, shard, shards))


def memory_request_mib(shared_mib: float, per_worker_mib: float, concurrency: int, *, base_mib: float = BASE_MIB,
                       headroom_ratio: float = HEADROOM_RATIO, headroom_min_mib: float = HEADROOM_MIN_MIB) -> int:
    """The memory a runner pod requests (DESIGN.md): base + shared + per-worker × concurrency, plus headroom.

    The shared part (the memory-mapped cache) is counted once per pod, not once per worker.
    """
    need = base_mib + shared_mib + per_worker_mib * concurrency
    need += max(headroom_min_mib, headroom_ratio * need)
    return int(-(-need // 1))


def shard_sizes(total: int, shards: int) -> list[int]:
    """How many cases each shard holds, without expanding the matrix."""
    base, extra = divmod(total, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]
