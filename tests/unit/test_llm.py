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
    waits = [decide(LLMHTTPError("x", status=503), a, 5, base_s=1.0, rng=rng).wait_s for a in range(5)]
    for a, w in enumerate(waits):
        assert 0.5 * 2**a <= w <= 2**a
    assert not decide(LLMHTTPError("x", status=503), 5, 5).retry
    assert not decide(LLMTimeout("t"), 5, 5).retry


def test_a_timed_out_request_is_retried_at_once():
    """Its timeout was the wait: a hung request must not cost the case a backoff on top."""
    waits = [decide(LLMTimeout("t"), a, 5, rng=random.Random(a)).wait_s for a in range(5)]
    assert all(w <= 0.1 for w in waits)


def test_retry_after_is_honoured():
    d = decide(LLMHTTPError("x", status=429, retry_after=7.0), 0, 3, base_s=0.1)
    assert d.retry and d.wait_s >= 7.0
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    # an HTTP date: the time until then (a past date means now)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


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
                     observer=lambda m, code, s, *_: observed.append(code), **kw)
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


# ---------------------------------------------------------------- wait headers and the 429 time budget

import datetime as dt  # noqa: E402

from benchpilot_runner.llm.base import CASE_DEADLINE, EndpointUnavailable, LLMAuthError  # noqa: E402
from benchpilot_runner.llm.client import EndpointHealth, parse_completion  # noqa: E402
from benchpilot_runner.llm.limits import EndpointLimiter  # noqa: E402
from benchpilot_runner.llm.retry import parse_duration, wait_from_headers  # noqa: E402

NOW = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("headers,expected", [
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after": "2.5"}, 2.5),
    ({"Retry-After": "Tue, 24 Nov 2026 12:00:30 GMT"}, 30.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"llm_provider-retry-after": "42"}, 42.0),  # LiteLLM forwards the provider's header so
    ({"llm_provider-retry-after-ms": "250"}, 0.25),
    ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
    ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
    ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "1m30s"}, 90.0),
    ({"llm_provider-x-ratelimit-reset-requests": "12s"}, 12.0),
    ({"Retry-After": "3", "x-ratelimit-reset-requests": "50s"}, 3.0),  # explicit wins
    ({"x-ratelimit-reset": str(NOW.timestamp() + 20)}, 20.0),  # an epoch timestamp
    ({"Retry-After": "soon"}, None),
    ({"Retry-After": "nan"}, None),
    ({}, None),
])
def test_wait_headers(headers, expected):
    got = wait_from_headers(headers, now_epoch=NOW.timestamp(), now=NOW)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_durations():
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration("abc") is None and parse_duration("5x") is None


def test_429_budget_is_time_not_count():
    exc = LLMHTTPError("x", status=429, retry_after=20.0)
    # far more 429s than max_retries are waited out while the case has time
    assert decide(exc, 0, 2, throttled=30, remaining_s=300).retry
    # but never past the case deadline
    d = decide(exc, 0, 2, throttled=0, remaining_s=10)
    assert not d.retry and "deadline" in d.reason
    # a 429 without a hint backs off towards a minute, not 3.5 s in total
    rng = random.Random(1)
    waits = [decide(LLMHTTPError("x", status=429), 0, 2, throttled=n, rng=rng).wait_s for n in range(8)]
    assert sum(waits) > 60


async def test_client_waits_out_a_minute_window_of_429s():
    """A gateway answering 429 with its wait in llm_provider-retry-after for longer than the old budget."""
    items = [HTTPResponse(429, {"llm_provider-retry-after": "15"}, b"rate limited") for _ in range(5)]
    t = Script(*items, HTTPResponse(200, {}, OK_BODY))
    c, sleeps, observed = client(t, max_retries=1)
    token = CASE_DEADLINE.set(time.monotonic() + 3600)
    try:
        await c.chat("m", [], [])
    finally:
        CASE_DEADLINE.reset(token)
    assert observed == ["429"] * 5 + ["200"] and len(sleeps) == 5 and all(s >= 15 for s in sleeps)


# ---------------------------------------------------------------- malformed answers


def _body(**message):
    return json.dumps({"choices": [{"message": {"role": "assistant", **message}}]}).encode()


