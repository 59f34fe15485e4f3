"""The client wrapper every endpoint model's chat goes through: it keeps the case's transcript and,
with reuse on, answers a request the index already holds without calling the provider.

A hit costs nothing: its tokens are 0 in the row (its original tokens are ``saved_tokens``) and it
is marked ``reused``. In replay mode (``benchpilot rescore``) nothing ever reaches the provider: a
request the transcripts lack fails the case with :class:`NotInTranscript`, saying so.

It also watches the served model: when the model id or ``system_fingerprint`` an endpoint model
answers with changes within a run, it warns once per change (``benchpilot_served_model_changes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..llm.base import ChatResult, LLMError
from ..llm.client import request_body
from . import keys
from .index import AnswerIndex
from .transcript import CURRENT

log = logging.getLogger("benchpilot.answers")


class NotInTranscript(LLMError):
    """Replay only: the request is not among the kept transcripts (the case is an error row, never a call)."""

    error_type = "not_in_transcript"


@dataclass
class Answers:
    """What every endpoint client of a process shares: the index, the mode, the counters."""

    index: AnswerIndex | None = None  # None: reuse off (transcripts are kept all the same)
    replay: bool = False
    metrics: object = None  # metrics.RunnerMetrics
    run: str = ""
    hits: int = 0
    misses: int = 0
    _served: dict = field(default_factory=dict)  # model label -> (served model, fingerprint) last seen
    seen: dict = field(default_factory=dict)  # model label -> every "served model (fingerprint)" seen, in order
    drift: list = field(default_factory=list)  # (label, before, now) of every change seen

    def lookup(self, key: str) -> ChatResult | None:
        doc = self.index.get(key)
        if doc is None:
            self.misses += 1
            return None
        self.hits += 1
        usage = doc.get("usage") or [0, 0]
        return ChatResult(doc["message"], 0, 0, finish_reason=doc.get("finish_reason"),
                          served_model=doc.get("served_model"), fingerprint=doc.get("fingerprint"), reused=True,
                          saved_tokens=(int(usage[0] or 0), int(usage[1] or 0)))

    def served(self, label: str, result: ChatResult) -> None:
        """Warn when an endpoint model starts answering as another model or system fingerprint."""
        now = (result.served_model, result.fingerprint)
        if now == (None, None):
            return
        name = f"{now[0]} ({now[1]})" if now[1] else str(now[0])
        names = self.seen.setdefault(label, [])
        if name not in names:
            names.append(name)
        before = self._served.setdefault(label, now)
        if before != now:
            self._served[label] = now
            self.drift.append((label, before, now))
            log.warning("served model changed during the run", extra={
                "model": label, "served_model_before": before[0], "served_model": now[0],
                "fingerprint_before": before[1], "fingerprint": now[1]})
            if self.metrics is not None:
                self.metrics.served_model_changes.labels(self.run, label).inc()

    def wrap(self, endpoints) -> "AnsweringEndpoints":
        return AnsweringEndpoints(endpoints, self)


class AnsweringClient:
    """One endpoint's client seen through :class:`Answers` (same ``chat`` and ``health`` as the client)."""

    def __init__(self, inner, answers: Answers):
        self.inner, self.answers = inner, answers
        self.endpoint = keys.normalize_base_url(inner.base_url)

    @property
    def health(self):
        return getattr(self.inner, "health", None)

    async def chat(self, model: str, messages: list[dict], tools: list[dict], *, label: str | None = None,
                   params: dict | None = None) -> ChatResult:
        body = request_body(model, messages, tools, params)
        transcript = CURRENT.get()
        key = occurrence = None
        if self.answers.index is not None:  # the key only matters when there are answers to look up
            digest = keys.request_digest(self.endpoint, body, transcript.tools_cache if transcript is not None
                                         else None)
            occurrence = transcript.occurrence(digest) if transcript is not None else 0
            key = keys.answer_key(digest, transcript.instance if transcript is not None else 0, occurrence)
        result = self.answers.lookup(key) if key is not None else None
        try:
            if result is None and self.answers.replay:
                raise NotInTranscript(f"request not in the source's transcripts (model {model}, answer key "
                                      f"{key}, occurrence {occurrence}); a rescore never calls a provider")
            if result is None:
                result = await self.inner.chat(model, messages, tools, label=label, params=params)
        except LLMError as exc:
            if transcript is not None:
                transcript.record(self.endpoint, body, error=exc)
            raise
        if transcript is not None:
            transcript.record(self.endpoint, body, result=result)
        self.answers.served(label or model, result)
        return result


class AnsweringEndpoints:
    """``cases.EndpointClients`` whose clients are :class:`AnsweringClient`s."""

    def __init__(self, endpoints, answers: Answers):
        self.endpoints, self.answers = endpoints, answers
        self._clients: dict[str, AnsweringClient] = {}

    def get(self, endpoint: str) -> AnsweringClient:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = AnsweringClient(self.endpoints.get(endpoint), self.answers)
        return client
