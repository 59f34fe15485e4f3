"""Hostile input: every path in (manifest, resolved spec, env, flags) is refused cleanly.

A refusal is a SpecError naming the field, with a bounded message; through the CLI it is exit 2,
one line on stderr, no traceback, nothing written. A seeded fuzzer keeps the class covered.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import random
import socket
import time

import pytest
import yaml

from benchpilot_runner import cli
from benchpilot_runner import manifest as L
from benchpilot_runner.contract.fields import SpecError
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.resolved import from_resolved
from benchpilot_runner.contract.podenv import PodEnv
from tests.helpers import manifest

MAX_MESSAGE = 600


def refused(doc_or_text, field: str | None = None, word: str | None = None) -> SpecError:
    with pytest.raises(SpecError) as err:
        if isinstance(doc_or_text, (str, bytes)):
            L.load_manifest_text(doc_or_text, source="m.yaml")
        else:
            parse_manifest(doc_or_text)
    msg = str(err.value)
    assert len(msg) < MAX_MESSAGE, msg[:200]
    if field:
        assert err.value.path == field, msg
    if word:
        assert word in msg, msg
    return err.value


def with_(path: str, value):
    doc = manifest()
    node = doc
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return doc


@pytest.mark.parametrize("path", ["spec.limits.caseTimeoutSeconds", "spec.endpoint.qps",
                                  "spec.matrix.toolSuccessRate", "spec.output.flushEverySeconds",
                                  "spec.resources.footprint.sharedMiB"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_numbers_must_be_finite(path, value):
    doc = with_(path, value)
    if "endpoint" in path:
        doc["spec"]["endpoint"]["baseURL"] = "http://llm:8000/v1"
    refused(doc, path, "finite")


def test_nan_from_yaml_text():
    text = yaml.safe_dump(manifest()).replace("instances: 2", "instances: 2\n    toolSuccessRate: .nan")
    refused(text, "spec.matrix.toolSuccessRate", "finite")
    doc = manifest(simulation={"sim/x": {"accuracy": 0.5, "latencySeconds": float("nan")}})
    refused(doc, "spec.simulation.sim/x.latencySeconds", "finite")


def test_huge_model_name_is_refused_with_a_bounded_message():
    err = refused(with_("spec.matrix.models", ["sim/" + "a" * 100_000]), "spec.matrix.models[0]", "at most")
    assert len(str(err)) < 300


def test_duplicate_keys_are_refused():
    text = yaml.safe_dump(manifest()) + "spec:\n  suite: workflow\n"
    refused(text, "m.yaml", "duplicate key 'spec'")
    nested = yaml.safe_dump(manifest()).replace("instances: 2", "instances: 2\n    instances: 3")
    refused(nested, "m.yaml", "duplicate key 'instances'")


def test_unknown_sections_are_named_before_anything_else():
    # an unknown section never produces a message about another field
    doc = with_("spec.endpointz", [{"name": "x"}])
    doc["spec"]["matrix"]["models"] = ["openai/gpt-4o"]
    refused(doc, "spec.endpointz", "unknown field")
    bad = with_("spec.endpoints", [{"name": "a", "baseURL": "http://a/v1", "ratelimit": 5}])
    refused(bad, "spec.endpoints[0].ratelimit", "unknown field")


def test_mixed_type_keys_do_not_crash():
    doc = manifest()
    doc["spec"][1] = "x"
    doc["spec"]["zz"] = "y"
    refused(doc, "spec", "not a string")
    refused("apiVersion: benchpilot.io/v1alpha1\nkind: BenchmarkRun\nmetadata: {name: a}\nspec:\n  1: x\n  z: y\n",
            "spec", "not a string")


@pytest.mark.parametrize("uri,word", [("memory://x", "does not keep"), ("http://example/x", "does not keep"),
                                      ("zip://a::s3://b", "chained"), ("a\nb", "control")])
def test_output_uri_must_keep_results(uri, word):
    refused(with_("spec.output.uri", uri), "spec.output.uri", word)


@pytest.mark.parametrize("uid", ["../../../../escaped", "a/b", "..", ".", "x" * 100, "-a"])
def test_uid_cannot_escape_the_output(uid):
    refused(with_("metadata.uid", uid), "metadata.uid")


def test_invalid_utf8_and_size_and_depth():
    refused(b"apiVersion: \xff\xfe\n", "m.yaml", "UTF-8")
    refused(b"a: " + b"x" * (L.MAX_BYTES + 10), "m.yaml", "bytes")
    refused("[" * 5000 + "]" * 5000, "m.yaml", "nested")
    refused("a: &a [*a]\n", "m.yaml")


def test_billion_laughs_is_refused_fast_and_small():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    text = "apiVersion: benchpilot.io/v1alpha1\nkind: BenchmarkRun\nmetadata: {name: x}\n" + "\n".join(lines) + \
        "\nspec:\n  matrix:\n    models: [sim/weak]\n    promptTypes: [baseline]\n    instances: *a9\n"
    t0 = time.monotonic()
    err = refused(text, "m.yaml", "expands")
    assert time.monotonic() - t0 < 2 and len(str(err)) < 200


@pytest.mark.parametrize("change,field", [
    (lambda d: d["spec"]["sharding"].__setitem__("shards", 0), "spec.sharding.shards"),
    (lambda d: d["spec"]["matrix"].__setitem__("instances", "x"), "spec.matrix.instances"),
    (lambda d: d["spec"]["matrix"].__setitem__("instances", -5), "spec.matrix.instances"),
    (lambda d: d["spec"]["matrix"].__setitem__("models", ["sim/nope"]), "spec.matrix.models[0]"),
    (lambda d: d["spec"]["endpoints"].append({"name": "default"}), "spec.endpoints[1].name"),
    (lambda d: d["spec"]["endpoints"][0]["limits"].__setitem__("requestsPerMinute", 0),
     "spec.endpoints[0].limits.requestsPerMinute"),
])
def test_the_resolved_spec_goes_through_the_same_parser(change, field):
    spec = parse_manifest(manifest(endpoint={"baseURL": "http://llm/v1", "qps": 2},
                                     matrix={"models": ["openai/m", "sim/weak"], "promptTypes": ["baseline"],
                                             "instances": 2}))
    resolved = json.loads(json.dumps(spec.to_resolved()))
    assert from_resolved(resolved) == spec
    change(resolved)
    refused(resolved, field)


def test_env_of_a_pod_is_validated():
    base = {"BENCHPILOT_SHARD": "0", "BENCHPILOT_SHARDS": "2"}
    assert PodEnv.from_env(base).health_port == 8080
    for env, field in [({"BENCHPILOT_HEALTH_PORT": "99999"}, "env BENCHPILOT_HEALTH_PORT"),
                       ({"BENCHPILOT_HEALTH_PORT": "http"}, "env BENCHPILOT_HEALTH_PORT"),
                       ({"BENCHPILOT_SHARD": "5"}, "env BENCHPILOT_SHARD"),
                       ({"BENCHPILOT_SHARDS": "-1"}, "env BENCHPILOT_SHARDS"),
                       ({"BENCHPILOT_CONCURRENCY": "0"}, "env BENCHPILOT_CONCURRENCY"),
                       ({"BENCHPILOT_LIMIT_SHARE": "1.5"}, "env BENCHPILOT_LIMIT_SHARE"),
                       ({"BENCHPILOT_MEMORY_REQUEST_BYTES": "lots"}, "env BENCHPILOT_MEMORY_REQUEST_BYTES")]:
        with pytest.raises(SpecError) as err:
            PodEnv.from_env({**base, **env})
        assert err.value.path == field


def test_what_the_operator_writes_the_pod_reads_back():
    """PodEnv is the only place the pod's variable names exist: to_env and from_env are inverses."""
    sent = PodEnv(shard=3, shards=8, concurrency=16, health_port=8080, memory_request_bytes=512 * 2**20,
                  termination_log="/dev/termination-log", data_dir="/var/lib/benchpilot/data", cache_dir="/cache",
                  limit_share=0.125, shares_file="/etc/benchpilot-shares/shares.json")
    env = {e["name"]: e["value"] for e in sent.to_env()}
    assert PodEnv.from_env(env) == sent
    assert PodEnv.from_env({"BENCHPILOT_SHARD": "0", "BENCHPILOT_SHARDS": "1"}).share == 1.0


