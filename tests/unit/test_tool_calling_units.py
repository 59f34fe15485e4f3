"""``toolCalling: native | prompt``: the spec field, the prompt-mode translation in the core, and what
the workflow suite records about tool calling in each mode."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from benchpilot_runner.contract.cases import expand
from benchpilot_runner.contract.fields import SpecError
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.resolved import from_resolved
from benchpilot_runner.contract.types import RunSpec
from benchpilot_runner.cases import CaseProgress, CaseRunner
from benchpilot_runner.session import local_uid
from benchpilot_runner.llm import prompt_tools as P
from benchpilot_runner.llm.base import ChatResult
from benchpilot_runner.suites.workflow.case import WorkflowRunner
from benchpilot_runner.suites.workflow.registry import BY_NAME
from tests.helpers import manifest

TOOLS = [BY_NAME[n].openai_schema for n in ("file_reader", "csv_parser")]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def spec_with(*models, **matrix) -> RunSpec:
    doc = manifest(endpoint={"baseURL": "http://127.0.0.1:9/v1"})
    doc["spec"]["matrix"].update(models=list(models), promptTypes=["optimal"], taskTypes=["data_pipeline"],
                                 difficulties=["easy"], instances=1, toolSuccessRate=1.0, **matrix)
    doc["spec"]["sharding"] = {"shards": 1}
    return parse_manifest(doc)


# ---------------------------------------------------------------- the spec field


def test_tool_calling_defaults_to_native_and_survives_the_resolved_form():
    spec = spec_with("sim/strong", {"name": "q-fc", "model": "qwen"},
                     {"name": "q-prompt", "model": "qwen", "toolCalling": "prompt"},
                     {"name": "q-native", "model": "qwen", "toolCalling": "native"})
    assert [m.tool_calling for m in spec.models] == ["native", "native", "prompt", "native"]
    again = from_resolved(json.loads(json.dumps(spec.to_resolved())))
    assert again == spec and again.model("q-prompt").tool_calling == "prompt"
    docs = spec.to_resolved()["spec"]["matrix"]["models"]
    assert docs[2]["toolCalling"] == "prompt" and "toolCalling" not in docs[1]


@pytest.mark.parametrize("value", ["Prompt", "json", "", True, 1, ["prompt"], {"mode": "prompt"}])
def test_an_unknown_tool_calling_mode_is_refused_naming_the_field(value):
    with pytest.raises(SpecError) as err:
        spec_with({"name": "q", "model": "qwen", "toolCalling": value})
    assert err.value.path == "spec.matrix.models[0].toolCalling"
    assert "allowed: native, prompt" in str(err.value)


def test_a_models_mode_changes_the_local_run_folder_only_when_prompt_mode_is_used():
    """Results of a model in prompt mode are not those of the same name in native mode: a local run
    that switches it starts a fresh folder; runs without prompt mode keep the folder they had."""
    native = spec_with({"name": "q", "model": "qwen"})
    explicit = spec_with({"name": "q", "model": "qwen", "toolCalling": "native"})
    prompt = spec_with({"name": "q", "model": "qwen", "toolCalling": "prompt"})
    assert local_uid(native) == local_uid(explicit) != local_uid(prompt)
    # the basis is unchanged for specs without prompt mode (existing folders resume as before)
    assert local_uid(native) == local_uid(spec_with({"name": "q", "model": "qwen"}))


# ---------------------------------------------------------------- the prompt-mode translation (pure)


def test_to_prompt_puts_the_tools_in_the_system_message_and_keeps_the_rest_plain():
    history = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "Task: read /data/a.csv"},
        {"role": "assistant", "content": '```json\n{"name": "file_reader", "arguments": {"path": "/data/a.csv"}}\n```',
         "tool_calls": [{"id": "call_0_0", "type": "function",
                         "function": {"name": "file_reader", "arguments": '{"path": "/data/a.csv"}'}}]},
        {"role": "tool", "tool_call_id": "call_0_0", "content": '{"ok": true}'},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "csv_parser", "arguments": "{}"}},
            {"id": "y", "type": "function", "function": {"name": "file_reader", "arguments": "{\"path\": 1}"}}]},
        {"role": "tool", "tool_call_id": "x", "content": '{"ok": false, "error": "no text input"}'},
        {"role": "tool", "tool_call_id": "y", "content": '{"ok": false}'},
    ]
    out = P.to_prompt(history, TOOLS)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} for m in out), "no tool_calls, no tool role: any template reads it"
    system = out[0]["content"]
    assert system.startswith("You are an agent.") and "```json" in system
    for tool in TOOLS:
        line = next(ln for ln in system.splitlines() if f'"name": "{tool["function"]["name"]}"' in ln)
        assert json.loads(line)["parameters"] == tool["function"]["parameters"]
    assert out[2]["content"] == history[2]["content"], "the model's own words are kept as it wrote them"
    assert out[3]["content"] == 'Tool results:\nfile_reader: {"ok": true}'
    assert json.loads(out[4]["content"].split("```json\n")[1].split("\n```")[0]) == {"name": "csv_parser",
                                                                                     "arguments": {}}
    assert out[5]["content"].splitlines() == ["Tool results:", 'csv_parser: {"ok": false, "error": "no text input"}',
                                              'file_reader: {"ok": false}']
    assert history[0]["content"] == "You are an agent.", "the suite's history is not changed"


def test_to_prompt_adds_a_system_message_when_there_is_none():
    out = P.to_prompt([{"role": "user", "content": "hi"}], TOOLS)
    assert out[0]["role"] == "system" and "file_reader" in out[0]["content"] and out[1]["content"] == "hi"


def test_read_answer_turns_calls_in_text_into_native_tool_calls():
    text = 'First this.\n<tool_call>{"name": "file_reader", "arguments": {"path": "/x"}}</tool_call>' \
           '<tool_call>{"name": "csv_parser", "arguments": {}}</tool_call>'
    got = P.read_answer(ChatResult({"role": "assistant", "content": text}, 7, 3), TOOLS, turn=2)
    assert got.prompt_tokens == 7 and got.completion_tokens == 3 and got.unreadable is None
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in got.tool_calls] == [
        ("call_2_0", "file_reader", {"path": "/x"}), ("call_2_1", "csv_parser", {})]
    assert got.message["content"] == text


def test_read_answer_says_why_nothing_could_be_read_and_leaves_a_final_answer_alone():
    broken = P.read_answer(ChatResult({"role": "assistant", "content": '{"name": "file_reader", "argu'}), TOOLS)
    assert broken.tool_calls == [] and "unterminated" in broken.unreadable
    final = P.read_answer(ChatResult({"role": "assistant", "content": "All done."}), TOOLS)
    assert final.tool_calls == [] and final.unreadable is None


def test_read_answer_keeps_calls_the_server_sent_natively():
    native = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c9", "type": "function", "function": {"name": "csv_parser", "arguments": "{}"}}]}
    got = P.read_answer(ChatResult(native), TOOLS)
    assert got.tool_calls == native["tool_calls"] and got.unreadable is None


# ---------------------------------------------------------------- the core's chat wrapper


class ScriptedClient:
    """An endpoint client that records each request and answers from a script."""

    def __init__(self, answers):
        self.answers, self.requests = list(answers), []

    async def chat(self, model, messages, tools, *, label=None, params=None):
        self.requests.append({"model": model, "messages": json.loads(json.dumps(messages)), "tools": tools})
        content = self.answers.pop(0) if self.answers else "Done."
        if isinstance(content, dict):
            return ChatResult({"role": "assistant", "content": None, "tool_calls": [content]}, 10, 2)
        return ChatResult({"role": "assistant", "content": content}, 10, 2)


class Clients:
    def __init__(self, client):
        self.client = client

    def get(self, endpoint):
        return self.client


def run_case(spec, client):
    runner = CaseRunner(spec, WorkflowRunner(spec), endpoints=Clients(client))
    case = expand(spec.matrix)[0]
    progress = CaseProgress()
    row = asyncio.run(runner.run(case, progress))
    return row, progress, runner.suite.task_for(case)


def calls_text(steps, fmt=lambda n, a: json.dumps({"name": n, "arguments": a})):
    return [fmt(s.tool, s.kwargs) for s in steps]


def test_prompt_mode_sends_no_tools_and_reads_the_calls_from_the_text():
    spec = spec_with({"name": "q", "model": "qwen-coder", "toolCalling": "prompt"})
    task = WorkflowRunner(spec).task_for(expand(spec.matrix)[0])
    client = ScriptedClient(calls_text(task.steps) + ["The workflow is complete."])
    row, progress, _ = run_case(spec, client)
    assert row["status"] == "success" and row["error_type"] is None
    assert row["details"] == {"tool_calling": "prompt", "unreadable_call": False}
    assert progress.tool_calls == len(task.steps) and progress.turns == len(task.steps) + 1
    assert all(r["tools"] == [] for r in client.requests), "no tools in any request"
    first, last = client.requests[0]["messages"], client.requests[-1]["messages"]
    assert all(f'"name": "{n}"' in first[0]["content"] for n in task.offered)
    assert all(m["role"] in ("system", "user", "assistant") for m in last)
    assert last[-1]["content"].startswith("Tool results:\n" + task.steps[-1].tool + ": ")


def test_native_mode_records_a_call_written_as_text_and_scores_it_as_before():
    spec = spec_with({"name": "q", "model": "qwen-coder"})
    task = WorkflowRunner(spec).task_for(expand(spec.matrix)[0])
    client = ScriptedClient(["```json\n" + calls_text(task.steps)[0] + "\n```"])
    row, progress, _ = run_case(spec, client)
    assert client.requests[0]["tools"] and len(client.requests) == 1
    assert row["status"] == "failure" and row["score"] == 0.0 and row["error_type"] is None
    assert row["details"]["tool_calling"] == "native" and row["details"]["content_tool_call"] is True
    assert task.steps[0].tool in row["details"]["answer_sample"] and progress.tool_calls == 0


def test_native_mode_with_native_calls_records_no_content_call():
    spec = spec_with({"name": "q", "model": "qwen-coder"})
    task = WorkflowRunner(spec).task_for(expand(spec.matrix)[0])
    script = [{"id": f"c{i}", "type": "function", "function": {"name": s.tool, "arguments": json.dumps(s.kwargs)}}
              for i, s in enumerate(task.steps)]
    row, progress, _ = run_case(spec, ScriptedClient(script + ["Done, the report is written."]))
    assert row["status"] == "success" and row["details"] == {"tool_calling": "native", "content_tool_call": False}
    assert progress.tool_calls == len(task.steps)


def test_prompt_mode_ends_on_an_unreadable_call_with_a_final_bad_response_outcome():
    spec = spec_with({"name": "q", "model": "qwen-coder", "toolCalling": "prompt"})
    task = WorkflowRunner(spec).task_for(expand(spec.matrix)[0])
    good = calls_text(task.steps)
    client = ScriptedClient([good[0], '```json\n{"name": "%s" "arguments": {}}\n```' % task.steps[1].tool] + good[1:])
    row, progress, _ = run_case(spec, client)
    assert len(client.requests) == 2, "the case ends at the answer that cannot be read"
    assert row["status"] in ("failure", "partial") and 0 < row["score"] < 1, "scored on the calls made before"
    assert row["error_type"] == "bad_response" and "malformed JSON" in row["error_message"]
    assert row["details"]["unreadable_call"] is True and task.steps[1].tool in row["details"]["answer_sample"]


def test_prompt_mode_an_invented_tool_is_a_wrong_call_and_the_conversation_goes_on():
    spec = spec_with({"name": "q", "model": "qwen-coder", "toolCalling": "prompt"})
    task = WorkflowRunner(spec).task_for(expand(spec.matrix)[0])
    client = ScriptedClient(['{"name": "super_tool", "arguments": {}}'] + calls_text(task.steps))
    row, progress, _ = run_case(spec, client)
    assert row["status"] == "success" and row["error_type"] is None
    assert "unknown tool 'super_tool'" in client.requests[1]["messages"][-1]["content"]
    assert progress.tool_calls == len(task.steps) + 1


def test_a_request_without_tools_is_never_translated():
    """A suite that sends no tools (text2sql) talks to a prompt-mode model exactly as to any other."""
    spec = spec_with({"name": "q", "model": "qwen-coder", "toolCalling": "prompt"})
    client = ScriptedClient(["SELECT 1"])
    runner = CaseRunner(spec, WorkflowRunner(spec), endpoints=Clients(client))
    chat = runner._chat(expand(spec.matrix)[0])
    messages = [{"role": "system", "content": "Write SQL."}, {"role": "user", "content": "How many?"}]
    result = asyncio.run(chat(messages, []))
    assert client.requests == [{"model": "qwen-coder", "messages": messages, "tools": []}]
    assert type(result) is ChatResult and result.message["content"] == "SELECT 1"


def test_simulated_models_record_no_tool_calling_details():
    spec = spec_with("sim/oracle")
    runner = CaseRunner(spec, WorkflowRunner(spec, sleep=lambda s: asyncio.sleep(0)))
    row = asyncio.run(runner.run(expand(spec.matrix)[0], CaseProgress()))
    assert row["status"] == "success" and row["details"] is None


# ---------------------------------------------------------------- the report


def test_report_shows_each_models_mode_from_the_rows_it_keeps():
    import pyarrow as pa

    from benchpilot_runner import report as R
    from benchpilot_runner.report import tools as RT

    def d(**kw):
        return json.dumps(kw, sort_keys=True)  # as the scheduler writes details

    rows = [  # (model, case, status, attempt, details)
        ("a", "1", "error", 1, d(tool_calling="native", content_tool_call=True)),  # superseded by attempt 2
        ("a", "1", "failure", 2, d(tool_calling="native", content_tool_call=False)),
        ("a", "2", "failure", 1, d(tool_calling="native", content_tool_call=True, answer_sample="{...}")),
        ("b", "3", "failure", 1, d(tool_calling="prompt", unreadable_call=True)),
        ("b", "4", "success", 1, d(tool_calling="prompt", unreadable_call=False)),
        ("sim/strong", "5", "success", 1, None),  # simulated: no mode, not listed
        ("t2s", "6", "success", 1, d(valid=True, sql="SELECT 1")),  # another suite's details: not listed
    ]
    base = pa.table({"namespace": ["n"] * len(rows), "run": ["r"] * len(rows), "uid": ["u"] * len(rows),
                     "model": [r[0] for r in rows], "case_id": [r[1] for r in rows],
                     "status": [r[2] for r in rows], "attempt": pa.array([r[3] for r in rows], pa.int32()),
                     "finished_at": [T0] * len(rows)})
    def part(i, j):  # rows i..j as one part, read as the report reads it
        details = pa.chunked_array([pa.array([r[4] for r in rows[i:j]], pa.string())])
        return RT.add_columns(base.slice(i, j - i), details)

    parts = [part(0, 3), part(3, 5), part(5, 7)]  # the last part names no mode: it gets no columns of its own
    assert RT.MODE not in parts[2].column_names and RT.MODE in parts[0].column_names
    raw = pa.concat_tables(parts, promote_options="permissive").unify_dictionaries()
    loaded = R.Loaded(raw=raw, losers=R.losers_of(raw, R.winners(raw)), parts=3, unreadable=[])
    got = RT.summary(loaded)
    assert got == [
        {"model": "a", "mode": "native", "cases": 2, "content_tool_call_rate": 0.5, "unreadable_call_rate": None},
        {"model": "b", "mode": "prompt", "cases": 2, "content_tool_call_rate": None, "unreadable_call_rate": 0.5}]

    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    RT.render({"tool_calling": got}, Console(file=buf, width=120))
    text = buf.getvalue()
    assert "Tool calling by model" in text and "native" in text and "50%" in text
    buf = StringIO()
    RT.render({"tool_calling": []}, Console(file=buf, width=120))
    assert buf.getvalue() == "", "nothing printed for runs of simulated models only"
