"""The contract shared by the operator and the runner: the BenchmarkRun spec, cases and shards.

Pure code: no I/O beyond parsing the text it is given. The operator imports this module to plan
shards; the runner imports it to know which cases are its own. Both must agree on the expansion
order and on ``case_id``, so both call the functions here and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import yaml

API_GROUP = "benchpilot.io"
API_VERSION = "v1alpha1"
KIND = "BenchmarkRun"

SUITES = ("workflow",)
# Bumped whenever generation or scoring changes so that old results are never mixed with new ones.
SUITE_VERSION = "workflow-1"

PROMPT_TYPES = (
    "baseline",
    "optimal",
    "cot",
    "flawed_sequence_disorder",
    "flawed_tool_misuse",
    "flawed_parameter_error",
    "flawed_missing_step",
    "flawed_redundant_operations",
    "flawed_logical_inconsistency",
    "flawed_semantic_drift",
)
TASK_TYPES = ("simple_task", "basic_task", "data_pipeline", "api_integration", "multi_stage_pipeline")
DIFFICULTIES = ("easy", "medium", "hard")
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
CONFIG_ERROR_EXIT = 2  # the runner's exit code for a configuration error (the Job fails fast on it)

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
_MEM_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_MEM_UNITS = {None: 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
              "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


class SpecError(ValueError):
    """An invalid manifest: names the field, the value seen, and what would be right."""

    def __init__(self, path: str, message: str):
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
class Matrix:
    models: tuple[str, ...]
    prompt_types: tuple[str, ...]
    difficulties: tuple[str, ...]
    task_types: tuple[str, ...]
    instances: int = 5
    tool_success_rate: float = 0.8


@dataclass(frozen=True)
class Endpoint:
    base_url: str | None = None
    api_key_secret: dict | None = None  # {name, key}: the operator turns it into a secretKeyRef
    api_key_env: str = "BENCHPILOT_API_KEY"  # where the runner reads the key from
    qps: float = 10.0
    request_timeout_s: float = 30.0
    max_retries: int = 3


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
    endpoint: Endpoint
    sharding: Sharding
    resources: Resources
    limits: Limits
    output: Output
    cache_claim: str | None = None
    cache_path: str | None = None
    suspend: bool = False
    simulation: Mapping[str, SimModel] = field(default_factory=dict)
    failure_policy: str = "partial"  # run outcome when some shards fail: "partial" or "fail"

    def sim_model(self, model: str) -> SimModel:
        """The parameters of a ``sim/...`` model: a spec override, else a preset."""
        if model in self.simulation:
            return self.simulation[model]
        preset = model.split("/", 1)[1]
        acc, lat = SIM_PRESETS[preset]
        return SimModel(accuracy=acc, latency_s=lat)

    @property
    def total_cases(self) -> int:
        m = self.matrix
        return len(m.models) * len(m.prompt_types) * len(m.difficulties) * len(m.task_types) * m.instances

    def needs_endpoint(self) -> bool:
        return any(not m.startswith("sim/") for m in self.matrix.models)

    def to_resolved(self) -> dict:
        """The spec with every default filled in, as JSON-ready data (the pod's run.json)."""
        return _to_jsonable(dataclasses.asdict(self))


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    return obj


def from_resolved(data: Mapping) -> RunSpec:
    """Inverse of :meth:`RunSpec.to_resolved`."""
    d = dict(data)
    return RunSpec(
        name=d["name"], namespace=d["namespace"], uid=d.get("uid"), suite=d["suite"],
        matrix=Matrix(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["matrix"].items()}),
        endpoint=Endpoint(**d["endpoint"]), sharding=Sharding(**d["sharding"]),
        resources=Resources(**d["resources"]), limits=Limits(**d["limits"]), output=Output(**d["output"]),
        cache_claim=d.get("cache_claim"), cache_path=d.get("cache_path"), suspend=d.get("suspend", False),
        simulation={k: SimModel(**v) for k, v in (d.get("simulation") or {}).items()},
        failure_policy=d.get("failure_policy", "partial"),
    )


# ----------------------------------------------------------------------------- parsing


def parse_memory(value: Any, path: str) -> int:
    """A Kubernetes quantity such as ``8Gi`` or ``512Mi`` in bytes."""
    m = _MEM_RE.match(str(value).strip())
    if not m:
        raise SpecError(path, f"{value!r} is not a memory quantity; use e.g. 512Mi or 8Gi")
    return int(float(m.group(1)) * _MEM_UNITS[m.group(2)])


