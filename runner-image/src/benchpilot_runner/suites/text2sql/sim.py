"""Simulated models (``sim/...``) for text2sql: they answer SQL with their configured accuracy.

Per sample, a simulated model writes the gold query, a plausible wrong query (a flipped comparison,
a changed aggregate or set operation, a wrong literal...), or invalid SQL (a misspelt column),
more often on harder questions; misled by a misleading hint, it writes the query the hint leads
to. Asked to correct a failed query, it writes the gold query with a probability that grows with
its accuracy. Deterministic from the case, the model and the sample; answers arrive after its
configured latency (exactly: benchmarks rely on it) in the chat-completions shape.
"""

from __future__ import annotations

import asyncio
import random
import re
import zlib

from ...llm.base import ChatResult
from .items import Item
from .prompts import CORRECTION_MARK
from .vocab import MISLEADING

DIFFICULTY_FACTOR = {"simple": 0.5, "moderate": 0.8, "challenging": 1.1}
PROMPT_FACTOR = {"zero_shot": 1.0, "few_shot": 0.75, "cot": 0.85}
_MUTATIONS = (
    (r" > ", " < "), (r" < ", " > "), (r"\bDESC\b", "ASC"), (r"\bAND\b", "OR"), (r"\bDISTINCT ", ""),
    (r"\bUNION\b", "INTERSECT"), (r"\bINTERSECT\b", "UNION"), (r"\bEXCEPT\b", "UNION"), (r"\bAVG\(", "SUM("),
    (r"\bMAX\(", "MIN("), (r"\bSUM\(", "MAX("), (r"\bNOT IN\b", "IN"), (r"\bIN \(", "NOT IN ("),
    (r"= '([^']+)'", lambda m: f"= '{m.group(1).lower()}'" if m.group(1) != m.group(1).lower()
     else f"= '{m.group(1).upper()}'"),
    (r"LIMIT (\d+)", lambda m: f"LIMIT {int(m.group(1)) + 2}"),
)


def wrong_query(sql: str, rng: random.Random) -> str:
    """A plausible query that differs from ``sql`` (it may, rarely, return the same rows)."""
    for pattern, repl in rng.sample(_MUTATIONS, len(_MUTATIONS)):
        out = re.sub(pattern, repl, sql, count=1)
        if out != sql:
            return out
    return f"SELECT * FROM ({sql}) WHERE 0"


def invalid_query(sql: str, rng: random.Random) -> str:
    """``sql`` with a misspelt column (the database says: no such column)."""
    names = re.findall(r"\b([a-z_]+)\s*(?:=|>|<|\bIN\b|\))", sql)
    names = [n for n in names if n.upper() not in ("AND", "OR", "NOT", "IN", "AS")]
    if names:
        n = rng.choice(names)
        return re.sub(rf"\b{re.escape(n)}\b", f"{n}_value", sql, count=1)
    return sql.replace("SELECT", "SELCT", 1)


class SqlSim:
    def __init__(self, model: str, params, item: Item, prompt_type: str, seed: int, sleep=asyncio.sleep):
        self.params, self.item, self._sleep = params, item, sleep
        self.base = seed ^ zlib.crc32(model.encode())
        self.prompt_type = prompt_type
        self.sample = -1
        self.plans: list[tuple[str, str]] = []

    def _plan(self, k: int) -> tuple[str, str]:
        rng = random.Random(self.base ^ (k * 0x9E3779B1))
        acc, gold = self.params.accuracy, self.item.sql
        first = gold
        hint = self.item.hints.get(self.prompt_type)
        if self.prompt_type in MISLEADING and rng.random() < 0.15 + 0.7 * (1 - acc):
            first = hint[1] if hint and hint[1] else wrong_query(gold, rng)
        else:
            err = min(0.95, (1 - acc) * DIFFICULTY_FACTOR.get(self.item.difficulty, 1.0)
                      * PROMPT_FACTOR.get(self.prompt_type, 1.0))
            r = rng.random()
            if r < 0.35 * err:
                first = invalid_query(gold, rng)
            elif r < err:
                first = wrong_query(gold, rng)
        r = rng.random()
        fix = gold if r < 0.3 + 0.6 * acc else invalid_query(gold, rng) if r < 0.45 + 0.55 * acc else \
            wrong_query(gold, rng)
        return first, fix

    async def chat(self, messages: list[dict], tools: list[dict]) -> ChatResult:
        if self.params.latency_s > 0:
            await self._sleep(self.params.latency_s)
        last = str((messages[-1] if messages else {}).get("content") or "")
        if last.startswith(CORRECTION_MARK) and self.sample >= 0:
            sql = self.plans[self.sample][1]
        else:
            self.sample += 1
            self.plans.append(self._plan(self.sample))
            sql = self.plans[self.sample][0]
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in messages) // 4
        return ChatResult({"role": "assistant", "content": f"```sql\n{sql}\n```"}, prompt_tokens, 8 + len(sql) // 4)
