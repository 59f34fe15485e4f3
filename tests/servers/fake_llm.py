"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

The requested model name picks the behaviour, so one server serves every test of a session:

- ``follow`` (or anything unknown): replays the prompt's "Suggested workflow" one tool call per
  turn (the first offered tool when there is none), then answers without a tool call;
- ``slow-<ms>``: like ``follow`` after a delay; ``fixed-<ms>``: answers (no tool call) after exactly
  that delay — one request per case, for throughput measurements;
- ``hang``: never answers;
- ``flaky429`` / ``flaky500``: the first attempt of every turn fails with 429 (Retry-After: 1) or 500;
- ``garbage``: always a malformed body; ``garbage-once``: malformed on the first attempt of a turn;
- ``auth``: 401 unless ``Authorization: Bearer <FAKE_LLM_KEY>``;
- ``echo401``: 401 with a body that echoes the request's headers (Authorization included), as some
  servers do;
- ``window-<s>``: 429 to everything for the first ``s`` seconds after its first request, the wait
  given only in LiteLLM's ``llm_provider-retry-after`` header; then answers;
- ``badshape-once``: on the first attempt of a turn a 200 whose ``tool_calls`` is not a list and
  whose ``usage.prompt_tokens`` is ``"lots"``;
- ``drift-<n>``: like ``follow``, served as ``drift-<n>`` with fingerprint ``fp_a`` for its first ``n``
  requests, then as ``drift-<n>-v2`` with ``fp_b`` (a provider that swapped the model mid-run);
- ``priced``: like ``follow``, with usage of 1000 prompt and 100 completion tokens per answer;
- ``t2s.<table>.<shape>``: the SQL a test registered for the prompt's question in
  ``sql_tables[<table>]``, in one of the shapes real models answer in (``tests/servers/sql_answers.py``);
- ``content-<shape>``: a model whose server has no native tool calls: it replays the suggested
  workflow like ``follow`` but writes each call in its answer's text (never ``tool_calls``), in one
  of ``CONTENT_SHAPES`` (bare JSON, a fenced block amid prose, Hermes tags, OpenAI's shape, other key
  names, a list of two calls, two fenced calls, ``name(key=value)``); ``content-invented`` first calls
  a tool that does not exist; ``content-broken`` always writes malformed JSON; ``content-prose``
  never calls anything. Requests are counted in ``content_requests[(model, tools sent?)]``;
- ``sql-<name>``: a text2sql answer, the same query every time (correction rounds too), from
  ``SQL_ANSWERS``: ``hang`` (never ends), ``huge`` (endless rows), ``delete``/``drop``/``attach``/
  ``pragma`` (try to write), ``prose`` (no SQL at all), ``count`` (a valid query).

Several endpoints: ``/<prefix>/v1/chat/completions`` is the same server under another name; every
request is logged as (time, prefix, model) in ``requests_log``. ``limit(prefix, n, window_s)``
makes an endpoint enforce at most ``n`` requests per sliding window, answering 429 with
``Retry-After`` above it, as a provider's per-minute limit does.

Throttling behaviours of an endpoint (prefix), whatever the model (:mod:`tests.servers.throttling`):
``faults(prefix, throttle=0.03, ...)`` answers a share of requests 429 (``Retry-After``), 500, a
malformed body or never, at random and independent of the rate, as shared gateways do;
``stated_limit(prefix, per_minute, style=...)`` enforces a token-bucket limit and states it in every
answer's headers, as OpenAI (``x-ratelimit-*``), Anthropic (``anthropic-ratelimit-*``) or a LiteLLM
gateway (``llm_provider-x-ratelimit-*``) do.

