"""Throttling behaviours of the fake LLM server's endpoints (prefixes), applied before any model's.

``Faults``: shares of requests answered 429 (``Retry-After``), 500, never, or with a malformed body,
at random and independent of the rate, as shared gateways and busy backends do. ``StatedLimit``: a
per-minute limit refilled continuously and stated in every answer's headers, in OpenAI's
(``x-ratelimit-*``), Anthropic's (``anthropic-ratelimit-*``) or a LiteLLM gateway's
(``llm_provider-x-ratelimit-*``) words. Every request they answer is logged on the server as any other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Faults:
    """Shares of an endpoint's requests answered badly at random, whatever the rate."""

    throttle: float = 0.0  # 429 with Retry-After: retry_after
    retry_after: float = 1.0
    error: float = 0.0  # 500
    hang: float = 0.0  # never answered
    garbage: float = 0.0  # a 200 with a malformed body

    def draw(self, rng: random.Random) -> str | None:
        x = rng.random()
        for kind in ("throttle", "error", "hang", "garbage"):
            x -= getattr(self, kind)
            if x < 0:
                return kind
        return None


class StatedLimit:
    """A limit of ``per_minute`` requests, refilled continuously (``burst_s`` seconds of it at most, as
    providers enforce a per-minute limit over shorter spans), stated in every answer's headers."""

    def __init__(self, per_minute: float, burst_s: float, style: str):
        self.per_minute, self.style = per_minute, style
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.tokens, self.last = self.capacity, None

    def take(self, now: float) -> tuple[bool, dict[str, str]]:
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        ok = self.tokens >= 1
        if ok:
            self.tokens -= 1
        return ok, self.headers()

    def headers(self) -> dict[str, str]:
        remaining = int(self.tokens)
        reset_s = (self.capacity - self.tokens) / self.rate
        if self.style == "anthropic":
            when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=reset_s)
            return {"anthropic-ratelimit-requests-limit": f"{self.per_minute:g}",
                    "anthropic-ratelimit-requests-remaining": str(remaining),
                    "anthropic-ratelimit-requests-reset": when.isoformat(timespec="milliseconds")}
        names = {"x-ratelimit-limit-requests": f"{self.per_minute:g}", "x-ratelimit-remaining-requests": str(remaining),
                 "x-ratelimit-reset-requests": f"{reset_s * 1000:.0f}ms"}
        if self.style == "gateway":
            return {f"llm_provider-{k}": v for k, v in names.items()}
        return names

    def retry_after(self) -> float:
        return max(0.01, (1 - self.tokens) / self.rate)


class Throttling:
    """The throttling behaviours of each endpoint prefix, applied before any model's behaviour."""

    def __init__(self, fake):  # the FakeLLM whose requests_log, requests and throttled it adds to
        self.fake = fake
        self.faults: dict[str, tuple[Faults, random.Random]] = {}
        self.stated: dict[str, StatedLimit] = {}
        self.answered: Counter = Counter()  # (prefix, kind) -> requests answered so (kind None: passed on)
        self.statuses: list[tuple[float, str, int]] = []  # (time of the request, prefix, status) of every answer

    def set_faults(self, prefix: str, seed: int = 0, **shares: float) -> None:
        self.faults[prefix] = (Faults(**shares), random.Random(seed))

    def set_stated_limit(self, prefix: str, per_minute: float, burst_s: float = 2.0, style: str = "openai") -> None:
        if style not in ("openai", "anthropic", "gateway"):
            raise ValueError(f"style {style!r}: openai, anthropic or gateway")
        self.stated[prefix] = StatedLimit(per_minute, burst_s, style)

    def clear(self, prefix: str) -> None:
        self.faults.pop(prefix, None)
        self.stated.pop(prefix, None)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        now = asyncio.get_running_loop().time()
        prefix = request.match_info.get("prefix", "")
        resp = await self._answer(request, handler, prefix, now)
        self.statuses.append((now, prefix, resp.status))
        return resp

    async def _answer(self, request: web.Request, handler, prefix: str, now: float) -> web.StreamResponse:
        if prefix not in self.faults and prefix not in self.stated:
            return await handler(request)
        headers: dict[str, str] = {}
        if (limit := self.stated.get(prefix)) is not None:
            ok, headers = limit.take(now)
            if not ok:
                return await self._refuse(request, prefix, now, "stated_limit", 429,
                                          {**headers, "Retry-After": f"{limit.retry_after():.3f}"})
        if prefix in self.faults:
            faults, rng = self.faults[prefix]
            kind = faults.draw(rng)
            if kind == "throttle":
                return await self._refuse(request, prefix, now, kind, 429, {"Retry-After": f"{faults.retry_after:g}"})
            if kind == "error":
                return await self._refuse(request, prefix, now, kind, 500, {})
            if kind in ("hang", "garbage"):
                await self._log(request, prefix, now, kind)
                if kind == "hang":
                    await asyncio.Event().wait()
                return web.Response(text='{"choices": [{"message": ', content_type="application/json")
        self.answered[(prefix, None)] += 1
        resp = await handler(request)
        resp.headers.update(headers)
        return resp

    async def _log(self, request: web.Request, prefix: str, now: float, kind: str) -> None:
        try:
            model = str((await request.json()).get("model", ""))
        except ValueError:
            model = ""
        self.fake.requests[model] += 1
        self.fake.requests_log.append((now, prefix, model))
        self.answered[(prefix, kind)] += 1

    async def _refuse(self, request, prefix, now, kind, status, headers) -> web.Response:
        await self._log(request, prefix, now, kind)
        if status == 429:
            self.fake.throttled[prefix] += 1
        return web.json_response({"error": {"message": f"fake {kind}", "type": kind}}, status=status, headers=headers)
