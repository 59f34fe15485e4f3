"""Tool use by prompt, for models whose serving stack has no native tool calls (``toolCalling: prompt``). Pure.

A suite converses in OpenAI's native shape either way: it sends ``tools``, reads ``tool_calls`` and
answers with ``role: tool`` messages. For a model in prompt mode the core translates each turn
(:mod:`benchpilot_runner.cases`): :func:`to_prompt` puts the tools and the answer format in the
system message and turns the history into plain messages any chat template can read (the
model's own calls as it wrote them, the tool results as one user message per turn), and the
request carries no ``tools``; :func:`read_answer` reads the calls out of the answer's text
(:mod:`.content_calls`) and hands the suite a native-shaped answer. An answer that tried to call a
tool but could not be read carries the reason in ``unreadable``. This is Berkeley's function-calling
leaderboard's "prompt" mode next to its native "FC" mode, for multi-turn tool use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .base import ChatResult
from .content_calls import read_calls

MODES = ("native", "prompt")
FORMAT = (
    "Tools are not built into this conversation: call them by writing the call as JSON. "
    "To call a tool, answer with one JSON object in a ```json code block:\n"
    "```json\n"
    '{"name": "<tool name>", "arguments": {"<parameter>": <value>}}\n'
    "```\n"
    "The tool's result comes back in the next message. Call only the tools listed here, with the "
    "arguments their schema allows. When the task is complete, answer with a short final message "
    "that holds no JSON."
)
RESULTS_HEADER = "Tool results:"


@dataclass
class PromptAnswer(ChatResult):
    """An answer read in prompt mode: ``tool_calls`` were read from the text (or sent natively)."""

    unreadable: str | None = None  # the answer tried to call a tool and no call could be read: why


def tools_text(tools: list[dict]) -> str:
    """The offered tools, one JSON line each: name, description and the JSON Schema of the arguments."""
    lines = []
    for t in tools:
        fn = t.get("function") or t
        lines.append(json.dumps({"name": fn.get("name"), "description": fn.get("description", ""),
                                 "parameters": fn.get("parameters") or {"type": "object", "properties": {}}},
                                separators=(", ", ": ")))
    return "Available tools (name, description, JSON Schema of the arguments):\n" + "\n".join(lines) + "\n\n" + FORMAT


def to_prompt(messages: list[dict], tools: list[dict]) -> list[dict]:
    """The conversation as plain messages, with the tools and the answer format in the system message."""
    out: list[dict] = []
    names: dict[str, str] = {}  # tool_call_id -> tool name, from the assistant message that made the call
    results: list[str] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            name = names.get(str(m.get("tool_call_id")), "tool")
            results.append(f"{name}: {m.get('content') or ''}")
            continue
        if results:
            out.append({"role": "user", "content": RESULTS_HEADER + "\n" + "\n".join(results)})
            results = []
        if role == "assistant":
            calls = m.get("tool_calls") or []
            names.update({str(c.get("id")): (c.get("function") or {}).get("name", "tool") for c in calls})
            out.append({"role": "assistant", "content": m.get("content") or _calls_text(calls)})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    if results:
        out.append({"role": "user", "content": RESULTS_HEADER + "\n" + "\n".join(results)})
    block = tools_text(tools)
    if out and out[0]["role"] == "system":
        out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}"}
    else:
        out.insert(0, {"role": "system", "content": block})
    return out


def _calls_text(calls: list[dict]) -> str:
    """Calls the server sent natively, written in the format the prompt asks for (keeps the history readable)."""
    parts = []
    for c in calls:
        fn = c.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError):
            args = fn.get("arguments")
        parts.append("```json\n" + json.dumps({"name": fn.get("name"), "arguments": args}) + "\n```")
    return "\n".join(parts)


def read_answer(result: ChatResult, tools: list[dict], turn: int = 0) -> PromptAnswer:
    """The answer with the calls its text holds as ``tool_calls`` (ids ``call_<turn>_<i>``)."""
    message = dict(result.message)
    if message.get("tool_calls"):  # the server read them itself: take them as they are
        return PromptAnswer(message, result.prompt_tokens, result.completion_tokens)
    names = [(t.get("function") or t).get("name") for t in tools]
    read = read_calls(message.get("content"), [n for n in names if isinstance(n, str)])
    if read.calls:
        message["tool_calls"] = [{"id": f"call_{turn}_{i}", "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments_json()}}
                                 for i, c in enumerate(read.calls)]
    return PromptAnswer(message, result.prompt_tokens, result.completion_tokens, unreadable=read.unreadable)
