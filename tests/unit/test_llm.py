"""The LLM client with an injected transport, the pure retry decision, and the rate limiter."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest

from benchpilot_runner.llm.base import LLMBadResponse, LLMConnectionError, LLMHTTPError, LLMTimeout
from benchpilot_runner.llm.client import HTTPResponse, OpenAIClient
from benchpilot_runner.llm.limits import TokenBucket
from benchpilot_runner.llm.retry import decide, is_transient, parse_retry_after

OK_BODY = json.dumps({"choices": [{"message": {"role": "assistant", "content": "hi",
                                               "tool_calls": [{"id": "1", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]}}],
                      "usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()


@pytest.mark.parametrize("exc,transient", [
    (LLMHTTPError("x", status=429), True), (LLMHTTPError("x", status=500), True),
    (LLMHTTPError("x", status=503), True), (LLMHTTPError("x", status=400), False),
    (LLMHTTPError("x", status=401), False), (LLMHTTPError("x", status=404), False),
    (LLMTimeout("x"), True), (LLMConnectionError("x"), True), (LLMBadResponse("x"), True),
    (ValueError("x"), False)])
def test_which_failures_are_transient(exc, transient):
    assert is_transient(exc) is transient
    assert decide(exc, 0, 3).retry is transient


def test_backoff_grows_with_jitter_and_stops_at_max_retries():
    rng = random.Random(0)
    waits = [decide(LLMTimeout("t"), a, 5, base_s=1.0, rng=rng).wait_s for a in range(5)]
    for a, w in enumerate(waits):
        assert 0.5 * 2**a <= w <= 2**a
    assert not decide(LLMTimeout("t"), 5, 5).retry


def test_retry_after_is_honoured():
    d = decide(LLMHTTPError("x", status=429, retry_after=7.0), 0, 3, base_s=0.1)
    assert d.retry and d.wait_s >= 7.0
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


class Script:
    """A transport that plays a list of responses (or exceptions, or 'hang')."""

    def __init__(self, *items):
        self.items, self.calls = list(items), []

    async def __call__(self, url, headers, payload):
        self.calls.append((url, headers, payload))
        item = self.items.pop(0)
        if item == "hang":
            await asyncio.Event().wait()
        if isinstance(item, Exception):
            raise item
        return item


def client(transport, **kw):
    sleeps = []

    async def sleep(s):
        sleeps.append(s)

    observed = []
    c = OpenAIClient("http://llm/v1/", "sk-secret", transport=transport, sleep=sleep,
                     observer=lambda m, code, s: observed.append(code), **kw)
    return c, sleeps, observed


async def test_success_parses_tool_calls_and_usage():
    t = Script(HTTPResponse(200, {}, OK_BODY))
    c, _, observed = client(t)
    r = await c.chat("m", [{"role": "user", "content": "x"}], [])
    assert r.tool_calls[0]["function"]["name"] == "f" and (r.prompt_tokens, r.completion_tokens) == (7, 3)
    url, headers, payload = t.calls[0]
    assert url == "http://llm/v1/chat/completions" and headers["Authorization"] == "Bearer sk-secret"
    assert payload["model"] == "m" and observed == ["200"]
    assert "sk-secret" not in repr(c)


async def test_429_then_success_waits_retry_after():
    t = Script(HTTPResponse(429, {"retry-after": "4"}, b"slow"), HTTPResponse(200, {}, OK_BODY))
    c, sleeps, observed = client(t)
    await c.chat("m", [], [])
    assert len(sleeps) == 1 and sleeps[0] >= 4 and observed == ["429", "200"]


async def test_non_transient_4xx_is_not_retried():
    t = Script(HTTPResponse(400, {}, b"bad request"))
    c, sleeps, _ = client(t)
    with pytest.raises(LLMHTTPError) as err:
        await c.chat("m", [], [])
    assert err.value.status == 400 and sleeps == []


async def test_request_timeout_then_give_up_after_max_retries():
    t = Script("hang", "hang", "hang")
    c, sleeps, observed = client(t, request_timeout_s=0.05, max_retries=2)
    with pytest.raises(LLMTimeout):
        await c.chat("m", [], [])
    assert len(t.calls) == 3 and len(sleeps) == 2 and observed == ["timeout"] * 3


async def test_malformed_and_connection_errors():
    t = Script(HTTPResponse(200, {}, b"{oops"), LLMConnectionError("refused"), HTTPResponse(200, {}, OK_BODY))
    c, _, observed = client(t)
    await c.chat("m", [], [])
    assert observed == ["bad_response", "connection", "200"]


async def test_token_bucket_limits_rate():
    bucket = TokenBucket(rate=50, burst=1)
    t0 = time.monotonic()
    for _ in range(11):
        await bucket.acquire()
    assert time.monotonic() - t0 >= 10 / 50 * 0.9


def test_token_bucket_rejects_bad_rate():
    with pytest.raises(ValueError):
        TokenBucket(0)
