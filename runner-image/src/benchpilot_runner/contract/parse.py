"""The one parser: every way a spec arrives — a manifest, the resolved copy a pod reads, command-line
overrides — goes through :func:`parse_manifest` (and :func:`with_overrides`). Pure.

Unknown fields are refused before any other check of their mapping; ``null`` means unset; numbers
must be finite; names cannot escape a path; messages quote a bounded prefix of the value. The known
fields of every mapping are those of :mod:`.tree`; defaults are those of :mod:`.types`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from . import tree as T
from .api import API_GROUP, API_VERSION, KIND
from .fields import MAX_MODEL_NAME, MAX_STRING, MODEL_RE, NAME_RE, UID_RE, Fields, SpecError, check_number, \
    check_output_uri, show
from .models import check_model_endpoints, parse_endpoints, parse_models
from .registry import find_suite
from .types import (DEFAULT_SUITE, Budget, Expected, Limits, Matrix, ModelSpec, Output, Resources, Reuse, RunSpec,
                    Sharding, SimModel)

MAX_CASES = 100_000_000


def parse_manifest(doc: Any, *, namespace_default: str = "default") -> RunSpec:
    """Validate a BenchmarkRun manifest (already parsed YAML/JSON) and fill in the defaults."""
    top = Fields(doc, "", T.TOP)
    _check_kind(top)
    name, namespace, uid = _metadata(top.sub("metadata", T.METADATA), namespace_default)
    if top.raw("spec") is None:
        raise SpecError("spec", "is required")
    s = top.sub("spec", T.SPEC)
    suite_name, suite, suite_config = _suite(s)
    simulation = _simulation(s.raw("simulation"))
    matrix, models = _matrix(s, suite_name, suite, simulation)
    endpoints = parse_endpoints(s)
    check_model_endpoints(models, endpoints, s)
    cache = s.sub("cache", T.SPEC["cache"])
    spec = RunSpec(
        name=name, namespace=namespace, uid=uid, suite=suite_name, suite_config=suite_config, matrix=matrix,
        endpoints=endpoints, models=models, budget=_budget(s), expected=_expected(s), sharding=_sharding(s),
        resources=_resources(s), limits=_limits(s), output=_output(s),
        cache_claim=cache.string("claimName", None, pattern=NAME_RE, hint="; a PersistentVolumeClaim name"),
        cache_path=cache.string("path", None, max_len=MAX_STRING), suspend=s.boolean("suspend", RunSpec.suspend),
        simulation=simulation,
        failure_policy=s.string("failurePolicy", RunSpec.failure_policy, allowed=("partial", "fail")),
        reuse=_reuse(s),
    )
    if spec.sharding.shards > spec.total_cases:
        raise SpecError("spec.sharding.shards", f"{spec.sharding.shards} shards for {spec.total_cases} cases; "
                                                "shards must be at most the number of cases")
    return spec


def _check_kind(top: Fields) -> None:
    api = top.string("apiVersion", None, max_len=100)
    if api != f"{API_GROUP}/{API_VERSION}":
        raise SpecError("apiVersion", f"{show(api)} is not supported; use {API_GROUP}/{API_VERSION}")
    kind = top.string("kind", None, max_len=100)
    if kind != KIND:
        raise SpecError("kind", f"{show(kind)} is not supported; use {KIND}")


def _metadata(meta: Fields, namespace_default: str) -> tuple[str, str, str | None]:
    name = meta.string("name", None)
    if name is None:
        raise SpecError("metadata.name", "is required")
    if len(name) > 40 or not NAME_RE.match(name):
        raise SpecError("metadata.name", f"{show(name)} must be lower-case letters, digits and '-', "
                                         "start and end alphanumeric, at most 40 characters")
    namespace = meta.string("namespace", namespace_default, pattern=NAME_RE, hint="; use a DNS label")
    uid = meta.string("uid", None, pattern=UID_RE,
                      hint="; a uid is letters, digits, '-', '_' and '.', starting and ending alphanumeric")
    return name, namespace, uid


def _suite(s: Fields) -> tuple[str, Any, dict]:
    """The suite named by ``spec.suite`` and its parsed ``spec.suiteConfig`` (checked by the suite itself)."""
    name = s.string("suite", DEFAULT_SUITE)
    suite = find_suite(name)
    if s.has("suiteConfig") and not isinstance(s.raw("suiteConfig"), Mapping):
        raise SpecError("spec.suiteConfig", f"{show(s.raw('suiteConfig'))} is not a mapping")
    config = Fields(s.raw("suiteConfig"), "spec.suiteConfig", suite.config_fields)
    return name, suite, _by_suite(name, "spec.suiteConfig", suite.parse_config, config)


def _by_suite(name: str, path: str, parse, fields: Fields) -> dict:
    """A suite's own parser on its part of the spec: a plug-in's bug is a refusal naming it, never a traceback."""
    try:
        return dict(parse(fields))
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SpecError(path, f"suite {name!r} could not read it: {type(exc).__name__}: {show(str(exc))}") from None


def _simulation(raw: Any) -> dict[str, SimModel]:
    if raw is not None and not isinstance(raw, Mapping):
        raise SpecError("spec.simulation", f"expected a mapping, got {type(raw).__name__} {show(raw)}")
    out: dict[str, SimModel] = {}
    for key in list(raw or {}):
        if not isinstance(key, str) or not key.startswith("sim/") or not MODEL_RE.match(key) \
                or len(key) > MAX_MODEL_NAME:
            raise SpecError(f"spec.simulation.{show(key)}",
                            "simulated model names start with 'sim/' (letters, digits and ._:/@+-)")
        f = Fields(raw[key], f"spec.simulation.{key}", T.SIMULATION)
        out[key] = SimModel(accuracy=f.number("accuracy", SimModel.accuracy, minimum=0.0, maximum=1.0),
                            latency_s=f.number("latencySeconds", SimModel.latency_s, minimum=0.0, maximum=600.0))
    return out


def _matrix(s: Fields, suite_name: str, suite, simulation: Mapping[str, SimModel]) -> tuple[Matrix, tuple[ModelSpec, ...]]:
    if s.raw("matrix") is None:
        raise SpecError("spec.matrix", "is required: models, promptTypes, difficulties, taskTypes")
    own = tuple(getattr(suite, "matrix_fields", ()))
    mx = s.sub("matrix", (*T.MATRIX, *own))
    models = parse_models(mx, simulation)
    vocab = suite.vocabulary
    extra = _by_suite(suite_name, "spec.matrix", suite.parse_matrix, mx) if own else {}
    matrix = Matrix(
        models=tuple(m.name for m in models),
        prompt_types=mx.string_list("promptTypes", vocab.prompt_types, what=f"{suite_name} prompt type"),
        difficulties=mx.string_list("difficulties", vocab.difficulties,
                                    default=vocab.default_difficulties or vocab.difficulties[:1],
                                    what=f"{suite_name} difficulty"),
        task_types=mx.string_list("taskTypes", vocab.task_types, default=vocab.default_task_types or vocab.task_types,
                                  what=f"{suite_name} task type"),
        instances=mx.number("instances", Matrix.instances, minimum=1, maximum=1_000_000, integer=True),
        suite_version=suite.version, suite_fields=tuple(sorted(extra.items())),
    )
    if matrix.total > MAX_CASES:
        raise SpecError("spec.matrix", f"expands to {matrix.total} cases; at most {MAX_CASES} allowed")
    return matrix, models


def _budget(s: Fields) -> Budget:
    bud = s.sub("budget", T.SPEC["budget"])
    return Budget(max_cost_usd=bud.number("maxCostUSD", None, minimum=0.0, maximum=1e9, exclusive_min=True),
                  max_tokens=bud.number("maxTokens", None, minimum=1, maximum=10**15, integer=True))


def _expected(s: Fields) -> Expected:
    est = s.sub("estimate", T.SPEC["estimate"])
    return Expected(
        tokens_per_case=est.number("expectedTokensPerCase", None, minimum=0.0, maximum=1e9),
        requests_per_case=est.number("expectedRequestsPerCase", None, minimum=0.0, maximum=1e6),
        prompt_token_share=est.number("promptTokenShare", Expected.prompt_token_share, minimum=0.0, maximum=1.0))


def _sharding(s: Fields) -> Sharding:
    sh = s.sub("sharding", T.SPEC["sharding"])
    return Sharding(
        shards=sh.number("shards", Sharding.shards, minimum=1, maximum=10000, integer=True),
        concurrency_per_shard=sh.number("concurrencyPerShard", Sharding.concurrency_per_shard, minimum=1,
                                        maximum=4096, integer=True),
        max_parallel_shards=sh.number("maxParallelShards", Sharding.max_parallel_shards, minimum=1, maximum=10000,
                                      integer=True))


def _resources(s: Fields) -> Resources:
    rs = s.sub("resources", T.SPEC["resources"])
    fp = rs.sub("footprint", T.SPEC["resources"]["footprint"])
    return Resources(
        shared_mib=fp.number("sharedMiB", Resources.shared_mib, minimum=0.0, maximum=1024.0 * 1024),
        per_worker_mib=fp.number("perWorkerMiB", Resources.per_worker_mib, minimum=0.0, maximum=1024.0 * 64),
        max_pod_memory_bytes=rs.memory("maxPodMemory", Resources.max_pod_memory_bytes),
        scratch_bytes=rs.memory("scratch", Resources.scratch_bytes))


def _limits(s: Fields) -> Limits:
    lim = s.sub("limits", T.SPEC["limits"])
    return Limits(
        active_deadline_s=lim.number("activeDeadlineSeconds", Limits.active_deadline_s, minimum=1,
                                     maximum=30 * 86400, integer=True),
        case_timeout_s=lim.number("caseTimeoutSeconds", Limits.case_timeout_s, minimum=0.0, maximum=86400.0,
                                  exclusive_min=True),
        hang_timeout_s=lim.number("hangTimeoutSeconds", Limits.hang_timeout_s, minimum=0.0, maximum=86400.0,
                                  exclusive_min=True),
        backoff_limit=lim.number("backoffLimit", Limits.backoff_limit, minimum=0, maximum=100, integer=True))


def _output(s: Fields) -> Output:
    out = s.sub("output", T.SPEC["output"])
    creds = out.sub("credentialsSecretRef", T.SPEC["output"]["credentialsSecretRef"])
    return Output(
        uri=check_output_uri(out.raw("uri") if out.has("uri") else Output.uri, "spec.output.uri"),
        credentials_secret=creds.string("name", None, pattern=NAME_RE, hint="; a Secret name") if creds.data else None,
        flush_every_rows=out.number("flushEveryRows", Output.flush_every_rows, minimum=1, maximum=1_000_000,
                                    integer=True),
        flush_every_s=out.number("flushEverySeconds", Output.flush_every_s, minimum=0.0, maximum=3600.0,
                                 exclusive_min=True))


def _reuse(s: Fields) -> Reuse:
    """``spec.reuse``: on when asked, or when sources are given without ``enabled``; each source a result URI."""
    r = s.sub("reuse", T.SPEC["reuse"])
    sources = tuple(_source(v, f"spec.reuse.sources[{i}]") for i, v in enumerate(_list(r, "sources")))
    return Reuse(enabled=r.boolean("enabled", bool(sources)), sources=sources)


def _list(f: Fields, key: str) -> list:
    raw = f.raw(key)
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > 100:
        raise SpecError(f"{f.path}.{key}", f"{show(raw)} is not a list of at most 100 result URIs")
    return raw


def _source(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, f"{show(value)} is not a result URI (a run folder or results root)")
    return check_output_uri(value, path)


def with_overrides(spec: RunSpec, *, output: str | None = None, shards: int | None = None,
                   reuse_from: tuple[str, ...] | None = None, reuse: bool = False) -> RunSpec:
    """Command-line overrides, checked by the same rules as the manifest and named by their flag."""
    if reuse or reuse_from:
        sources = spec.reuse.sources + tuple(_source(u, "--reuse-from") for u in reuse_from or ())
        spec = replace(spec, reuse=Reuse(enabled=True, sources=tuple(dict.fromkeys(sources))))
    if output is not None:
        spec = replace(spec, output=replace(spec.output, uri=check_output_uri(output, "--output")))
    if shards is not None:
        n = check_number(shards, "--shards", minimum=1, maximum=10000, integer=True)
        if n > spec.total_cases:
            raise SpecError("--shards", f"{n} shards for {spec.total_cases} cases; use at most {spec.total_cases}")
        spec = replace(spec, sharding=replace(spec.sharding, shards=n))
    return spec