class _Fields:
    """Reads one mapping of the manifest, checking types and ranges; paths name the field."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SpecError(path or "manifest", f"expected a mapping, got {type(data).__name__} {data!r}")
        self.data, self.path, self.seen = data, path, set()

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, default: Any) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def number(self, key: str, default: float, *, minimum: float | None = None,
               maximum: float | None = None, integer: bool = False, exclusive_min: bool = False) -> Any:
        value = self._get(key, default)
        p = self._p(key)
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and isinstance(value, float)
                                                                           and not value.is_integer()):
            raise SpecError(p, f"{value!r} is not {kind}")
        if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
            raise SpecError(p, f"{value!r} is too small; must be {'>' if exclusive_min else '>='} {minimum}")
        if maximum is not None and value > maximum:
            raise SpecError(p, f"{value!r} is too large; must be <= {maximum}")
        return int(value) if integer else float(value)

    def string(self, key: str, default: str | None, *, pattern: re.Pattern | None = None,
               allowed: Iterable[str] | None = None, hint: str = "") -> str | None:
        value = self._get(key, default)
        p = self._p(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise SpecError(p, f"{value!r} is not a non-empty string")
        if allowed is not None and value not in allowed:
            raise SpecError(p, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        if pattern is not None and not pattern.match(value):
            raise SpecError(p, f"{value!r} is not valid{hint}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise SpecError(self._p(key), f"{value!r} is not true or false")
        return value

    def sub(self, key: str) -> "_Fields":
        return _Fields(self._get(key, None), self._p(key))

    def raw(self, key: str) -> Any:
        return self._get(key, None)

    def string_list(self, key: str, allowed: Iterable[str] | None, default: Iterable[str] | None = None,
                    what: str = "value") -> tuple[str, ...]:
        value = self._get(key, None)
        p = self._p(key)
        if value is None:
            if default is None:
                raise SpecError(p, f"is required: a list of {what}s"
                                   + (f" from {', '.join(allowed)}" if allowed else ""))
            return tuple(default)
        if not isinstance(value, list) or not value:
            raise SpecError(p, f"{value!r} is not a non-empty list of {what}s")
        seen: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{p}[{i}]", f"{item!r} is not a string")
            if allowed is not None and item not in allowed:
                raise SpecError(f"{p}[{i}]", f"{item!r} is not a known {what}; allowed: {', '.join(allowed)}")
            if item in seen:
                raise SpecError(f"{p}[{i}]", f"{item!r} appears twice")
            seen.add(item)
        return tuple(value)

    def no_unknown(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise SpecError(self._p(unknown[0]),
                            f"unknown field; known fields here: {', '.join(sorted(self.seen))}")


def _check_model(model: str, path: str, simulation: Mapping[str, Any]) -> None:
    if not _MODEL_RE.match(model) or "/" not in model:
        raise SpecError(path, f"{model!r} is not a model; write <provider>/<model>, providers: "
                              f"{', '.join(MODEL_PROVIDERS)} (e.g. sim/strong, openai/gpt-4o-mini)")
    provider, name = model.split("/", 1)
    if provider not in MODEL_PROVIDERS:
        raise SpecError(path, f"unknown model provider {provider!r} in {model!r}; "
                              f"allowed providers: {', '.join(MODEL_PROVIDERS)}")
    if provider == "sim" and model not in simulation and name not in SIM_PRESETS:
        raise SpecError(path, f"unknown simulated model {model!r}; built-in: "
                              f"{', '.join('sim/' + p for p in SIM_PRESETS)}, or define it under spec.simulation")


def parse_manifest(doc: Any, *, namespace_default: str = "default") -> RunSpec:
    """Validate a BenchmarkRun manifest (already parsed YAML/JSON) and fill in the defaults."""
    top = _Fields(doc, "")
    api = top.string("apiVersion", None)
    if api != f"{API_GROUP}/{API_VERSION}":
        raise SpecError("apiVersion", f"{api!r} is not supported; use {API_GROUP}/{API_VERSION}")
    kind = top.string("kind", None)
    if kind != KIND:
        raise SpecError("kind", f"{kind!r} is not supported; use {KIND}")
    meta = top.sub("metadata")
    name = meta.string("name", None)
    if name is None:
        raise SpecError("metadata.name", "is required")
    if len(name) > 40 or not _NAME_RE.match(name):
        raise SpecError("metadata.name", f"{name!r} must be lower-case letters, digits and '-', "
                                         "start and end alphanumeric, at most 40 characters")
    namespace = meta.string("namespace", namespace_default, pattern=_NAME_RE, hint="; use a DNS label")
    uid = meta.string("uid", None)
    s = top.sub("spec")
    if "spec" not in top.data:
        raise SpecError("spec", "is required")
    suite = s.string("suite", "workflow", allowed=SUITES)

    sim_raw = s.sub("simulation")
    simulation: dict[str, SimModel] = {}
    for key in list(sim_raw.data):
        p = f"spec.simulation.{key}"
        if not isinstance(key, str) or not key.startswith("sim/") or not _MODEL_RE.match(key):
            raise SpecError(p, "simulated model names start with 'sim/'")
        f = sim_raw.sub(key)
        simulation[key] = SimModel(
            accuracy=f.number("accuracy", 0.8, minimum=0.0, maximum=1.0),
            latency_s=f.number("latencySeconds", 0.05, minimum=0.0, maximum=600.0),
        )
        f.no_unknown()

    mx = s.sub("matrix")
    if "matrix" not in s.data:
        raise SpecError("spec.matrix", "is required: models, promptTypes, difficulties, taskTypes")
    models = mx.string_list("models", None, what="model")
    for i, model in enumerate(models):
        _check_model(model, f"spec.matrix.models[{i}]", simulation)
    matrix = Matrix(
        models=models,
        prompt_types=mx.string_list("promptTypes", PROMPT_TYPES, what="prompt type"),
        difficulties=mx.string_list("difficulties", DIFFICULTIES, default=("easy",), what="difficulty"),
        task_types=mx.string_list("taskTypes", TASK_TYPES, default=TASK_TYPES, what="task type"),
        instances=mx.number("instances", 5, minimum=1, maximum=100000, integer=True),
        tool_success_rate=mx.number("toolSuccessRate", 0.8, minimum=0.0, maximum=1.0),
    )
    mx.no_unknown()

    ep = s.sub("endpoint")
    ref = ep.sub("apiKeySecretRef")
    secret = None
    if ref.data:
        secret = {"name": ref.string("name", None, pattern=_NAME_RE, hint="; a Secret name"),
                  "key": ref.string("key", "api-key")}
        if secret["name"] is None:
            raise SpecError("spec.endpoint.apiKeySecretRef.name", "is required")
        ref.no_unknown()
    base_url = ep.string("baseURL", None, pattern=re.compile(r"^https?://[^\s]+$"),
                         hint="; use an http:// or https:// URL such as http://llm:8000/v1")
    endpoint = Endpoint(
        base_url=base_url.rstrip("/") if base_url else None,
        api_key_secret=secret,
        api_key_env=ep.string("apiKeyEnv", "BENCHPILOT_API_KEY",
                              pattern=re.compile(r"^[A-Z_][A-Z0-9_]*$"), hint="; an environment variable name"),
        qps=ep.number("qps", 10.0, minimum=0.0, maximum=100000.0, exclusive_min=True),
        request_timeout_s=ep.number("requestTimeoutSeconds", 30.0, minimum=0.0, maximum=3600.0,
                                    exclusive_min=True),
        max_retries=ep.number("maxRetries", 3, minimum=0, maximum=20, integer=True),
    )
    ep.no_unknown()
    if any(not m.startswith("sim/") for m in models) and not endpoint.base_url:
        raise SpecError("spec.endpoint.baseURL", "is required for non-simulated models "
                                                 f"({', '.join(m for m in models if not m.startswith('sim/'))})")

    sh = s.sub("sharding")
    sharding = Sharding(
        shards=sh.number("shards", 1, minimum=1, maximum=10000, integer=True),
        concurrency_per_shard=sh.number("concurrencyPerShard", 32, minimum=1, maximum=4096, integer=True),
        max_parallel_shards=sh.number("maxParallelShards", 8, minimum=1, maximum=10000, integer=True),
    )
    sh.no_unknown()

    rs = s.sub("resources")
    fp = rs.sub("footprint")
    resources = Resources(
        shared_mib=fp.number("sharedMiB", 250.0, minimum=0.0, maximum=1024.0 * 1024),
        per_worker_mib=fp.number("perWorkerMiB", 8.0, minimum=0.0, maximum=1024.0 * 64),
        max_pod_memory_bytes=parse_memory(rs.raw("maxPodMemory") or "8Gi", "spec.resources.maxPodMemory"),
    )
    fp.no_unknown()
    rs.no_unknown()

    cache = s.sub("cache")
    cache_claim = cache.string("claimName", None, pattern=_NAME_RE, hint="; a PersistentVolumeClaim name")
    cache_path = cache.string("path", None)
    cache.no_unknown()

    lim = s.sub("limits")
    limits = Limits(
        active_deadline_s=lim.number("activeDeadlineSeconds", 7200, minimum=1, maximum=30 * 86400, integer=True),
        case_timeout_s=lim.number("caseTimeoutSeconds", 300.0, minimum=0.0, maximum=86400.0, exclusive_min=True),
        hang_timeout_s=lim.number("hangTimeoutSeconds", 120.0, minimum=0.0, maximum=86400.0, exclusive_min=True),
        backoff_limit=lim.number("backoffLimit", 2, minimum=0, maximum=100, integer=True),
    )
    lim.no_unknown()

    out = s.sub("output")
    creds = out.sub("credentialsSecretRef")
    cred_name = creds.string("name", None, pattern=_NAME_RE, hint="; a Secret name") if creds.data else None
    creds.no_unknown()
    output = Output(
        uri=out.string("uri", "./results"),
        credentials_secret=cred_name,
        flush_every_rows=out.number("flushEveryRows", 50, minimum=1, maximum=1_000_000, integer=True),
        flush_every_s=out.number("flushEverySeconds", 30.0, minimum=0.0, maximum=3600.0, exclusive_min=True),
    )
    out.no_unknown()

    spec = RunSpec(
        name=name, namespace=namespace, uid=uid, suite=suite, matrix=matrix, endpoint=endpoint,
        sharding=sharding, resources=resources, limits=limits, output=output,
        cache_claim=cache_claim, cache_path=cache_path, suspend=s.boolean("suspend", False),
        simulation=simulation,
        failure_policy=s.string("failurePolicy", "partial", allowed=("partial", "fail")),
    )
    s.no_unknown()
    if spec.sharding.shards > spec.total_cases:
        raise SpecError("spec.sharding.shards", f"{spec.sharding.shards} shards for {spec.total_cases} cases; "
                                                "shards must be at most the number of cases")
    return spec


def load_manifest_text(text: str, *, source: str = "manifest") -> RunSpec:
    """Parse YAML text holding exactly one BenchmarkRun."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(source, f"is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    runs = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == KIND]
    if len(docs) == 1 or len(runs) == 0:
        if not docs:
            raise SpecError(source, "is empty; expected a BenchmarkRun manifest")
        return parse_manifest(docs[0])
    if len(runs) > 1:
        raise SpecError(source, f"holds {len(runs)} BenchmarkRun documents; give one per file")
    return parse_manifest(runs[0])