@pytest.mark.parametrize("body", [
    _body(content="x", tool_calls="not-a-list"),
    _body(content="x", tool_calls=[None]),
    _body(content="x", tool_calls=[{"function": {"name": 5}}]),
    _body(content="x", tool_calls=[{"function": {"name": "f", "arguments": 3}}]),
    _body(content=7),
    json.dumps({"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "lots"}}).encode(),
    json.dumps({"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": -1}}).encode(),
    json.dumps({"choices": [{"message": {"content": "x"}}], "usage": [1]}).encode(),
    json.dumps({"choices": []}).encode(), json.dumps({"choices": ["x"]}).encode(), json.dumps([1]).encode(),
    json.dumps({"error": {"message": "overloaded"}}).encode(), b"{", b"\xff\xfe", b"[" * 100000,
])
def test_anything_but_a_chat_completion_is_bad_response(body):
    with pytest.raises(LLMBadResponse) as err:
        parse_completion(body)
    assert err.value.error_type == "bad_response" and is_transient(err.value)


def test_lenient_where_the_meaning_is_clear():
    r = parse_completion(_body(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                               tool_calls=[{"function": {"name": "f", "arguments": {"x": 1}}}]))
    assert r.message["content"] == "ab" and json.loads(r.tool_calls[0]["function"]["arguments"]) == {"x": 1}


# ---------------------------------------------------------------- endpoint health


async def test_auth_refusals_stop_the_endpoint_after_a_few():
    t = Script(*[HTTPResponse(401, {}, b'{"error": "bad key Bearer sk-secret"}') for _ in range(3)])
    c, sleeps, _ = client(t)
    for _ in range(3):
        with pytest.raises(LLMAuthError) as err:
            await c.chat("m", [], [])
        assert "sk-secret" not in str(err.value)
    assert sleeps == [] and c.health.state == "auth_refused"
    with pytest.raises(EndpointUnavailable):
        await c.chat("m", [], [])
    assert len(t.calls) == 3  # nothing more was sent


def test_down_only_after_calls_in_a_row_fail():
    h = EndpointHealth("e", down_trip=3)
    h.failed(LLMConnectionError("refused"))
    h.failed(LLMConnectionError("refused"))
    h.ok()  # an answer in between resets the count
    h.failed(LLMConnectionError("refused"))
    h.failed(LLMTimeout("t"))
    assert h.available
    h.failed(LLMHTTPError("x", status=503))
    assert not h.available and "stopped answering" in h.reason
    h2 = EndpointHealth("e", down_trip=2)
    h2.failed(LLMConnectionError("refused"))
    h2.failed(LLMConnectionError("refused"))
    assert "never answered" in h2.reason


# ---------------------------------------------------------------- the endpoint limiter


async def test_limiter_holds_requests_per_minute():
    lim = EndpointLimiter(requests_per_minute=3000)  # 50/s, starting empty: no burst above the limit
    t0 = time.monotonic()
    for _ in range(26):
        await lim.acquire()
    assert time.monotonic() - t0 >= 25 / 50 * 0.9


def test_one_endpoint_used_by_models_of_two_providers_is_refused():
    """A client speaks one provider's protocol: models of two providers on one endpoint is a spec error
    naming both, never a silent pick of one of them."""
    import dataclasses

    from benchpilot_runner.contract.fields import SpecError
    from benchpilot_runner.contract.parse import parse_manifest
    from benchpilot_runner.contract.types import ModelSpec
    from benchpilot_runner.health import Heartbeat
    from benchpilot_runner.metrics import RunnerMetrics
    from benchpilot_runner.models import build_clients
    from tests.helpers import manifest

    spec = parse_manifest(manifest(matrix={"models": ["openai/a"], "promptTypes": ["baseline"],
                                           "difficulties": ["easy"], "taskTypes": ["simple_task"],
                                           "instances": 1},
                                   sharding={"shards": 1}, endpoint={"baseURL": "http://127.0.0.1:9/v1"}))
    other = ModelSpec(name="other/b", endpoint=spec.models[0].endpoint, model="b", provider="other")
    mixed = dataclasses.replace(spec, models=(*spec.models, other))
    with pytest.raises(SpecError, match=r"two providers \(openai, other\)"):
        build_clients(mixed, RunnerMetrics(), Heartbeat(60), env={})
    assert build_clients(spec, RunnerMetrics(), Heartbeat(60), env={}).clients  # one provider: fine