# ---------------------------------------------------------------- through the CLI: exit 2, one line


def _cli(capsys, *args) -> tuple[int, str]:
    # collect earlier tests' garbage first: an unclosed session's finalizer logs through the handler
    # the CLI installs, and would be counted as the CLI's own output
    gc.collect()
    capsys.readouterr()
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


def _assert_one_line_refusal(code, err, word):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err[-500:]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("benchpilot: error:"), err[-500:]
    assert word in lines[0], lines[0]


@pytest.mark.parametrize("doc_change,word", [
    (lambda d: d["spec"]["limits"].__setitem__("caseTimeoutSeconds", math.nan), "finite"),
    (lambda d: d["metadata"].__setitem__("uid", "../../../../escaped"), "metadata.uid"),
    (lambda d: d["spec"]["output"].__setitem__("uri", "memory://x"), "does not keep"),
    (lambda d: d["spec"]["matrix"].__setitem__("models", ["sim/nope"]), "sim/nope"),
])
def test_cli_refuses_bad_manifests(tmp_path, capsys, doc_change, word):
    doc = manifest()
    doc["spec"]["limits"] = {}
    doc_change(doc)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    code, err = _cli(capsys, "run", str(path), "--output", str(out), "--no-progress")
    _assert_one_line_refusal(code, err, word)
    assert not out.exists(), "nothing is written for a refused manifest"


