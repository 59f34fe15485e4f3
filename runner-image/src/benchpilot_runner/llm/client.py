"""OpenAI-compatible chat-completions client with tools.

The transport is injected: production uses :class:`AiohttpTransport`; tests pass a plain async
function. Every request waits for the shared rate limiter, has its own timeout, and is retried
by the pure decision in :mod:`.retry`. The API key is sent as a header and never logged.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

import aiohttp

from .base import ChatResult, LLMBadResponse, LLMConnectionError, LLMError, LLMHTTPError, LLMTimeout
from .limits import TokenBucket
from .retry import decide, parse_retry_after


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
        except aiohttp.ClientError as exc:
            raise LLMConnectionError(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise LLMConnectionError(f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# observer(model, code, seconds): code is the HTTP status as text, or an error kind
Observer = Callable[[str, str, float], None]


class OpenAIClient:
    def __init__(self, base_url: str, api_key: str | None, *, transport: Transport,
                 limiter: TokenBucket | None = None, request_timeout_s: float = 30.0, max_retries: int = 3,
                 observer: Observer | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.transport = transport
        self.limiter = limiter
        self.request_timeout_s = request_timeout_s
        self.max_retries = max_retries
        self.observer = observer or (lambda model, code, seconds: None)
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIClient(url={self.url!r})"

    async def chat(self, model: str, messages: list[dict], tools: list[dict]) -> ChatResult:
        payload = {"model": model, "messages": messages, "tools": tools, "tool_choice": "auto",
                   "temperature": 0}
        attempt = 0
        while True:
            try:
                return await self._once(model, payload)
            except LLMError as exc:
                decision = decide(exc, attempt, self.max_retries)
                if not decision.retry:
                    raise
                await self._sleep(decision.wait_s)
                attempt += 1

    async def _once(self, model: str, payload: dict) -> ChatResult:
        if self.limiter is not None:
            await self.limiter.acquire()
        start = time.monotonic()
        code = "error"
        try:
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    resp = await self.transport(self.url, self._headers, payload)
            except TimeoutError:
                code = "timeout"
                raise LLMTimeout(f"no answer within {self.request_timeout_s:g}s") from None
            except LLMConnectionError:
                code = "connection"
                raise
            code = str(resp.status)
            if resp.status >= 400:
                retry_after = parse_retry_after(_header(resp.headers, "Retry-After"))
                raise LLMHTTPError(f"HTTP {resp.status}: {resp.body[:200].decode('utf-8', 'replace')}",
                                   status=resp.status, retry_after=retry_after)
            return _parse(resp.body)
        except LLMBadResponse:
            code = "bad_response"
            raise
        finally:
            self.observer(model, code, time.monotonic() - start)


def _header(headers: dict, name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def _parse(body: bytes) -> ChatResult:
    try:
        data = json.loads(body)
        message = data["choices"][0]["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMBadResponse(f"malformed chat completion ({type(exc).__name__}): "
                             f"{body[:120].decode('utf-8', 'replace')!r}") from None
    usage = data.get("usage") or {}
    msg = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        msg["tool_calls"] = message["tool_calls"]
    return ChatResult(msg, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
