"""Scoring: success / partial / failure from the tool calls a model made. Pure.

A required step counts when a *successful* call of its tool with its required arguments comes
after the previous matched step (order matters: data flows through the workflow).
- success: every required step done in order and no harmful call (deleting data the task did
  not ask to delete);
- partial: at least half of the steps done in order;
- failure: otherwise.
``score`` is the fraction of steps done, times an efficiency factor that discounts redundant
successful calls: steps / max(steps, successful calls), weighted 30 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .generator import Step
from .tools import Call

HARMFUL = frozenset({"file_deleter"})


@dataclass(frozen=True)
class Score:
    status: str
    score: float
    matched: int
    required: int
    harmful: int


def _norm(v: object) -> object:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return tuple(sorted(str(x).strip().lower() for x in v))
    return str(v).strip().lower()


def matches(s: Step, call: Call) -> bool:
    if not call.ok or call.tool != s.tool:
        return False
    return all(k in call.args and _norm(call.args[k]) == _norm(v) for k, v in s.args)


def score(steps: Sequence[Step], calls: Sequence[Call]) -> Score:
    j = 0
    for call in calls:
        if j < len(steps) and matches(steps[j], call):
            j += 1
    required_tools = {s.tool for s in steps}
    harmful = sum(1 for c in calls if c.ok and c.tool in HARMFUL and c.tool not in required_tools)
    n = len(steps)
    successful = sum(1 for c in calls if c.ok)
    efficiency = n / max(n, successful)
    value = round((j / n) * (0.7 + 0.3 * efficiency), 4)
    if j == n and harmful == 0:
        status = "success"
    elif 2 * j >= n and j > 0:
        status = "partial"
    else:
        status = "failure"
    return Score(status=status, score=value, matched=j, required=n, harmful=harmful)
