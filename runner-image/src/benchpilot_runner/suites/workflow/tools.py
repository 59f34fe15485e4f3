"""Simulated tool execution: checks each call and fails a fraction of them, reproducibly.

A call fails when the tool is not offered, the arguments do not fit the tool's parameters, the
input it consumes has not been produced yet, or (with probability ``1 - tool_success_rate``,
seeded by the case and the call's position) transiently, as a real service would.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from .generator import Task
from .registry import BY_NAME

_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,)}


@dataclass
class Call:
    tool: str
    args: dict
    ok: bool
    error: str | None = None


@dataclass
class ToolEnv:
    task: Task
    tool_success_rate: float
    seed: int
    calls: list[Call] = field(default_factory=list)
    _produced: set = field(default_factory=set)
    _deleted: set = field(default_factory=set)

    def call(self, name: str, raw_args: str | dict | None) -> tuple[Call, str]:
        """Execute one tool call; returns the record and the JSON text the model sees."""
        try:
            args = json.loads(raw_args) if isinstance(raw_args, str) else (raw_args or {})
        except (TypeError, ValueError):
            args = None
        error = self._check(name, args)
        index = len(self.calls)
        if error is None:
            rng = random.Random((self.seed * 1_000_003 + index) & 0xFFFFFFFFFFFF)
            if rng.random() >= self.tool_success_rate:
                error = "transient: service unavailable, the call may be retried"
        ok = error is None
        rec = Call(tool=name, args=args if isinstance(args, dict) else {}, ok=ok, error=error)
        self.calls.append(rec)
        if ok:
            self._apply(name, rec.args)
            content = {"ok": True, "tool": name, "result": f"{name} completed", "records": 10 + index * 7}
        else:
            content = {"ok": False, "tool": name, "error": error}
        return rec, json.dumps(content)

    def _check(self, name: str, args: object) -> str | None:
        tool = BY_NAME.get(name)
        if tool is None or name not in self.task.offered:
            return f"unknown tool {name!r}; available: {', '.join(sorted(self.task.offered))}"
        if not isinstance(args, dict):
            return "arguments are not a JSON object"
        params = {p.name: p for p in tool.params}
        for key in args:
            if key not in params:
                return f"unknown parameter {key!r} for {name}"
        for p in tool.params:
            if p.name not in args:
                if p.required:
                    return f"missing required parameter {p.name!r}"
                continue
            value = args[p.name]
            if not isinstance(value, _TYPES[p.type]) or (p.type in ("integer", "number") and isinstance(value, bool)):
                return f"parameter {p.name!r} must be {p.type}, got {type(value).__name__}"
            if p.enum and value not in p.enum:
                return f"parameter {p.name!r} must be one of {', '.join(p.enum)}"
        if tool.consumes and tool.consumes not in self._produced:
            return f"no {tool.consumes} input available yet; an earlier step must produce it"
        path = args.get("path")
        if name == "file_reader" and path in self._deleted:
            return f"file not found: {path}"
        return None

    def _apply(self, name: str, args: dict) -> None:
        tool = BY_NAME[name]
        if tool.produces:
            self._produced.add(tool.produces)
        if name == "file_deleter":
            self._deleted.add(args.get("path"))
