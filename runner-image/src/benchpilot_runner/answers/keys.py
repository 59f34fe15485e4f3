"""The reuse key: when two chat requests are the same request. Pure.

Two requests are the same when they go to the same endpoint (base URL normalised), ask the same
model id (as sent), carry the same body but for transport-only fields, and are the same sample:
the case's instance and the occurrence of this very request within the case (a case that asks the
same thing twice, e.g. self-consistency samples, gets two answers, never one answer twice). The
model id is always in the key: one model is never scored with another's answers (lm-eval #4063).

    request digest = sha256(canonical {"endpoint", "model", "body"})
    answer key     = sha256("bp-answer-1" \\n request digest \\n instance \\n occurrence)

A key is the first ``STORED_HEX`` hex digits (64 bits: a false match among a million answers has odds
of ~1e-8). Canonical JSON: sorted keys, no spaces, UTF-8. Keys are never stored: every reader computes
them from the kept requests with this code, so changing what goes into a key (``KEY_VERSION``) never
strands earlier answers (inspect_ai's cache silently stopped hitting after an upgrade, #1478).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

KEY_VERSION = "bp-answer-1"
# fields that change how a request travels, not what the model is asked
TRANSPORT_FIELDS = frozenset({"stream", "stream_options", "timeout", "request_timeout", "extra_headers", "user",
                              "metadata", "store", "service_tier"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
STORED_HEX = 16


def normalize_base_url(url: str) -> str:
    """``HTTPS://API.Example.com:443/v1/`` -> ``https://api.example.com/v1``."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    netloc = host if parts.port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                              default=str)  # one encoder: json.dumps builds one per call with these options


def canonical(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode()


def keyed_body(body: dict) -> dict:
    """The body as keyed: without the model (keyed apart) and transport-only fields."""
    return {k: v for k, v in body.items() if k != "model" and k not in TRANSPORT_FIELDS}


def request_material(endpoint: str, body: dict) -> dict:
    return {"endpoint": normalize_base_url(endpoint), "model": body.get("model"), "body": keyed_body(body)}


def request_digest(endpoint: str, body: dict, tools_cache: dict | None = None) -> str:
    """What makes a request this request, whichever case or sample sends it: sha256 of
    ``canonical(request_material(endpoint, body))``. ``tools_cache`` (one per case) keeps the canonical
    text of the tools list a case sends every turn (the same list object); the bytes hashed are the same."""
    material = request_material(endpoint, body)
    if tools_cache is None or not isinstance(material["body"].get("tools"), list):
        return hashlib.sha256(canonical(material)).hexdigest()
    tools = material["body"]["tools"]
    held = tools_cache.get(id(tools))
    if held is None or held[0] is not tools:
        held = tools_cache[id(tools)] = (tools, canonical(tools))
    items = [canonical(k) + b":" + (held[1] if k == "tools" else canonical(v))
             for k, v in sorted(material["body"].items())]
    text = (b'{"body":{' + b",".join(items) + b'},"endpoint":' + canonical(material["endpoint"])
            + b',"model":' + canonical(material["model"]) + b"}")
    return hashlib.sha256(text).hexdigest()


def answer_key(digest: str, instance: int, occurrence: int) -> str:
    """The key of one answer (as stored: ``STORED_HEX`` digits): the request and which sample of it."""
    full = hashlib.sha256(f"{KEY_VERSION}\n{digest}\n{int(instance)}\n{int(occurrence)}".encode()).hexdigest()
    return full[:STORED_HEX]


def key_of(endpoint: str, body: dict, instance: int, occurrence: int) -> str:
    return answer_key(request_digest(endpoint, body), instance, occurrence)
