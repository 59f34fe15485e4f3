"""OpenAI-compatible chat-completions client with tools, one per endpoint.

The transport is injected: production uses :class:`AiohttpTransport` (one connection pool per
endpoint); tests pass a plain async function. Every request waits for the endpoint's limiter, has
its own timeout, and is retried by the pure decision in :mod:`.retry`. The API key is sent as a
header and never logged; every error text is scrubbed (a server may echo the key back).

:class:`EndpointHealth` stops a run from burning every case on an endpoint that cannot serve it:
after a few 401/403 answers in a row it refuses the key for the rest of the run, and after several
calls in a row failed for good (connection refused, timeouts, 5xx) it declares the endpoint down.
Either way the endpoint's remaining cases are left unrun, not recorded as failures.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

import aiohttp

from ..redact import scrub
from .base import (CASE_DEADLINE, ChatResult, EndpointUnavailable, LLMAuthError, LLMBadResponse,
                   LLMConnectionError, LLMError, LLMHTTPError, LLMTimeout)
from .limits import EndpointLimiter
from .retry import decide, is_throttled, wait_from_headers

AUTH_TRIP = 3  # 401/403 answers in a row before the endpoint's key is taken as refused
DOWN_TRIP = 6  # calls in a row that failed for good (after retries) before the endpoint is taken as down
DEFAULT_BUDGET_S = 300.0  # how long 429s may be waited out when no case deadline is set


@dataclass
class HTTPResponse:
    status: int
    headers: dict
    body: bytes


class Transport(Protocol):
    async def __call__(self, url: str, headers: dict, payload: dict) -> HTTPResponse: ...


class AiohttpTransport:
    """One pooled aiohttp session; connection errors become :class:`LLMConnectionError`."""

    def __init__(self, limit: int = 100):
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, headers: dict, payload: dict) -> HTTPResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit), timeout=aiohttp.ClientTimeout(total=None))
        try:
            async with self._session.post(url, json=payload, headers=headers) as resp:
                body = await resp.read()
                return HTTPResponse(resp.status, dict(resp.headers), body)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise LLMConnectionError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# observer(model, code, seconds, prompt_tokens, completion_tokens): code is the HTTP status or an error kind
Observer = Callable[..., None]


class EndpointHealth:
    """Whether an endpoint is still worth sending to; see the module's docstring."""

    def __init__(self, name: str, auth_trip: int = AUTH_TRIP, down_trip: int = DOWN_TRIP):
        self.name, self.auth_trip, self.down_trip = name, auth_trip, down_trip
        self.auth_in_row = 0
        self.failed_in_row = 0
        self.answered = 0
        self.state = "ok"  # ok | auth_refused | down
        self.reason = ""

    @property
    def available(self) -> bool:
        return self.state == "ok"

    def ok(self) -> None:
        self.answered += 1
        self.auth_in_row = self.failed_in_row = 0

    def failed(self, exc: LLMError) -> None:
        """A call failed for good (its retries spent)."""
        if isinstance(exc, LLMAuthError):
            self.auth_in_row += 1
            if self.auth_in_row >= self.auth_trip and self.state == "ok":
                self.state = "auth_refused"
                self.reason = (f"endpoint {self.name!r} refused the API key: {self.auth_in_row} answers "
                               f"{exc.status} in a row ({scrub(str(exc))[:160]})")
            return
        if isinstance(exc, (LLMConnectionError, LLMTimeout)) or (isinstance(exc, LLMHTTPError)
                                                                 and (exc.status or 0) >= 500):
            self.failed_in_row += 1
            if self.failed_in_row >= self.down_trip and self.state == "ok":
                self.state = "down"
                never = "never answered" if not self.answered else "stopped answering"
                self.reason = (f"endpoint {self.name!r} {never}: {self.failed_in_row} calls in a row failed "
                               f"after their retries ({exc.error_type}: {scrub(str(exc))[:160]})")


