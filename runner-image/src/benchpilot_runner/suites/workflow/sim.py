"""Built-in simulated models (``sim/...``): deterministic from the case, offline.

A simulated model plays the task as a model of a given accuracy would: it follows the shown
workflow (flawed or not) or the right one, makes per-step mistakes at a rate set by its accuracy,
the difficulty and the prompt type, retries transient tool failures, and takes about its
configured latency per turn. It sees the ground truth so that accuracy means something; it
answers in the same chat-completions shape as a real endpoint.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib

from ...llm.base import ChatResult
from ...contract.types import SimModel
from .generator import Step, Task, step
from .registry import BY_NAME, TOOLS

DIFFICULTY_FACTOR = {"easy": 0.35, "medium": 0.55, "hard": 0.75}
PROMPT_FACTOR = {"optimal": 0.5, "cot": 0.8, "baseline": 1.0}


class SimSession:
    def __init__(self, model: str, params: SimModel, task: Task, prompt_type: str,
                 shown: tuple[Step, ...], seed: int, sleep=asyncio.sleep):
        self.model = model
        self.params = params
        self._sleep = sleep
        self.rng = random.Random(seed ^ zlib.crc32(model.encode()))
        acc = params.accuracy
        base = task.steps
        if prompt_type.startswith("flawed_") and self.rng.random() < 0.15 + 0.7 * (1 - acc):
            base = shown  # misled by the flawed workflow
        err = (1 - acc) * DIFFICULTY_FACTOR[task.difficulty] * PROMPT_FACTOR.get(prompt_type, 1.0)
        self.plan: list[Step] = []
        for s in base:
            if self.rng.random() < err:
                mistake = self._mistake(s, task)
                if mistake is not None:
                    self.plan.append(mistake)
            else:
                self.plan.append(s)
        self.pos = 0
        self.retries = 0
        self.last: Step | None = None

    def _mistake(self, s: Step, task: Task) -> Step | None:
        kind = self.rng.random()
        if kind < 0.3:
            return None  # skips the step
        if kind < 0.7 and s.args:
            key, value = self.rng.choice(s.args)
            wrong = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v * 2}.get(
                type(value), lambda v: f"{v}_x" if isinstance(v, str) else ("wrong",))(value)
            return step(s.tool, **{**dict(s.args), key: wrong})
        category = BY_NAME[s.tool].category
        peers = [t for t in TOOLS if t.category == category and t.name != s.tool and t.name in task.offered]
        if not peers:
            return None
        other = self.rng.choice(peers)
        return step(other.name, **{p.name: dict(s.args).get(p.name, "x") for p in other.params if p.required})

    async def chat(self, messages: list[dict], tools: list[dict]) -> ChatResult:
        lat = self.params.latency_s
        if lat > 0:
            await self._sleep(lat * (0.5 + self.rng.random()))
        last = messages[-1] if messages else {}
        failed = False
        if last.get("role") == "tool":
            try:
                failed = not json.loads(last.get("content") or "{}").get("ok", False)
            except ValueError:
                failed = True
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4
        if failed and self.last is not None and self.retries < 3 and \
                self.rng.random() < 0.5 + 0.5 * self.params.accuracy:
            self.retries += 1
            return self._call(self.last, prompt_tokens)
        self.retries = 0
        if self.pos >= len(self.plan):
            return ChatResult({"role": "assistant", "content": "The workflow is complete."}, prompt_tokens, 8)
        s = self.plan[self.pos]
        self.pos += 1
        self.last = s
        return self._call(s, prompt_tokens)

    def _call(self, s: Step, prompt_tokens: int) -> ChatResult:
        call_id = f"call_{self.pos}_{self.retries}"
        msg = {"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": s.tool, "arguments": json.dumps(s.kwargs)}}]}
        return ChatResult(msg, prompt_tokens, 12 + 4 * len(s.args))