def read_text(path: str) -> str:
    """A manifest or spec file's text; an unreadable file is a SpecError naming it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise SpecError(path, f"cannot be read: {exc.strerror or exc}") from None


def load_manifest(path: str) -> RunSpec:
    return load_manifest_text(read_text(path), source=path)


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
            suite_version: str = SUITE_VERSION) -> str:
    """Stable id of one case: a hash of its fields and the suite version (not of the run)."""
    key = json.dumps([suite_version, model, prompt_type, difficulty, task_type, int(instance)],
                     separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def iter_cases(matrix: Matrix) -> Iterator[Case]:
    """Every case of the matrix in the one deterministic order both sides use."""
    for model in matrix.models:
        for prompt_type in matrix.prompt_types:
            for difficulty in matrix.difficulties:
                for task_type in matrix.task_types:
                    for instance in range(matrix.instances):
                        yield Case(model, prompt_type, difficulty, task_type, instance,
                                   case_id(model, prompt_type, difficulty, task_type, instance))


def expand(matrix: Matrix) -> list[Case]:
    return list(iter_cases(matrix))


def shard_of(position: int, shards: int) -> int:
    return position % shards


def shard_cases(matrix: Matrix, shard: int, shards: int) -> list[Case]:
    """The cases of shard ``shard`` of ``shards``: those whose position p has p % shards == shard."""
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards} does not exist; shards are 0..{shards - 1}")
    return [c for p, c in enumerate(iter_cases(matrix)) if p % shards == shard]


def memory_request_mib(shared_mib: float, per_worker_mib: float, concurrency: int, *, base_mib: float = 160.0,
                       headroom_ratio: float = 0.2, headroom_min_mib: float = 64.0) -> int:
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
