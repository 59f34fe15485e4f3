"""Reading tool calls that a model wrote in its text instead of ``tool_calls``. Pure.

Many open models and gateways answer a tool-use request with the call as text: bare JSON, JSON in a
```json fence, Hermes/Qwen ``<tool_call>...</tool_call>`` tags, Llama 3.1's
``<function=name>{...}</function>``, a list of calls, OpenAI's own shape pasted as text, or
``name(key=value)`` (prompted the way Berkeley's leaderboard does, or copying the way the workflow
suite shows a suggested workflow), alone or one per line of a list. This module reads all of those
(the last only for offered tools); :func:`read_calls` says which calls the text holds, whether it
tried to call something at all, and, when it tried and nothing could be read, why not.

Accepted call shapes (keys in any order; a list of them, or ``{"tool_calls": [...]}``, is several):
``{"name": N, "arguments": A}`` with ``tool``/``tool_name``/``function``/``function_name`` for the
name and ``parameters``/``args``/``params``/``input``/``tool_input``/``kwargs`` for the arguments;
``{"function": {"name": N, "arguments": A}}`` (OpenAI); ``{N: A}`` and ``{"name": N, **A}`` when
``N`` is one of the offered tools. Arguments may be an object or a JSON string of one; anything
else is passed on as written (the tool then refuses it, as it would a bad native call).
Lenient where models commonly slip: trailing commas, Python literals (single quotes, True/None),
prose before and after. A call cut off mid-way is unreadable, never guessed at.
"""

from __future__ import annotations

import ast
import bisect
import json
import re
from dataclasses import dataclass
from typing import Any, Collection

