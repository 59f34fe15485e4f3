"""A case's transcript: every request it sent and every answer it got, kept in its result row. Pure.

The ``transcript`` column is JSON text (format 1)::

    {"v": 1, "endpoint": "<base URL, normalised>", "instance": 3,
     "entries": [{"model": "<id as sent>",
                  "request": {"prefix": 4, "messages": [<messages after the first 4 of the previous request's
                                                         messages followed by its answer>],
                              "tools": [...] | "same", "params": {<every other body field>}},
                  "response": {"message": {...}, "usage": [prompt, completion], "finish_reason": "stop",
                               "served_model": "...", "fingerprint": "..."},
                  "reused": true},                      # answered from earlier results, not the provider
                 {"model": ..., "request": ..., "error": {"type": "http_error", "message": "..."}}],
     "truncated": {"entries": 40, "kept": 31, "bytes": 301234}}   # only when it was bounded

No key is kept, nor a request's occurrence: whoever reads a transcript computes each answer's key
from the kept request with the current :mod:`.keys`, and its occurrence by counting the identical
requests before it (:func:`keyed`; so a key scheme that changes never strands old answers, and a
transcript cannot carry a key that does not match its request). A request repeats the previous one's messages and
answer (a conversation grows by appending), so it keeps only the messages after what it has in
common with them (``prefix``), and ``"same"`` tools: storage grows with a conversation's length, not
its square. No header (so no credential) is ever kept; the row's text is scrubbed like
every text (:func:`results.rows.make_row`). Over ``MAX_BYTES`` the last entries are dropped, the
``truncated`` marker says how many; the entries kept are whole.
"""

from __future__ import annotations

import contextvars
import json
from typing import Iterator

from . import keys

FORMAT = 1
MAX_BYTES = 256 * 1024  # of one case's transcript JSON
INCOMPLETE = frozenset({"length", "content_filter"})  # finish reasons of answers that were cut off: never reused


class Transcript:
    """What one case sent and got; the scheduler makes one per case (:data:`CURRENT`)."""

    def __init__(self, instance: int):
        self.instance = int(instance)
        self.endpoint: str | None = None
        self.entries: list[dict] = []
        self.reused = 0
        self.saved = [0, 0]  # prompt, completion tokens of the reused answers
        self.served_model: str | None = None
        self.fingerprint: str | None = None
        self._occ: dict[str, int] = {}
        self.tools_cache: dict = {}  # keys.request_digest's: the canonical text of the tools this case sends
        self._history: list = []  # the previous request's messages and its answer: what the next one repeats
        self._last_tools = None

    def occurrence(self, digest: str) -> int:
        """How many times this case sent this very request before (the sample index within the case)."""
        n = self._occ.get(digest, 0)
        self._occ[digest] = n + 1
        return n

    def _request(self, body: dict) -> dict:
        messages = list(body.get("messages") or [])
        prev, n = self._history, 0
        while n < len(prev) and n < len(messages) and prev[n] == messages[n]:
            n += 1
        req: dict = {"prefix": n, "messages": messages[n:]} if n else {"messages": messages}
        tools = body.get("tools")
        if tools is not None:
            req["tools"] = "same" if tools == self._last_tools else tools
        req["params"] = {k: v for k, v in body.items() if k not in ("model", "messages", "tools")}
        self._history, self._last_tools = messages, tools
        return req

    def record(self, endpoint: str, body: dict, result=None, error: BaseException | None = None) -> None:
        """One request and its answer (an ``llm.base.ChatResult``) or the error it ended in; ``endpoint`` as
        :func:`.keys.normalize_base_url` gives it."""
        self.endpoint = self.endpoint or endpoint
        entry = {"model": body.get("model"), "request": self._request(body)}
        if result is not None:
            usage = list(result.saved_tokens) if result.reused else [result.prompt_tokens, result.completion_tokens]
            entry["response"] = {"message": result.message, "usage": usage, "finish_reason": result.finish_reason,
                                 "served_model": result.served_model, "fingerprint": result.fingerprint}
            self._history = self._history + [result.message]
            if result.reused:
                entry["reused"] = True
                self.reused += 1
                self.saved[0] += usage[0]
                self.saved[1] += usage[1]
            self.served_model = result.served_model or self.served_model
            self.fingerprint = result.fingerprint or self.fingerprint
        else:
            entry["error"] = {"type": getattr(error, "error_type", type(error).__name__),
                              "message": str(error)[:500]}
        self.entries.append(entry)

    def to_json(self, limit: int = MAX_BYTES) -> str | None:
        """The transcript's JSON text, at most ``limit`` bytes (whole entries dropped from the end)."""
        if not self.entries:
            return None
        head = {"v": FORMAT, "endpoint": self.endpoint, "instance": self.instance}
        text = json.dumps({**head, "entries": self.entries}, default=str)
        if len(text.encode()) <= limit:
            return text
        kept, size = [], 200 + len(json.dumps(head))
        for entry in self.entries:
            one = json.dumps(entry, default=str)
            if size + len(one.encode()) + 2 > limit:
                break
            kept.append(one)
            size += len(one.encode()) + 2
        marker = {"entries": len(self.entries), "kept": len(kept), "bytes": len(text.encode())}
        return (json.dumps({**head, "truncated": marker})[:-1] + ', "entries": [' + ", ".join(kept) + "]}")

    def row_fields(self) -> dict:
        """The row's columns about the conversation (results.rows.SCHEMA)."""
        return {"transcript": self.to_json(), "reused": self.reused, "saved_tokens": sum(self.saved),
                "served_model": self.served_model, "system_fingerprint": self.fingerprint}