class OpenAIClient:
    def __init__(self, base_url: str, api_key: str | None, *, transport: Transport,
                 limiter: EndpointLimiter | None = None, request_timeout_s: float = 30.0, max_retries: int = 3,
                 observer: Observer | None = None, headers: dict | None = None, name: str = "default",
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.base_url = base_url
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {**(headers or {}), "Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.transport = transport
        self.limiter = limiter
        self.request_timeout_s = request_timeout_s
        self.max_retries = max_retries
        self.observer = observer or (lambda *a, **k: None)
        self.health = EndpointHealth(name)
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIClient(name={self.name!r}, url={self.url!r})"

    async def chat(self, model: str, messages: list[dict], tools: list[dict], *, label: str | None = None,
                   params: dict | None = None) -> ChatResult:
        """One chat turn. ``label`` is the model's name in metrics; ``params`` are sent as given."""
        payload = request_body(model, messages, tools, params)
        label = label or model
        deadline = CASE_DEADLINE.get()
        if deadline is None:
            deadline = self._clock() + DEFAULT_BUDGET_S
        attempt = throttled = 0
        while True:
            if not self.health.available:
                raise EndpointUnavailable(self.health.reason)
            try:
                result = await self._once(label, payload)
                self.health.ok()
                return result
            except LLMError as exc:
                decision = decide(exc, attempt, self.max_retries, throttled=throttled,
                                  remaining_s=deadline - self._clock())
                if not decision.retry:
                    self.health.failed(exc)
                    raise
                await self._sleep(decision.wait_s)
                if is_throttled(exc):
                    throttled += 1
                else:
                    attempt += 1

    async def _send(self, payload: dict) -> HTTPResponse:
        """One request under the limiter (which hears what became of it) and the request timeout."""
        limiter = self.limiter
        if limiter is None:
            async with asyncio.timeout(self.request_timeout_s):
                return await self.transport(self.url, self._headers, payload)
        async with limiter.slot():
            ticket = limiter.sending()
            resp = None
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    resp = await self.transport(self.url, self._headers, payload)
            finally:
                limiter.answered(ticket, resp.status if resp is not None else None,
                                 resp.headers if resp is not None else None)
            return resp

    async def _once(self, label: str, payload: dict) -> ChatResult:
        limiter = self.limiter
        # estimated only where a tokens-per-minute limit needs it (it serialises the tool schemas)
        expected = _estimate_tokens(payload) if limiter is not None and limiter.counts_tokens else 0.0
        if limiter is not None:
            await limiter.acquire(expected)
        start = time.monotonic()
        code = "error"
        result: ChatResult | None = None
        try:
            try:
                resp = await self._send(payload)
            except TimeoutError:
                code = "timeout"
                raise LLMTimeout(f"no answer within {self.request_timeout_s:g}s") from None
            except LLMConnectionError as exc:
                code = "connection"
                raise LLMConnectionError(scrub(str(exc))) from None
            code = str(resp.status)
            if resp.status >= 400:
                cls = LLMAuthError if resp.status in (401, 403) else LLMHTTPError
                text = scrub(resp.body[:300].decode("utf-8", "replace"))
                raise cls(f"HTTP {resp.status}: {text}", status=resp.status,
                          retry_after=wait_from_headers(resp.headers, now_epoch=time.time()))
            try:
                result = parse_completion(resp.body)
            except LLMBadResponse:
                code = "bad_response"
                raise
            return result
        finally:
            if limiter is not None and limiter.counts_tokens:
                actual = (result.prompt_tokens + result.completion_tokens) if result else 0
                limiter.settle(expected, actual or expected)
            self.observer(label, code, time.monotonic() - start,
                          result.prompt_tokens if result else 0, result.completion_tokens if result else 0)


def request_body(model: str, messages: list[dict], tools: list[dict], params: dict | None = None) -> dict:
    """The JSON body of one chat-completions request, exactly as it is sent (and as answers/ keys it)."""
    payload = {"model": model, "messages": messages, "tools": tools, "tool_choice": "auto", "temperature": 0}
    if not tools:
        payload.pop("tools"), payload.pop("tool_choice")
    payload.update(params or {})
    return payload


def _estimate_tokens(payload: dict) -> float:
    """A request's expected tokens before the answer: ~4 characters a token, plus the answer's cap."""
    size = sum(len(str(m.get("content") or "")) + 16 for m in payload.get("messages") or [])
    size += len(json.dumps(payload.get("tools") or [])) // 2
    return size / 4 + float(payload.get("max_tokens") or payload.get("max_completion_tokens") or 256)


def _bad(why: str, body: bytes) -> LLMBadResponse:
    return LLMBadResponse(f"malformed chat completion ({why}): {scrub(body[:120].decode('utf-8', 'replace'))!r}")


def _count(usage: dict, key: str, body: bytes) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 \
            or value > 1e12 or (isinstance(value, float) and not value.is_integer()):
        raise _bad(f"usage.{key} is not a token count", body)
    return int(value)


def parse_completion(body: bytes) -> ChatResult:
    """A chat completion's message, checked field by field: anything else is :class:`LLMBadResponse`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _bad("not JSON", body) from None
    if not isinstance(data, dict):
        raise _bad("not a JSON object", body)
    if "error" in data and not data.get("choices"):
        raise _bad("an error object instead of choices", body)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _bad("no choices", body)
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise _bad("choices[0].message is not an object", body)
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep their text
        if not all(isinstance(p, dict) for p in content):
            raise _bad("content parts are not objects", body)
        content = "".join(str(p.get("text") or "") for p in content)
    elif content is not None and not isinstance(content, str):
        raise _bad("content is not text", body)
    msg: dict[str, Any] = {"role": "assistant", "content": content}
    raw_calls = message.get("tool_calls")
    if raw_calls is not None:
        if not isinstance(raw_calls, list):
            raise _bad("tool_calls is not a list", body)
        calls = []
        for i, tc in enumerate(raw_calls):
            fn = tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _bad(f"tool_calls[{i}] has no function name", body)
            args = fn.get("arguments")
            if isinstance(args, dict):
                args = json.dumps(args)
            elif args is None:
                args = "{}"
            elif not isinstance(args, str):
                raise _bad(f"tool_calls[{i}].function.arguments is not a string", body)
            call_id = tc.get("id")
            calls.append({"id": call_id if isinstance(call_id, str) else f"call_{i}", "type": "function",
                          "function": {"name": fn["name"], "arguments": args}})
        if calls:
            msg["tool_calls"] = calls
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise _bad("usage is not an object", body)
    usage = usage or {}
    return ChatResult(msg, _count(usage, "prompt_tokens", body), _count(usage, "completion_tokens", body),
                      finish_reason=_text(choices[0].get("finish_reason")), served_model=_text(data.get("model")),
                      fingerprint=_text(data.get("system_fingerprint")))


def _text(value: Any) -> str | None:
    """A short text field of a completion (served model, fingerprint, finish reason) or None."""
    return value[:200] if isinstance(value, str) and value else None