MAX_TEXT = 64 * 1024  # longer answers are read up to here
MAX_STARTS = 200  # bracketed spans parsed per block (bounds the work on pathological text)
MAX_DEPTH = 8  # how far down the open brackets a closing one looks for its partner
MAX_REPAIR = 16 * 1024  # spans longer than this are read as strict JSON only (no repairs)
NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name")
ARG_KEYS = ("arguments", "parameters", "args", "params", "input", "tool_input", "kwargs")
_META_KEYS = frozenset({"id", "type", "call_id", "index"})
_TAG = re.compile(r"<(tool_call|tool_calls|function_call)>\s*(.*?)\s*(?:</\1>|(?=<\1>)|\Z)", re.S | re.I)
_FUNCTION_TAG = re.compile(r"<function=([\w.-]+)>\s*(.*?)\s*(?:</function>|\Z)", re.S)  # Llama 3.1's custom format
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_NAMED = re.compile(r"""["']?(?:%s)["']?\s*:""" % "|".join(NAME_KEYS))
_PY_CALL = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")
_SPECIAL = re.compile(r"[{}\[\]\"'\\\n]")
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*\u2022])\s+")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass(frozen=True)
class ContentCall:
    name: str
    arguments: Any  # a dict when it could be read as an object; else as the model wrote it

    def arguments_json(self) -> str:
        """The arguments as OpenAI's ``function.arguments`` string."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class ReadCalls:
    calls: tuple[ContentCall, ...] = ()
    attempted: bool = False  # the text holds something shaped like a call (a tag, a named JSON object)
    problem: str | None = None  # why a call it attempted could not be read

    @property
    def unreadable(self) -> str | None:
        """The reason, when the text tried to call a tool and no call could be read from it."""
        return self.problem if self.attempted and not self.calls else None


class _Found:
    def __init__(self) -> None:
        self.calls: list[ContentCall] = []
        self.attempted = False
        self.problem: str | None = None

    def fail(self, why: str) -> None:
        self.attempted = True
        self.problem = self.problem or why

    def result(self) -> ReadCalls:
        return ReadCalls(tuple(self.calls), self.attempted or bool(self.calls), self.problem)


def read_calls(text: str | None, tools: Collection[str] = ()) -> ReadCalls:
    """The tool calls in ``text``, in order. ``tools`` (the offered names) lets ``{N: A}`` and
    flattened ``{"name": N, ...}`` count as calls; any other name is read as written (an invented
    tool is a wrong call, not an unreadable one)."""
    if not text or not text.strip():
        return ReadCalls()
    text = text[:MAX_TEXT]
    found = _Found()
    if _read_function_tags(text, found):
        return found.result()
    tags = list(_TAG.finditer(text))
    if tags:
        for m in tags:
            before = len(found.calls)
            _read_block(m.group(2), tools, found, where=f"<{m.group(1)}>")
            if len(found.calls) == before:
                found.fail(f"<{m.group(1)}> holds no call that can be read (it names no tool as JSON)")
        return found.result()
    fences = list(_FENCE.finditer(text))
    for m in fences:
        _read_block(m.group(2), tools, found, where="the code block")
    if found.calls or found.attempted:
        return found.result()
    outside = _FENCE.sub(" ", text) if fences else text
    _read_block(outside, tools, found, where="the answer")
    return found.result()


def _read_function_tags(text: str, found: _Found) -> bool:
    """``<function=name>{arguments}</function>``: the name in the tag, the arguments as its JSON body."""
    tags = list(_FUNCTION_TAG.finditer(text))
    for m in tags:
        ok, args = _loads(m.group(2)) if m.group(2) else (True, {})
        if ok and isinstance(args, dict):
            found.calls.append(ContentCall(_clean(m.group(1)), args))
        else:
            found.fail(f"<function={m.group(1)}> holds no JSON object of arguments")
    return bool(tags)


def _read_block(block: str, tools: Collection[str], found: _Found, where: str) -> None:
    """Every JSON value in ``block`` that is a call; else ``f(k=v)`` calls of offered tools: the whole
    block, or lines that are nothing but one call (after a list marker such as ``1.`` or ``-``)."""
    before = len(found.calls)
    _scan_json(block, tools, found, where)
    if len(found.calls) > before or found.attempted or not tools:
        return
    if _PY_CALL.match(block.strip()) and _read_pythonic(block.strip(), tools, found):
        return
    for line in block.splitlines()[:MAX_STARTS]:
        line = _LIST_MARKER.sub("", line, count=1).strip().rstrip(";")
        if _PY_CALL.match(line) and line.split("(", 1)[0].strip() in tools:
            _read_pythonic(line, tools, found)


def _scan_json(block: str, tools: Collection[str], found: _Found, where: str) -> None:
    """Outermost bracketed spans first; a span that is not JSON (prose in brackets) is searched inside."""
    match, unclosed = _brackets(block)
    named = [m.start() for m in _NAMED.finditer(block)]  # where a name key appears, for bisecting
    consumed, tries = 0, 0
    for start in sorted(match):
        if start < consumed:
            continue
        if tries >= MAX_STARTS:
            return
        tries += 1
        end = match[start]
        ok, value = _loads(block[start:end])
        if not ok:
            if _any_between(named, start, end):
                found.fail(f"malformed JSON in {where}: {value}")
                consumed = end
            continue  # not JSON: the spans inside it are tried next
        consumed = end
        calls = _calls_from(value, tools)
        if calls:
            found.calls.extend(calls)
        elif _looks_named(value):
            found.fail(f"a JSON object in {where} names no tool in a form that can be read "
                       f"(use {{\"name\": ..., \"arguments\": {{...}}}})")
    cut = next((u for u in unclosed if u >= consumed), None)
    if cut is not None and _any_between(named, cut, len(block)):
        found.fail(f"unterminated JSON in {where} (the answer may have been cut off)")


def _any_between(positions: list[int], start: int, end: int) -> bool:
    i = bisect.bisect_left(positions, start)
    return i < len(positions) and positions[i] < end


def _brackets(text: str) -> tuple[dict[int, int], list[int]]:
    """One pass: each opening bracket's index -> the index past its closing one (strings respected;
    a string never spans a line, as in JSON), and the opening brackets never closed. Only the
    characters that matter are visited."""
    match: dict[int, int] = {}
    stack: list[int] = []
    quote, escaped_at = "", -1
    for m in _SPECIAL.finditer(text):
        j, ch = m.start(), m.group()
        if quote:
            if j == escaped_at:
                continue
            if ch == "\\":
                escaped_at = j + 1
            elif ch == quote or ch == "\n":
                quote = ""
            continue
        if ch == '"' or (ch == "'" and _python_quote(text, j)):
            quote = ch
        elif ch in "{[":
            stack.append(j)
        elif ch in "}]":
            want = "{" if ch == "}" else "["
            k = floor = len(stack) - 1
            floor = max(0, floor - MAX_DEPTH)
            while k >= floor and text[stack[k]] != want:
                k -= 1  # brackets left open inside (prose) are skipped over, a stray closer is ignored
            if k >= floor:
                match[stack[k]] = j + 1
                del stack[k:]
    return match, stack


def _python_quote(text: str, j: int) -> bool:
    before = text[j - 1] if j else " "
    return before in "{[,: \t\n"


def _loads(chunk: str) -> tuple[bool, Any]:
    """(True, value) for JSON, JSON with trailing commas, or a Python literal; else (False, why)."""
    try:
        return True, json.loads(chunk)
    except (ValueError, RecursionError) as exc:
        why = f"{type(exc).__name__}: {exc}"[:160]
    if len(chunk) > MAX_REPAIR:
        return False, why  # big spans are read as JSON only
    repaired = _TRAILING_COMMA.sub(r"\1", chunk)
    if repaired != chunk:
        try:
            return True, json.loads(repaired)
        except (ValueError, RecursionError):
            pass
    if "'" not in repaired:
        return False, why  # a Python literal only helps single-quoted strings
    try:
        value = ast.literal_eval(repaired)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, why
    return (True, value) if isinstance(value, (dict, list)) else (False, why)


def _looks_named(value: Any) -> bool:
    if isinstance(value, list):
        return any(_looks_named(v) for v in value)
    return isinstance(value, dict) and (any(k in value for k in NAME_KEYS) or "tool_calls" in value)


def _calls_from(value: Any, tools: Collection[str]) -> list[ContentCall]:
    if isinstance(value, list):
        return [c for item in value for c in _calls_from(item, tools)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("tool_calls"), list):
        return _calls_from(value["tool_calls"], tools)
    fn = value.get("function")
    if isinstance(fn, dict):  # OpenAI's {"type": "function", "function": {"name", "arguments"}}
        name = fn.get("name")
        args = next((fn[k] for k in ARG_KEYS if k in fn), {})
        return [_call(name, args)] if _is_name(name) else []
    for key in NAME_KEYS:
        name = value.get(key)
        if not _is_name(name):
            continue
        arg_key = next((k for k in ARG_KEYS if k in value), None)
        rest = {k: v for k, v in value.items() if k != key and k not in _META_KEYS}
        if arg_key is not None:
            return [_call(name, value[arg_key])]
        if not rest:
            return [_call(name, {})]
        if _clean(name) in tools:  # {"name": "file_reader", "path": "/x"}: arguments written flat
            return [_call(name, rest)]
        return []
    if len(value) == 1:
        (name, args), = value.items()
        if _clean(name) in tools and isinstance(args, dict):
            return [_call(name, args)]
    return []


def _is_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name.strip()) and len(name) <= 200


def _clean(name: str) -> str:
    name = name.strip()
    return name[len("functions."):] if name.startswith("functions.") else name


def _call(name: str, args: Any) -> ContentCall:
    if isinstance(args, str):
        ok, value = _loads(args) if args.strip() else (True, {})
        if ok and isinstance(value, dict):
            args = value
    elif args is None:
        args = {}
    return ContentCall(_clean(name), args)


def _read_pythonic(text: str, tools: Collection[str], found: _Found) -> bool:
    """``name(key=literal, ...)`` or a list of them, keyword arguments only, and only names of offered
    tools (``print(x)`` in a final answer's code is not a call). Whether the text was such calls."""
    if len(text) > MAX_REPAIR:
        return False
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls: list[ContentCall] = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            return False
        name = _clean(ast.unparse(node.func))
        if name not in tools:
            return False
        if node.args or any(k.arg is None for k in node.keywords):
            found.fail(f"{name}(...) has positional arguments; name each one (key=value)")
            return True
        try:
            args = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            found.fail(f"{name}(...) has an argument that is not a literal value")
            return True
        calls.append(ContentCall(name, args))
    found.calls.extend(calls)
    return True
