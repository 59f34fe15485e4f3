"""The spec contract: validation messages, defaults, expansion order, case ids, sharding."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
import yaml

from benchpilot_runner import manifest as L
from benchpilot_runner.contract.cases import case_id, expand, shard_cases, shard_sizes
from benchpilot_runner.contract.fields import SpecError, parse_memory
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.resolved import from_resolved
from tests.bad_manifests import BAD, IDS
from tests.helpers import EXAMPLES, manifest


def parse(doc):
    return parse_manifest(doc)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_manifest_is_valid(path):
    spec = L.load_manifest(str(path))
    assert spec.total_cases == len(expand(spec.matrix)) > 0


def test_quickstart_has_120_cases():
    spec = L.load_manifest(str(EXAMPLES / "quickstart.yaml"))
    assert spec.total_cases == 120
    assert len({c.case_id for c in expand(spec.matrix)}) == 120


def test_defaults_are_filled_in():
    doc = manifest()
    del doc["spec"]["sharding"], doc["spec"]["output"]
    spec = parse(doc)
    assert spec.sharding.shards == 1 and spec.sharding.concurrency_per_shard == 32
    assert spec.output.uri == "./results" and spec.output.flush_every_rows == 50
    assert spec.limits.case_timeout_s == 300 and spec.limits.hang_timeout_s == 120
    assert spec.matrix.suite_field("toolSuccessRate") == 0.8  # the workflow suite's own matrix field
    assert spec.resources.max_pod_memory_bytes == 8 * 1024**3


def test_resolved_round_trip():
    spec = parse(manifest(simulation={"sim/custom": {"accuracy": 0.5, "latencySeconds": 0.01}},
                          endpoint={"baseURL": "http://llm:8000/v1/", "apiKeySecretRef": {"name": "llm-key"}}))
    again = from_resolved(json.loads(json.dumps(spec.to_resolved())))
    assert again == spec
    assert again.endpoint("default").base_url == "http://llm:8000/v1"


@pytest.mark.parametrize("bad", BAD, ids=IDS)
def test_bad_manifest_names_the_field(bad):
    doc = manifest()
    bad.change(doc)
    with pytest.raises(SpecError) as err:
        parse(doc)
    assert err.value.path == bad.path
    assert all(w in str(err.value) for w in bad.words), str(err.value)


def test_yaml_errors_name_the_line():
    with pytest.raises(SpecError) as err:
        L.load_manifest_text("apiVersion: benchpilot.io/v1alpha1\nkind: [unclosed\n", source="run.yaml")
    assert "run.yaml" in str(err.value) and "line" in str(err.value)


def test_multi_document_file_picks_the_run():
    text = "apiVersion: v1\nkind: Secret\n---\n" + yaml.safe_dump(manifest())
    assert L.load_manifest_text(text).name == "t-run"


def test_expansion_order_is_the_documented_nesting():
    m = parse_manifest(manifest()).matrix
    cases = expand(m)
    keys = [(c.model, c.prompt_type, c.difficulty, c.task_type, c.instance) for c in cases]
    expected = [(a, b, c, d, e) for a in m.models for b in m.prompt_types for c in m.difficulties
                for d in m.task_types for e in range(m.instances)]
    assert keys == expected


def test_case_id_depends_on_every_field_and_the_suite_version():
    base = case_id("sim/weak", "baseline", "easy", "simple_task", 0, "workflow-1")
    variants = [case_id("sim/strong", "baseline", "easy", "simple_task", 0, "workflow-1"),
                case_id("sim/weak", "cot", "easy", "simple_task", 0, "workflow-1"),
                case_id("sim/weak", "baseline", "hard", "simple_task", 0, "workflow-1"),
                case_id("sim/weak", "baseline", "easy", "basic_task", 0, "workflow-1"),
                case_id("sim/weak", "baseline", "easy", "simple_task", 1, "workflow-1"),
                case_id("sim/weak", "baseline", "easy", "simple_task", 0, suite_version="workflow-0")]
    assert len(set(variants + [base])) == len(variants) + 1


def test_case_id_is_stable_across_processes():
    code = ("from benchpilot_runner.contract.cases import case_id; "
            "print(case_id('sim/weak','baseline','easy','simple_task',3,'workflow-1'))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin"}).stdout.strip()
            for seed in (1, 2)}
    assert outs == {case_id("sim/weak", "baseline", "easy", "simple_task", 3, "workflow-1")}


def test_adding_a_model_keeps_existing_case_ids():
    small = parse_manifest(manifest()).matrix
    doc = manifest()
    doc["spec"]["matrix"]["models"].append("sim/oracle")
    big = parse_manifest(doc).matrix
    assert {c.case_id for c in expand(small)} <= {c.case_id for c in expand(big)}


@pytest.mark.parametrize("shards", [1, 2, 3, 7, 16])
def test_every_case_is_in_exactly_one_shard(shards):
    doc = manifest()
    doc["spec"]["matrix"]["instances"] = 5
    m = parse_manifest(doc).matrix
    all_ids = [c.case_id for c in expand(m)]
    seen = Counter(c.case_id for i in range(shards) for c in shard_cases(m, i, shards))
    assert sorted(seen) == sorted(all_ids) and set(seen.values()) == {1}
    assert [len(shard_cases(m, i, shards)) for i in range(shards)] == shard_sizes(len(all_ids), shards)
    # position p goes to shard p % N
    for p, cid in enumerate(all_ids):
        assert cid in {c.case_id for c in shard_cases(m, p % shards, shards)}


def test_shard_index_out_of_range():
    m = parse_manifest(manifest()).matrix
    with pytest.raises(ValueError, match="0..1"):
        shard_cases(m, 2, 2)


@pytest.mark.parametrize("text,expected", [("512Mi", 512 * 2**20), ("8Gi", 8 * 2**30), ("1G", 10**9),
                                           ("1.5Gi", int(1.5 * 2**30)), ("1024", 1024)])
def test_memory_quantities(text, expected):
    assert parse_memory(text, "x") == expected
