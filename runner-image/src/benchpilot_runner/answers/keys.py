"""The reuse key: when two chat requests are the same request. Pure.

Two requests are the same when they go to the same endpoint (base URL normalised), ask the same
model id (as sent), carry the same body but for transport-only fields, and are the same sample:
the case's instance and the occurrence of this very request within the case (a case that asks the
same thing twice, e.g. self-consistency samples, gets two answers, never one answer twice). The
model id is always in the key: one model is never scored with another's answers (lm-eval #4063).

    request digest = sha256(canonical {"endpoint", "model", "body"})
    answer key     = sha256("bp-answer-1" \\n request digest \\n instance \\n occurrence)

Canonical JSON: sorted keys, no spaces, UTF-8. ``KEY_VERSION`` changes whenever what goes into a key
changes; answers stored under another version are counted (``other_scheme``), never silently missed.
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


def normalize_base_url(url: str) -> str:
    """``HTTPS://API.Example.com:443/v1/`` -> ``https://api.example.com/v1``."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    netloc = host if parts.port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=str).encode()


def keyed_body(body: dict) -> dict:
    """The body as keyed: without the model (keyed apart) and transport-only fields."""
    return {k: v for k, v in body.items() if k != "model" and k not in TRANSPORT_FIELDS}


def request_material(endpoint: str, body: dict) -> dict:
    return {"endpoint": normalize_base_url(endpoint), "model": body.get("model"), "body": keyed_body(body)}


def request_digest(endpoint: str, body: dict) -> str:
    """What makes a request this request, whichever case or sample sends it."""
    return hashlib.sha256(canonical(request_material(endpoint, body))).hexdigest()


def answer_key(digest: str, instance: int, occurrence: int) -> str:
    """The key of one answer: the request and which sample of it."""
    return hashlib.sha256(f"{KEY_VERSION}\n{digest}\n{int(instance)}\n{int(occurrence)}".encode()).hexdigest()


def key_of(endpoint: str, body: dict, instance: int, occurrence: int) -> str:
    return answer_key(request_digest(endpoint, body), instance, occurrence)
