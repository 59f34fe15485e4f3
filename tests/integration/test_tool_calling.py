"""Tool use for models without native tool calls, through the real runner (``benchpilot run``) against
the fake OpenAI-compatible server answering in each shape open models and gateways write."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.helpers import manifest, run_cli, write_manifest
from tests.servers.fake_llm import CONTENT_SHAPES

pytestmark = pytest.mark.slow
SHAPES = sorted(CONTENT_SHAPES)  # each writes every call of the workflow as text, never as tool_calls
INSTANCES = 2


def rows(out: Path) -> list[dict]:
    return ds.dataset(str(out), format="parquet").to_table().to_pylist()


def workflow_doc(fake_llm, name: str, models: list[dict]) -> dict:
    doc = manifest()
    doc["metadata"]["name"] = name
    doc["spec"]["endpoints"] = [{"name": "gw", "baseURL": fake_llm.url(name), "limits": {"requestsPerMinute": 30000}}]
    doc["spec"]["matrix"] = {"models": models, "promptTypes": ["optimal"], "difficulties": ["medium"],
                             "taskTypes": ["data_pipeline", "api_integration"], "instances": INSTANCES,
                             "toolSuccessRate": 1.0}
    doc["spec"]["sharding"] = {"shards": 2, "concurrencyPerShard": 8}
    return doc


def model(label: str, served: str, mode: str | None) -> dict:
    return {"name": label, "endpoint": "gw", "model": served, **({"toolCalling": mode} if mode else {})}


def test_every_shape_in_both_modes(tmp_path, fake_llm):
    models = [model(f"{s}/prompt", f"content-{s}", "prompt") for s in SHAPES]
    models += [model(f"{s}/native", f"content-{s}", None) for s in SHAPES]
    models += [model(f"{s}/{m}", f"content-{s}", m) for s in ("broken", "prose") for m in ("prompt", "native")]
    models += [model("follow/native", "follow", "native")]
    out = tmp_path / "out"
    before = Counter(fake_llm.fake.content_requests)
    res = run_cli("run", str(write_manifest(tmp_path / "m.yaml", workflow_doc(fake_llm, "shapes", models))),
                  "--output", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]

    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    success = {g["model"]: g["success_rate"] for g in summary["by_model"]}
    cases = 2 * INSTANCES
    assert summary["total"] == cases * len(models) and summary["final"] == summary["total"]
    for s in SHAPES:  # the same answers: read in prompt mode, lost in native mode
        assert success[f"{s}/prompt"] == 1.0, s
        assert success[f"{s}/native"] == 0.0, s
    assert success["follow/native"] == 1.0
    assert all(success[f"{s}/{m}"] == 0.0 for s in ("broken", "prose") for m in ("prompt", "native"))

    tool = {g["model"]: g for g in summary["tool_calling"]}
    assert {m["name"]: tool[m["name"]]["mode"] for m in models} == {
        m["name"]: m.get("toolCalling", "native") for m in models}, "the report shows each model's mode"
    for s in SHAPES:
        assert tool[f"{s}/native"]["content_tool_call_rate"] == 1.0, s
        assert tool[f"{s}/prompt"]["unreadable_call_rate"] == 0.0, s
    assert tool["follow/native"]["content_tool_call_rate"] == 0.0
    assert tool["prose/native"]["content_tool_call_rate"] == 0.0, "prose holds no call"
    assert tool["broken/native"]["content_tool_call_rate"] == 0.0, "only a well-formed call counts"
    assert tool["broken/prompt"]["unreadable_call_rate"] == 1.0 and tool["prose/prompt"]["unreadable_call_rate"] == 0
    table = run_cli("report", str(out)).stdout
    assert "Tool calling by model" in table and "broken/prompt" in table
    page = tmp_path / "report.html"
    assert run_cli("report", str(out), "--html", str(page)).returncode == 0
    html = page.read_text()
    section = html[html.index('id="tool-calling-section"'):]
    assert all(f'data-model="{m["name"]}"' in section for m in models), "the HTML shows each model's mode too"

    by_model: dict[str, list[dict]] = {}
    for r in rows(out):
        by_model.setdefault(r["model"], []).append(r)
    for r in by_model["broken/prompt"]:  # final: the model's own answer, never retried as infrastructure
        assert (r["status"], r["error_type"], r["turns"]) == ("failure", "bad_response", 1)
        assert "no tool call could be read" in r["error_message"] and '"name": "file_reader"' in r["error_message"]
    assert all(r["error_type"] is None and r["status"] == "failure" for r in by_model["prose/prompt"])
    def calls(label: str) -> dict:
        return {(r["task_type"], r["instance"]): r["tool_calls"] for r in by_model[label]}

    for s in ("bare", "fenced", "list", "two", "pythonic"):  # one call per turn, or two: the same calls are made
        assert calls(f"{s}/prompt") == calls("follow/native"), s
        assert set(calls(f"{s}/native").values()) == {0}
    assert calls("invented/prompt") == {k: n + 1 for k, n in calls("follow/native").items()}, \
        "one invented call (a wrong call), then the workflow"
    native = json.loads(by_model["hermes/native"][0]["details"])
    assert native["content_tool_call"] is True and "<tool_call>" in native["answer_sample"]

    sent = Counter(fake_llm.fake.content_requests)  # (served model, tools sent?): both modes serve the same names
    sent.subtract(before)
    prompt_models = {f"content-{s}" for s in SHAPES} | {"content-broken", "content-prose"}
    prompt_turns = sum(r["turns"] for m, rs in by_model.items() if m.endswith("/prompt") for r in rs)
    native_turns = sum(r["turns"] for m, rs in by_model.items() if m.endswith("/native") and not m.startswith("follow")
                       for r in rs)
    assert sum(sent[m, False] for m in prompt_models) == prompt_turns, "prompt mode sends no tools"
    assert sum(sent[m, True] for m in prompt_models) == native_turns, "native mode sends them"


def test_an_unknown_mode_exits_2_naming_the_field(tmp_path, fake_llm):
    doc = workflow_doc(fake_llm, "badmode", [model("q", "content-bare", "json")])
    res = run_cli("run", str(write_manifest(tmp_path / "m.yaml", doc)), "--output", str(tmp_path / "out"),
                  "--no-progress")
    assert res.returncode == 2
    line = [ln for ln in res.stderr.splitlines() if "toolCalling" in ln]
    assert line and "spec.matrix.models[0].toolCalling" in line[0] and "'json'" in line[0]
    assert "allowed: native, prompt" in line[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.parquet"))


def test_text2sql_answers_the_same_in_either_mode(tmp_path, fake_llm):
    """text2sql sends no tools: a prompt-mode model gets exactly the requests and rows a native one does."""
    models = [{"name": "sql/native", "model": "sql-count"},
              {"name": "sql/prompt", "model": "sql-count", "toolCalling": "prompt"}]
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "t2s-modes"},
           "spec": {"suite": "text2sql", "endpoint": {"baseURL": fake_llm.base_url, "qps": 200},
                    "matrix": {"models": models, "promptTypes": ["zero_shot"], "taskTypes": ["filter", "join"],
                               "difficulties": ["simple"], "instances": 2},
                    "output": {"flushEveryRows": 4, "flushEverySeconds": 1}}}
    res = run_cli("run", str(write_manifest(tmp_path / "m.yaml", doc)), "--output", str(tmp_path / "out"),
                  "--no-progress", env={"BENCHPILOT_DATA_DIR": str(tmp_path / "data")})
    assert res.returncode == 0, res.stderr[-3000:]
    got: dict[str, dict] = {}
    for r in rows(tmp_path / "out"):
        key = (r["task_type"], r["instance"])
        got.setdefault(r["model"], {})[key] = (r["status"], r["score"], r["turns"], r["details"])
    assert got["sql/native"] == got["sql/prompt"] and len(got["sql/native"]) == 4
