"""The workflow suite: generation, flaws, simulated tools, scoring, simulated models."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from benchpilot_runner.contract.cases import expand
from benchpilot_runner.contract.parse import parse_manifest

from benchpilot_runner.suites.workflow import vocab as W
from benchpilot_runner.suites.workflow import flaws, generator, prompts
from benchpilot_runner.cases import CaseProgress, CaseRunner
from benchpilot_runner.suites.workflow.case import WorkflowRunner
from benchpilot_runner.suites.workflow.registry import BY_NAME, TOOLS
from benchpilot_runner.suites.workflow.scoring import score
from benchpilot_runner.suites.workflow.tools import Call, ToolEnv
from tests.helpers import manifest


def task(task_type="data_pipeline", difficulty="medium", instance=0, seed=1234):
    return generator.generate(task_type, difficulty, instance, seed)


def test_registry_has_about_thirty_typed_tools():
    assert len(TOOLS) == 30
    for t in TOOLS:
        schema = t.openai_schema["function"]
        assert schema["parameters"]["required"] == [p.name for p in t.params if p.required]
        assert all(p.type in ("string", "integer", "number", "boolean", "array") for p in t.params)


@pytest.mark.parametrize("task_type", W.TASK_TYPES)
def test_generation_is_deterministic_and_grows_with_difficulty(task_type):
    lengths = []
    for difficulty in W.DIFFICULTIES:
        a, b = task(task_type, difficulty, 3, 99), task(task_type, difficulty, 3, 99)
        assert a == b
        assert set(s.tool for s in a.steps) <= set(a.offered)
        assert len(a.offered) >= generator.OFFERED_TOOLS[difficulty]
        assert len({s.tool for s in a.steps}) == len(a.steps), "a tool appears once per workflow"
        lengths.append(len(a.steps))
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


def test_every_workflow_is_executable_in_order():
    """The required steps, called in order with a perfect tool success rate, all succeed."""
    for task_type in W.TASK_TYPES:
        for difficulty in W.DIFFICULTIES:
            for seed in range(20):
                t = task(task_type, difficulty, seed, seed)
                env = ToolEnv(t, 1.0, seed)
                for s in t.steps:
                    rec, _ = env.call(s.tool, json.dumps(s.kwargs))
                    assert rec.ok, (t.task_id, s, rec.error)
                assert score(t.steps, env.calls).status == "success"


def test_seeds_give_different_tasks():
    descriptions = {task("basic_task", "easy", 0, seed).description for seed in range(30)}
    assert len(descriptions) > 20


@pytest.mark.parametrize("prompt_type", [p for p in W.PROMPT_TYPES if p.startswith("flawed_")])
def test_each_flaw_changes_the_workflow(prompt_type):
    for seed in range(30):
        for task_type in W.TASK_TYPES:
            t = task(task_type, "medium", 0, seed)
            shown = flaws.inject(prompt_type, t.steps, seed)
            assert shown != t.steps
            assert flaws.inject(prompt_type, t.steps, seed) == shown


def test_flaw_shapes():
    t = task("data_pipeline", "hard", 0, 7)
    rng = __import__("random").Random(1)
    assert sorted(flaws.sequence_disorder(t.steps, rng), key=repr) == sorted(t.steps, key=repr)
    assert len(flaws.missing_step(t.steps, rng)) == len(t.steps) - 1
    assert len(flaws.redundant_operations(t.steps, rng)) == len(t.steps) + 1
    misuse = flaws.tool_misuse(t.steps, rng)
    changed = [(a, b) for a, b in zip(t.steps, misuse) if a != b]
    assert len(changed) == 1 and BY_NAME[changed[0][0].tool].category == BY_NAME[changed[0][1].tool].category


def test_prompts_carry_the_workflow_only_where_they_should():
    t = task()
    shown = flaws.inject("flawed_missing_step", t.steps, 1)
    assert "Suggested workflow" not in prompts.build_messages(t, "baseline", t.steps)[1]["content"]
    assert "step by step" in prompts.build_messages(t, "cot", t.steps)[1]["content"]
    flawed = prompts.build_messages(t, "flawed_missing_step", shown)[1]["content"]
    assert flawed.count("\n") - prompts.build_messages(t, "optimal", t.steps)[1]["content"].count("\n") == -1


def test_tool_failures_follow_the_success_rate_and_are_reproducible():
    t = task("simple_task", "easy", 0, 5)
    s = t.steps[0]

    def outcomes(rate, seed):
        env = ToolEnv(t, rate, seed)
        return [env.call(s.tool, s.kwargs)[0].ok for _ in range(400)]

    assert not any(outcomes(0.0, 1)) and all(outcomes(1.0, 1))
    assert 0.6 < sum(outcomes(0.7, 1)) / 400 < 0.8
    assert outcomes(0.7, 1) == outcomes(0.7, 1) != outcomes(0.7, 2)


def test_tool_call_checks():
    t = task("api_integration", "easy", 0, 3)
    env = ToolEnv(t, 1.0, 0)
    fetch = t.steps[1]
    assert "no token input" in env.call(fetch.tool, fetch.kwargs)[0].error  # before authenticating
    assert "unknown tool" in env.call("teleport", "{}")[0].error
    assert "not a JSON object" in env.call(t.steps[0].tool, "{oops")[0].error
    assert "missing required" in env.call(t.steps[0].tool, {})[0].error
    assert "must be string" in env.call("api_authenticator", {"service": 3})[0].error


def _calls(steps, ok=True):
    return [Call(s.tool, s.kwargs, ok) for s in steps]


def test_scoring():
    t = task("data_pipeline", "hard", 0, 11)
    n = len(t.steps)
    assert score(t.steps, _calls(t.steps)).status == "success"
    assert score(t.steps, _calls(t.steps)).score == 1.0
    assert score(t.steps, _calls(t.steps[: (n + 1) // 2])).status == "partial"
    assert score(t.steps, _calls(t.steps[:1])).status == "failure"
    assert score(t.steps, []).status == "failure"
    assert score(t.steps, _calls(t.steps, ok=False)).status == "failure", "failed calls count for nothing"
    assert score(t.steps, _calls(list(reversed(t.steps)))).matched == 1, "order matters"
    wrong_arg = [Call(s.tool, {**s.kwargs, "path": "/elsewhere"}, True) if "path" in s.kwargs else
                 Call(s.tool, s.kwargs, True) for s in t.steps]
    assert score(t.steps, wrong_arg).status != "success"
    harmful = _calls(t.steps) + [Call("file_deleter", {"path": "/data/x"}, True)]
    assert score(t.steps, harmful).status == "partial"
    redundant = score(t.steps, _calls(t.steps) + _calls(t.steps))
    assert redundant.status == "success" and redundant.score < 1.0


def _run(spec, cases):
    runner = CaseRunner(spec, WorkflowRunner(spec, sleep=lambda s: asyncio.sleep(0)))
    return [asyncio.run(runner.run(c, CaseProgress())) for c in cases]


def test_oracle_with_optimal_prompt_and_reliable_tools_always_succeeds():
    doc = manifest()
    doc["spec"]["matrix"].update(models=["sim/oracle"], promptTypes=["optimal"], toolSuccessRate=1.0,
                                 taskTypes=list(W.TASK_TYPES), difficulties=list(W.DIFFICULTIES), instances=2)
    spec = parse_manifest(doc)
    rows = _run(spec, expand(spec.matrix))
    assert Counter(r["status"] for r in rows) == {"success": len(rows)}


def test_accuracy_orders_models_and_flaws_hurt():
    doc = manifest()
    doc["spec"]["matrix"].update(models=["sim/strong", "sim/weak"], promptTypes=["optimal", "flawed_missing_step"],
                                 taskTypes=list(W.TASK_TYPES), difficulties=["medium"], instances=12)
    spec = parse_manifest(doc)
    cases = expand(spec.matrix)
    rows = _run(spec, cases)
    rate = Counter()
    n = Counter()
    for c, r in zip(cases, rows):
        n[c.model, c.prompt_type] += 1
        rate[c.model, c.prompt_type] += r["status"] == "success"
    ok = {k: rate[k] / n[k] for k in n}
    assert ok["sim/strong", "optimal"] > ok["sim/weak", "optimal"] + 0.2
    assert ok["sim/weak", "optimal"] > ok["sim/weak", "flawed_missing_step"]
    assert _run(spec, cases[:20]) == rows[:20], "simulated models are deterministic"
