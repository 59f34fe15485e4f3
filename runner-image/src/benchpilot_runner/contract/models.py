"""Parsing ``spec.matrix.models``, ``spec.endpoint`` and ``spec.endpoints``. Pure.

A model is a string ``<provider>/<id>`` resolved by its provider (:mod:`benchpilot_runner.providers`)
or an object ``{name, endpoint, model, params, price}`` served by an endpoint.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from . import tree as T
from .fields import (ENV_RE, HEADER_RE, MAX_MODEL_NAME, MAX_STRING, MODEL_RE, NAME_RE, URL_RE, Fields, SpecError,
                     show)
from .registry import find_provider
from .tree import MODEL_PARAMS
from .types import DEFAULT_ENDPOINT, Endpoint, EndpointLimits, ModelSpec, SimModel

MODEL_FIELDS = tuple(T.MODEL)
PRICE_FIELDS = tuple(T.MODEL["price"])
ENDPOINT_FIELDS = tuple(T.ENDPOINT)
LEGACY_ENDPOINT_FIELDS = tuple(T.SPEC["endpoint"])  # spec.endpoint: the endpoint named default, with qps
LIMIT_FIELDS = tuple(T.ENDPOINT["limits"])
SECRET_REF_FIELDS = tuple(T.ENDPOINT["apiKeySecretRef"])
SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
RESERVED_HEADERS = ("authorization", "content-type", "content-length", "host", "api-key", "x-api-key")


def parse_models(mx: Fields, simulation: Mapping[str, SimModel]) -> tuple[ModelSpec, ...]:
    raw = mx.raw("models")
    p = mx.p("models")
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
            m = _model_from_object(Fields(item, path, MODEL_FIELDS), path)
        else:
            raise SpecError(path, f"{show(item)} is not a model name or a model object")
        if any(o.name == m.name for o in out):
            raise SpecError(path, f"{show(m.name)} appears twice")
        out.append(m)
    return tuple(out)


def _check_model_name(name: str, path: str) -> None:
    if len(name) > MAX_MODEL_NAME:
        raise SpecError(path, f"{show(name)} is {len(name)} characters long; at most {MAX_MODEL_NAME} allowed")
    if not MODEL_RE.match(name) or ".." in name:
        raise SpecError(path, f"{show(name)} is not a valid model name (letters, digits and ._:/@+-)")


def _model_from_string(model: str, path: str, simulation: Mapping[str, SimModel]) -> ModelSpec:
    _check_model_name(model, path)
    if "/" not in model:
        raise SpecError(path, f"{show(model)} is not a model; write <provider>/<model> (e.g. sim/strong, "
                              "openai/gpt-4o-mini), or an object {name, endpoint, model}")
    provider, name = model.split("/", 1)
    return find_provider(provider, path).model(name, path, simulation)


def _model_from_object(f: Fields, path: str) -> ModelSpec:
    name = f.string("name", None, max_len=MAX_MODEL_NAME)
    if name is None:
        raise SpecError(f"{path}.name", "is required: the model's label in results and metrics")
    _check_model_name(name, f"{path}.name")
    if name.startswith("sim/"):
        raise SpecError(f"{path}.name", f"{show(name)}: simulated models are plain strings (sim/<preset>)")
    endpoint = f.string("endpoint", DEFAULT_ENDPOINT, pattern=NAME_RE, hint="; an endpoint name")
    model = f.string("model", name.split("/", 1)[-1], max_len=MAX_MODEL_NAME)
    params = _params(f.sub("params", tuple(MODEL_PARAMS)))
    price = f.sub("price", PRICE_FIELDS)
    return ModelSpec(name=name, endpoint=endpoint, model=model, params=params, tool_calling=_tool_calling(f),
                     price_in_per_mtok=price.number("inputPerMillionTokens", None, minimum=0.0, maximum=1e6),
                     price_out_per_mtok=price.number("outputPerMillionTokens", None, minimum=0.0, maximum=1e6))


def _tool_calling(f: Fields) -> str:
    value = f.raw("toolCalling")
    if value is not None and (not isinstance(value, str) or value not in T.TOOL_CALLING):
        raise SpecError(f.p("toolCalling"), f"{show(value)} is not allowed; allowed: {', '.join(T.TOOL_CALLING)} "
                                            "(native: tools in the request; prompt: tools in the prompt, "
                                            "calls read from the answer's text)")
    return value or ModelSpec.tool_calling


def _params(params: Fields) -> tuple[tuple[str, Any], ...]:
    checked: list[tuple[str, Any]] = []
    for key, kind in MODEL_PARAMS.items():
        if not params.has(key):
            continue
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
                raise SpecError(params.p(key), f"{show(value)} is not a list of at most 8 short strings")
            value = tuple(value)
        checked.append((key, value))
    return tuple(checked)


def parse_endpoints(s: Fields) -> tuple[Endpoint, ...]:
    out: list[Endpoint] = []
    if s.has("endpoint"):
        out.append(_endpoint(s.sub("endpoint", LEGACY_ENDPOINT_FIELDS), "spec.endpoint", legacy=True))
    raw = s.raw("endpoints")
    if raw is not None:
        if not isinstance(raw, list) or len(raw) > 64:
            raise SpecError("spec.endpoints", f"{show(raw)} is not a list of at most 64 endpoints")
        for i, item in enumerate(raw):
            path = f"spec.endpoints[{i}]"
            ep = _endpoint(Fields(item, path, ENDPOINT_FIELDS), path, legacy=False)
            if any(o.name == ep.name for o in out):
                raise SpecError(f"{path}.name", f"{ep.name!r} is defined twice"
                                + (" (spec.endpoint is the endpoint named default)" if ep.name == DEFAULT_ENDPOINT
                                   else ""))
            out.append(ep)
    return tuple(out)


def _endpoint(f: Fields, path: str, *, legacy: bool) -> Endpoint:
    """One endpoint; ``legacy`` is the single ``spec.endpoint`` (named default, with ``qps``)."""
    name = DEFAULT_ENDPOINT if legacy else f.string("name", None, pattern=NAME_RE,
                                                    hint="; a lower-case DNS label such as openai")
    if name is None:
        raise SpecError(f"{path}.name", "is required")
    base_url = f.string("baseURL", None, pattern=URL_RE, max_len=MAX_STRING,
                        hint="; use an http:// or https:// URL such as http://llm:8000/v1")
    return Endpoint(
        name=name, base_url=base_url.rstrip("/") if base_url else None, api_key_secret=_secret_ref(f),
        api_key_env=f.string("apiKeyEnv", None, pattern=ENV_RE, hint="; an environment variable name"),
        limits=_limits(f, path, legacy=legacy),
        request_timeout_s=f.number("requestTimeoutSeconds", Endpoint.request_timeout_s, minimum=0.0,
                                   maximum=3600.0, exclusive_min=True),
        max_retries=f.number("maxRetries", Endpoint.max_retries, minimum=0, maximum=20, integer=True),
        headers=_headers(f.raw("headers"), f"{path}.headers"),
    )


def _secret_ref(f: Fields) -> dict | None:
    ref = f.sub("apiKeySecretRef", SECRET_REF_FIELDS)
    if not ref.data:
        return None
    secret = {"name": ref.string("name", None, pattern=NAME_RE, hint="; a Secret name"),
              "key": ref.string("key", T.ENDPOINT["apiKeySecretRef"]["key"], pattern=SECRET_KEY_RE,
                                hint="; a Secret key")}
    if secret["name"] is None:
        raise SpecError(ref.p("name"), "is required")
    return secret


def _limits(f: Fields, path: str, *, legacy: bool) -> EndpointLimits:
    lim = f.sub("limits", LIMIT_FIELDS)
    rpm = lim.number("requestsPerMinute", None, minimum=0.0, maximum=1e7, exclusive_min=True)
    if legacy and f.has("qps"):
        if rpm is not None:
            raise SpecError(f"{path}.qps", "give either qps or limits.requestsPerMinute, not both")
        rpm = 60.0 * f.number("qps", None, minimum=0.0, maximum=100000.0, exclusive_min=True)
    return EndpointLimits(
        requests_per_minute=rpm if rpm is not None else EndpointLimits.requests_per_minute,
        tokens_per_minute=lim.number("tokensPerMinute", None, minimum=0.0, maximum=1e10, exclusive_min=True),
        max_concurrency=lim.number("maxConcurrency", None, minimum=1, maximum=100000, integer=True))


def _headers(hdrs: Any, path: str) -> tuple[tuple[str, str], ...]:
    if hdrs is None:
        return ()
    if not isinstance(hdrs, Mapping) or len(hdrs) > 32:
        raise SpecError(path, f"{show(hdrs)} is not a mapping of at most 32 headers")
    headers: list[tuple[str, str]] = []
    for k, v in hdrs.items():
        hp = f"{path}.{show(k)}"
        if not isinstance(k, str) or not HEADER_RE.match(k) or len(k) > 64:
            raise SpecError(hp, "is not a valid header name")
        if k.lower() in RESERVED_HEADERS:
            raise SpecError(hp, "is set by benchpilot; give the key with apiKeySecretRef or apiKeyEnv")
        if not isinstance(v, str) or len(v) > 1024 or any(ord(ch) < 32 for ch in v):
            raise SpecError(hp, f"{show(v)} is not a header value (a string without line breaks)")
        headers.append((k, v))
    return tuple(sorted(headers))


def check_model_endpoints(models: tuple[ModelSpec, ...], endpoints: tuple[Endpoint, ...], s: Fields) -> None:
    """Every model's endpoint is defined and has a base URL."""
    names = [e.name for e in endpoints]
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
        if any(m.endpoint == e.name for m in models) and not e.base_url:
            where = "spec.endpoint" if e.name == DEFAULT_ENDPOINT and s.has("endpoint") else \
                f"spec.endpoints[{names.index(e.name)}]"
            raise SpecError(f"{where}.baseURL", f"is required for the models of endpoint {e.name!r}")