Run it alone with ``python -m tests.servers.fake_llm --port N [--limit N --window S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import threading
from collections import Counter

from aiohttp import web

from .throttling import Throttling

_STEP = re.compile(r"^\d+\. ([a-z_]+)\((.*)\)$")
EXPECTED_KEY = "sk-test-fake-llm-key-0123456789"
SQL_ANSWERS = {
    "hang": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    "huge": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
    "delete": "DELETE FROM customers",
    "drop": "DROP TABLE orders",
    "attach": "ATTACH DATABASE '/tmp/benchpilot-attack.sqlite' AS evil",
    "pragma": "PRAGMA journal_mode = WAL",
    "prose": "I am not sure which table holds that.",
    "count": "SELECT count(*) FROM sqlite_master",
}


def _parse_args(text: str) -> dict:
    out = {}
    for m in re.finditer(r"(\w+)=('(?:[^'\\]|\\.)*'|\[[^\]]*\]|[^,]+)", text):
        key, raw = m.group(1), m.group(2).strip()
        if raw.startswith("'"):
            out[key] = raw[1:-1]
        elif raw.startswith("["):
            out[key] = [x.strip().strip("'") for x in raw[1:-1].split(",") if x.strip()]
        elif raw in ("true", "false"):
            out[key] = raw == "true"
        else:
            try:
                out[key] = int(raw)
            except ValueError:
                try:
                    out[key] = float(raw)
                except ValueError:
                    out[key] = raw
    return out


def _workflow(messages: list[dict]) -> list[tuple[str, dict]]:
    user = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
    steps = []
    for line in user.splitlines():
        m = _STEP.match(line.strip())
        if m:
            steps.append((m.group(1), _parse_args(m.group(2))))
    return steps


def _answer(messages: list[dict], tools: list[dict]) -> dict:
    done = sum(1 for m in messages if m.get("role") == "tool")
    steps = _workflow(messages)
    if not steps and tools:
        steps = [(tools[0]["function"]["name"], {})]
    if done < len(steps):
        name, args = steps[done]
        msg = {"role": "assistant", "content": None, "tool_calls": [{
            "id": f"call_{done}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
    else:
        msg = {"role": "assistant", "content": "Done."}
    return msg


def _one(shape: str, name: str, args: dict) -> str:
    if shape in ("bare", "invented"):
        return json.dumps({"name": name, "arguments": args})
    if shape == "fenced":
        return f"I will call {name} now.\n```json\n{json.dumps({'name': name, 'arguments': args})}\n```\nThen I wait."
    if shape == "hermes":
        return f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>"
    if shape == "openai":
        return json.dumps({"type": "function", "function": {"name": name, "arguments": json.dumps(args)}})
    if shape == "alt":
        return json.dumps({"tool": name, "parameters": args})
    if shape == "pythonic":
        return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"
    return f"```json\n{json.dumps({'name': name, 'arguments': args})}\n```"  # "two": one block per call


CONTENT_SHAPES = {"bare": 1, "fenced": 1, "hermes": 1, "openai": 1, "alt": 1, "pythonic": 1, "list": 2, "two": 2,
                  "invented": 1}


def _content_answer(model: str, messages: list[dict]) -> dict:
    """``content-<shape>``: the next step(s) of the suggested workflow, written as text."""
    shape = model.split("-", 1)[1]
    if shape == "broken":
        return {"role": "assistant", "content": '```json\n{"name": "file_reader" "arguments": {"path": }\n```'}
    steps, turns = _workflow(messages), sum(1 for m in messages if m.get("role") == "assistant")
    if shape == "prose" or not steps:
        return {"role": "assistant", "content": "I would read the input, transform it and write the report."}
    if shape == "invented" and turns == 0:
        return {"role": "assistant", "content": _one("bare", "super_tool", {"goal": "everything"})}
    per_turn = CONTENT_SHAPES[shape]
    done = per_turn * (turns - (shape == "invented"))
    batch = steps[done:done + per_turn]
    if not batch:
        return {"role": "assistant", "content": "Done."}
    if shape == "list":
        text = json.dumps([{"function": n, "args": a} for n, a in batch])
    else:
        text = "\n".join(_one(shape, n, a) for n, a in batch)
    return {"role": "assistant", "content": text}


def _completion(msg: dict, model: str) -> dict:
    return {"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}}


class FakeLLM:
    def __init__(self) -> None:
        self.requests: Counter = Counter()
        self.auth_headers: list[str] = []
        self._attempts: Counter = Counter()
        self._first_seen: dict[str, float] = {}
        self.requests_log: list[tuple[float, str, str]] = []
        self.limits: dict[str, tuple[int, float]] = {}
        self.throttled: Counter = Counter()
        self._recent: dict[str, list[float]] = {}
        self.sql_tables: dict[str, dict[tuple[str, str], str]] = {}  # t2s.<table>.<shape> models
        self.content_requests: Counter = Counter()  # (model, whether the request sent tools) for content-*
        self.throttling = Throttling(self)

    def faults(self, prefix: str, seed: int = 0, **shares: float) -> None:
        """Answer shares of ``prefix``'s requests 429/500/never/malformed at random (:class:`Faults`)."""
        self.throttling.set_faults(prefix, seed, **shares)

    def stated_limit(self, prefix: str, per_minute: float, burst_s: float = 2.0, style: str = "openai") -> None:
        """Enforce ``per_minute`` requests on ``prefix`` and state it in headers (:class:`StatedLimit`)."""
        self.throttling.set_stated_limit(prefix, per_minute, burst_s, style)

    def limit(self, prefix: str, n: int, window_s: float) -> None:
        self.limits[prefix] = (n, window_s)
        self._recent[prefix] = []

    def _over_limit(self, prefix: str, now: float) -> float | None:
        """Seconds until a slot frees, when ``prefix`` is at its limit; else None (and the request counts)."""
        if prefix not in self.limits:
            return None
        n, window = self.limits[prefix]
        recent = [t for t in self._recent[prefix] if now - t < window]
        self._recent[prefix] = recent
        if len(recent) >= n:
            return max(0.01, window - (now - recent[0]))
        recent.append(now)
        return None

    def _first_attempt(self, model: str, messages: list[dict]) -> bool:
        key = hashlib.sha1(json.dumps([model, messages], sort_keys=True).encode()).hexdigest()
        self._attempts[key] += 1
        return self._attempts[key] == 1

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        messages, tools = body.get("messages") or [], body.get("tools") or []
        self.requests[model] += 1
        prefix = request.match_info.get("prefix", "")
        now = asyncio.get_running_loop().time()
        self.requests_log.append((now, prefix, model))
        wait = self._over_limit(prefix, now)
        if wait is not None:
            self.throttled[prefix] += 1
            return web.json_response({"error": "rate limit"}, status=429, headers={"Retry-After": f"{wait:.3f}"})
        if model == "hang":
            await asyncio.Event().wait()
        if model.startswith("fixed-"):
            await asyncio.sleep(int(model.split("-", 1)[1]) / 1000)
            return web.json_response(_completion({"role": "assistant", "content": "Done."}, model))
        if model.startswith("slow-"):
            await asyncio.sleep(int(model.split("-", 1)[1]) / 1000)
        if model == "echo401":
            self.auth_headers.append(request.headers.get("Authorization", ""))
            return web.json_response({"error": {"message": "invalid api key", "request_headers": dict(request.headers)}},
                                     status=401)
        if model.startswith("window-"):
            now = asyncio.get_running_loop().time()
            start = self._first_seen.setdefault(model, now)
            left = float(model.split("-", 1)[1]) - (now - start)
            if left > 0:
                return web.json_response({"error": "rate limit exceeded"}, status=429,
                                         headers={"llm_provider-retry-after": f"{left:.2f}"})
        if model == "badshape-once" and self._first_attempt(model, messages):
            return web.json_response({"choices": [{"message": {"role": "assistant", "content": None,
                                                               "tool_calls": "not-a-list"}}],
                                      "usage": {"prompt_tokens": "lots"}})
        if model.startswith("drift-"):
            later = self.requests[model] > int(model.split("-", 1)[1])
            body = _completion(_answer(messages, tools), f"{model}-v2" if later else model)
            body["system_fingerprint"] = "fp_b" if later else "fp_a"
            return web.json_response(body)
        if model == "priced":
            body = _completion(_answer(messages, tools), model)
            body["usage"] = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
            return web.json_response(body)
        if model == "auth":
            header = request.headers.get("Authorization", "")
            self.auth_headers.append(header)
            if header != f"Bearer {EXPECTED_KEY}":
                return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        if model in ("flaky429", "flaky500", "garbage-once") and self._first_attempt(model, messages):
            if model == "flaky429":
                return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
            if model == "flaky500":
                return web.json_response({"error": "boom"}, status=500)
            return web.Response(text="{not json", content_type="application/json")
        if model == "garbage":
            return web.Response(text='{"choices": "nope"', content_type="application/json")
        if model.startswith("t2s."):
            from tests.servers.sql_answers import answer

            content = answer(self.sql_tables, model, messages)
            return web.json_response(_completion({"role": "assistant", "content": content}, model))
        if model.startswith("content-"):
            self.content_requests[model, bool(tools)] += 1
            return web.json_response(_completion(_content_answer(model, messages), model))
        if model.startswith("sql-"):
            sql = SQL_ANSWERS[model.split("-", 1)[1]]
            content = sql if model == "sql-prose" else f"Here is the query:\n```sql\n{sql}\n```"
            return web.json_response(_completion({"role": "assistant", "content": content}, model))
        return web.json_response(_completion(_answer(messages, tools), model))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2, middlewares=[self.throttling.middleware])
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/{prefix}/v1/chat/completions", self.chat)
        return app


class ServerThread:
    """The fake server on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self) -> None:
        self.fake = FakeLLM()
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="fake-llm")

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        # a client that gives up (timeouts, a killed runner) cancels its handler, as a real gateway does;
        # without it hung handlers linger and are logged as destroyed pending tasks in a later test
        runner = web.AppRunner(self.fake.app(), access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def start(self) -> "ServerThread":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake LLM server did not start")
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}/v1"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--limit", type=int, help="requests per window, for every endpoint prefix given by --prefix")
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--prefix", default="")
    args = ap.parse_args()
    fake = FakeLLM()
    if args.limit:
        fake.limit(args.prefix, args.limit, args.window)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