def test_cli_refuses_bad_flags_and_bytes(tmp_path, capsys):
    good = tmp_path / "m.yaml"
    good.write_text(yaml.safe_dump(manifest()))
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"apiVersion: \xff\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, word in [(["--metrics-port", "-5"], "--metrics-port"), (["--metrics-port", "99999"], "--metrics-port"),
                           (["--metrics-port", str(port)], "cannot listen"), (["--shards", "0"], "--shards"),
                           (["--shards", "100000"], "--shards"), (["--output", "memory://x"], "--output")]:
            code, err = _cli(capsys, "run", str(good), "--no-progress", *args)
            _assert_one_line_refusal(code, err, word)
    code, err = _cli(capsys, "run", str(bad), "--no-progress")
    _assert_one_line_refusal(code, err, "UTF-8")


def test_report_plot_to_an_unwritable_path(tmp_path, capsys):
    good = tmp_path / "m.yaml"
    good.write_text(yaml.safe_dump(manifest()))
    assert cli.main(["run", str(good), "--output", str(tmp_path / "out"), "--no-progress"]) == 0
    capsys.readouterr()
    code, err = _cli(capsys, "report", str(tmp_path / "out"), "--plot", str(tmp_path / "no" / "such" / "p.png"))
    _assert_one_line_refusal(code, err, "--plot")


# ---------------------------------------------------------------- fuzz


HOSTILE = [None, True, 0, -1, 2**63, 1e308, math.nan, math.inf, "", "x" * 5000, "../..", "\x00", "sim/weak",
           [], [None], [1, "a"], {}, {"a": 1}, {1: 2}, "http://x/v1", "memory://x", "8Gi", "-1Gi", "1e400",
           "ünïcödé", ["sim/weak", "sim/weak"], {"name": "x"}, [{"name": "e", "baseURL": "http://e/v1"}]]


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


FUZZ_BASES = {
    "workflow": dict(matrix={"models": ["sim/weak", {"name": "m1", "endpoint": "e", "model": "x",
                                                    "price": {"inputPerMillionTokens": 1}}],
                             "promptTypes": ["baseline"], "instances": 2}),
    "text2sql": dict(suite="text2sql", suiteConfig={"dataset": "s3://b/bird", "questions": "dev.json",
                                                    "selfConsistency": 3, "rowLimit": 500},
                     matrix={"models": ["sim/weak", {"name": "m1", "endpoint": "e", "model": "x"}],
                             "promptTypes": ["zero_shot", "misleading_join_hint"], "difficulties": ["moderate"],
                             "taskTypes": ["join", "nested"], "instances": 2}),
}


@pytest.mark.parametrize("suite", sorted(FUZZ_BASES))
def test_fuzz_every_outcome_is_a_spec_or_a_bounded_spec_error(suite):
    rng = random.Random(20261124)
    base = parse_manifest(manifest(
        endpoints=[{"name": "e", "baseURL": "http://e/v1", "limits": {"requestsPerMinute": 60}}],
        budget={"maxCostUSD": 5}, limits={"caseTimeoutSeconds": 10}, **FUZZ_BASES[suite])).to_resolved()
    paths = list(_paths(base))
    accepted = 0
    for _ in range(3000):
        doc = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            node = doc
            try:
                for k in path[:-1]:
                    node = node[k]
                if rng.random() < 0.15 and isinstance(node, dict):
                    node[f"extra{rng.randint(0, 9)}"] = rng.choice(HOSTILE)
                elif rng.random() < 0.1 and isinstance(node, dict):
                    node.pop(path[-1], None)
                else:
                    node[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
            except (KeyError, IndexError, TypeError):
                continue
        try:
            spec = parse_manifest(doc)
        except SpecError as err:
            assert len(str(err)) < MAX_MESSAGE
            continue
        accepted += 1
        assert from_resolved(json.loads(json.dumps(spec.to_resolved()))) == spec  # the pod reads the same spec
    assert 0 < accepted < 3000