CURRENT: contextvars.ContextVar[Transcript | None] = contextvars.ContextVar("transcript", default=None)


class TranscriptError(ValueError):
    """A transcript that cannot be read (not JSON, another format): its answers are not reused."""


def parse(text: str) -> dict:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise TranscriptError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT or not isinstance(doc.get("entries"), list):
        raise TranscriptError(f"not a format-{FORMAT} transcript")
    return doc


def answers(doc: dict) -> Iterator[tuple[str, dict]]:
    """(key, response) of every complete, successful answer, the key computed by the current
    :mod:`.keys` from the kept request; a malformed transcript raises TranscriptError."""
    endpoint, instance = doc.get("endpoint"), doc.get("instance")
    if not isinstance(endpoint, str) or not isinstance(instance, int):
        raise TranscriptError("no endpoint or instance")
    try:
        for entry, _, digest, occurrence in keyed(doc):
            response = entry.get("response")
            if response is None:
                continue  # the request failed: nothing to reuse
            if not isinstance(response, dict) or not isinstance(response.get("message"), dict):
                raise TranscriptError("an answer without a message")
            if response.get("finish_reason") in INCOMPLETE:
                continue
            yield keys.answer_key(digest, instance, occurrence), response
    except (AttributeError, TypeError, ValueError) as exc:
        if isinstance(exc, TranscriptError):
            raise
        raise TranscriptError(f"a malformed entry: {type(exc).__name__}: {exc}") from None


def requests(doc: dict) -> Iterator[tuple[dict, dict]]:
    """(entry, the request's whole body as sent) for every entry: the deltas put back together."""
    history: list = []  # the previous request's messages and its answer
    tools = None
    for entry in doc["entries"]:
        if not isinstance(entry, dict):
            raise TranscriptError("an entry is not an object")
        req = entry.get("request") or {}
        messages = history[:req.get("prefix", 0)] + list(req.get("messages") or [])
        answer = (entry.get("response") or {}).get("message")
        history = messages + [answer] if isinstance(answer, dict) else messages
        if "tools" in req:
            tools = tools if req["tools"] == "same" else req["tools"]
        body = {"model": entry.get("model"), "messages": messages}
        if "tools" in req:
            body["tools"] = tools
        body.update(req.get("params") or {})
        yield entry, body


def keyed(doc: dict) -> Iterator[tuple[dict, dict, str, int]]:
    """(entry, body, request digest, occurrence) for every entry: the occurrence is how many identical
    requests the case sent before this one (failed ones too: the writer counted every send). The entries
    kept are whole and from the start, so a bounded transcript gives the same occurrences."""
    seen: dict[str, int] = {}
    cache: dict = {}
    for entry, body in requests(doc):
        digest = keys.request_digest(doc.get("endpoint"), body, cache)
        occurrence = seen.get(digest, 0)
        seen[digest] = occurrence + 1
        yield entry, body, digest, occurrence
