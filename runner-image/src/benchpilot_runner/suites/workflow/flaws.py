"""Flawed workflows: the recommended workflow with one defect injected.

Each flaw is a pure function (steps, rng) -> steps. A flawed prompt shows the defective workflow;
the model is still scored against the correct one, so it must notice and repair the defect.
"""

from __future__ import annotations

import random
from typing import Callable

from .generator import Step, step
from .registry import BY_NAME, TOOLS

Steps = tuple[Step, ...]


def _replace(s: Step, **changes: object) -> Step:
    args = dict(s.args)
    args.update(changes)
    return step(s.tool, **args)


def sequence_disorder(steps: Steps, rng: random.Random) -> Steps:
    if len(steps) < 2:
        return redundant_operations(steps, rng)
    i = rng.randrange(len(steps) - 1)
    out = list(steps)
    out[i], out[i + 1] = out[i + 1], out[i]
    return tuple(out)


def tool_misuse(steps: Steps, rng: random.Random) -> Steps:
    i = rng.randrange(len(steps))
    original = BY_NAME[steps[i].tool]
    peers = [t for t in TOOLS if t.category == original.category and t.name != original.name]
    wrong = rng.choice(peers)
    args = {p.name: dict(steps[i].args).get(p.name, _placeholder(p.type)) for p in wrong.params if p.required}
    out = list(steps)
    out[i] = step(wrong.name, **args)
    return tuple(out)


def _placeholder(type_: str) -> object:
    return {"string": "value", "integer": 1, "number": 1.0, "boolean": True, "array": ["value"]}[type_]


def parameter_error(steps: Steps, rng: random.Random) -> Steps:
    candidates = [(i, k) for i, s in enumerate(steps) for k, _ in s.args]
    if not candidates:
        return missing_step(steps, rng) if len(steps) > 1 else redundant_operations(steps, rng)
    i, key = rng.choice(candidates)
    value = dict(steps[i].args)[key]
    out = list(steps)
    out[i] = _replace(steps[i], **{key: _corrupt(value, rng)})
    return tuple(out)


def _corrupt(value: object, rng: random.Random) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return -value if value else 1
    if isinstance(value, tuple):
        return tuple(reversed(value))[:-1] or ("unknown",)
    s = str(value)
    if "." in s and "/" in s:
        return s.rsplit(".", 1)[0] + ".tmp"
    if rng.random() < 0.5 or s.upper() == s:
        return s + "_old"
    return s.upper()


def missing_step(steps: Steps, rng: random.Random) -> Steps:
    if len(steps) < 2:
        return redundant_operations(steps, rng)
    i = rng.randrange(len(steps))
    return steps[:i] + steps[i + 1:]


def redundant_operations(steps: Steps, rng: random.Random) -> Steps:
    i = rng.randrange(len(steps))
    extra = step("rate_limiter", requests_per_second=1.0) if rng.random() < 0.3 else steps[i]
    return steps[: i + 1] + (extra,) + steps[i + 1:]


def logical_inconsistency(steps: Steps, rng: random.Random) -> Steps:
    for i, s in enumerate(steps):
        if s.tool == "data_filter":
            cond = str(dict(s.args)["condition"]).replace(">", "<=")
            return steps[: i + 1] + (step("data_filter", condition=cond),) + steps[i + 1:]
    for i, s in enumerate(steps):
        if s.tool == "file_reader":
            # delete the input before it is read: the workflow contradicts itself
            return steps[:i] + (step("file_deleter", path=dict(s.args)["path"]),) + steps[i:]
    return tuple(reversed(steps)) if len(steps) > 1 else redundant_operations(steps, rng)


_DRIFT = {"sales": "marketing", "orders": "returns", "customers": "suppliers", "invoices": "quotes",
          "shipments": "deliveries", "tickets": "incidents", "sensors": "alarms", "payroll": "budget"}


def semantic_drift(steps: Steps, rng: random.Random) -> Steps:
    order = list(range(len(steps)))
    rng.shuffle(order)
    for i in order:
        for key, value in steps[i].args:
            if isinstance(value, str):
                for a, b in _DRIFT.items():
                    if a in value:
                        out = list(steps)
                        out[i] = _replace(steps[i], **{key: value.replace(a, b)})
                        return tuple(out)
    return parameter_error(steps, rng)


FLAWS: dict[str, Callable[[Steps, random.Random], Steps]] = {
    "flawed_sequence_disorder": sequence_disorder,
    "flawed_tool_misuse": tool_misuse,
    "flawed_parameter_error": parameter_error,
    "flawed_missing_step": missing_step,
    "flawed_redundant_operations": redundant_operations,
    "flawed_logical_inconsistency": logical_inconsistency,
    "flawed_semantic_drift": semantic_drift,
}


def inject(prompt_type: str, steps: Steps, seed: int) -> Steps:
    """The workflow to show for ``prompt_type``: the flawed version for flawed types, else the original."""
    flaw = FLAWS.get(prompt_type)
    if flaw is None:
        return steps
    flawed = flaw(steps, random.Random(seed ^ 0x5EED))
    assert flawed != steps, (prompt_type, steps)
    return flawed
