"""The CRD: a structural schema that agrees with the runner's validation, checked as an API server would.

An API server prunes, defaults, validates against the OpenAPI v3 schema (Draft 4 style), then
evaluates the x-kubernetes-validations CEL rules (with oldSelf on updates). This test does the
same: a structural check of the schema, defaulting, jsonschema's Draft 4 validator, and every
CEL rule evaluated with cel-python.
"""

from __future__ import annotations

import copy
from pathlib import Path

import celpy
import jsonschema
import pytest
import yaml

from benchpilot_runner.contract.fields import SpecError
from benchpilot_runner.contract.parse import parse_manifest

from tests.bad_manifests import BAD, IDS
from tests.helpers import EXAMPLES, ROOT, manifest

CRD = yaml.safe_load((ROOT / "crds" / "benchpilot.io_benchmarkruns.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def structural_problems(node: dict, path: str = "") -> list[str]:
    """Kubernetes' structural-schema rules that matter here."""
    problems = []
    if not (node.get("type") or node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{path or '<root>'}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    for bad in ("$ref", "definitions"):
        if bad in node:
            problems.append(f"{path or '<root>'}: {bad} is not allowed")
    if node.get("type") == "array" and "items" not in node:
        problems.append(f"{path}: array without items")
    for k, sub in (node.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.{k}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}[*]")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if "default" in node and node.get("type") == "object" and node["default"] not in ({},):
        jsonschema.Draft4Validator(_strip(node)).validate(node["default"])
    return problems


def _strip(node):
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if not k.startswith("x-kubernetes") and k != "format"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def apply_defaults(node: dict, value):
    if isinstance(value, dict) and node.get("type") == "object":
        for key, sub in (node.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        if isinstance(node.get("additionalProperties"), dict):
            for key in value:
                value[key] = apply_defaults(node["additionalProperties"], value[key])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [apply_defaults(node["items"], v) for v in value]
    return value


_CEL = celpy.Environment()


def cel_errors(node: dict, value, old=None, path: str = "") -> list[str]:
    errors = []
    for rule in node.get("x-kubernetes-validations") or []:
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        ctx = {"self": value}
        if transition:
            ctx["oldSelf"] = old
        result = _CEL.program(_CEL.compile(rule["rule"])).evaluate(celpy.json_to_cel(ctx))
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            errors.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in (node.get("properties") or {}).items():
            if key in value:
                errors += cel_errors(sub, value[key], (old or {}).get(key) if isinstance(old, dict) else None,
                                     f"{path}.{key}")
    return errors


def admit(doc: dict, old: dict | None = None) -> list[str]:
    """What an API server with this CRD would say about ``doc`` (empty: admitted)."""
    doc = apply_defaults(SCHEMA, copy.deepcopy(doc))
    errors = [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
              for e in jsonschema.Draft4Validator(_strip(SCHEMA)).iter_errors(doc)]
    if errors:
        return errors
    if old is not None:
        old = apply_defaults(SCHEMA, copy.deepcopy(old))
    return cel_errors(SCHEMA, doc, old)


def test_schema_is_structural_and_complete():
    assert structural_problems(SCHEMA) == []
    assert CRD["metadata"]["name"] == "benchmarkruns.benchpilot.io"
    assert CRD["spec"]["names"]["shortNames"] == ["br"] and VERSION["name"] == "v1alpha1"
    assert VERSION["subresources"] == {"status": {}}
    assert [c["name"] for c in VERSION["additionalPrinterColumns"]] == ["Phase", "Progress", "Shards", "Age"]
    # the vocabulary belongs to the suite (a plug-in): no enum and no default in the CRD, or a
    # text2sql run would be defaulted to the workflow suite's task types by the API server
    matrix = SCHEMA["properties"]["spec"]["properties"]["matrix"]["properties"]
    for key in ("promptTypes", "difficulties", "taskTypes"):
        assert "enum" not in matrix[key]["items"] and "default" not in matrix[key], key


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_admitted(path: Path):
    doc = yaml.safe_load(path.read_text())
    assert admit(doc) == []
    parse_manifest(doc)


def test_defaults_match_the_runner():
    doc = apply_defaults(SCHEMA, manifest())
    spec = parse_manifest(manifest())
    sp = doc["spec"]
    assert sp["sharding"]["maxParallelShards"] == spec.sharding.max_parallel_shards
    assert sp["failurePolicy"] == spec.failure_policy and sp["suite"] == spec.suite
    minimal = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "m"},
               "spec": {"matrix": {"models": ["sim/weak"], "promptTypes": ["baseline"]}}}
    for suite, prompt in (("workflow", "baseline"), ("text2sql", "zero_shot")):
        doc = copy.deepcopy(minimal)
        doc["spec"].update(suite=suite, matrix={"models": ["sim/weak"], "promptTypes": [prompt]})
        defaulted = apply_defaults(SCHEMA, copy.deepcopy(doc))
        s = parse_manifest(doc)
        assert parse_manifest(defaulted) == s, suite  # the API server's defaults change nothing
        assert defaulted["spec"]["matrix"]["instances"] == s.matrix.instances
        assert defaulted["spec"]["sharding"]["shards"] == s.sharding.shards


@pytest.mark.parametrize("bad", BAD, ids=IDS)
def test_bad_manifests_the_crd_refuses_and_those_only_the_parser_can(bad):
    """The CRD refuses what its schema can say; the rest (models are strings or objects, which CEL cannot
    see; cross-field counts) is admitted and refused by the parser (the operator's InvalidSpec)."""
    doc = manifest()
    bad.change(doc)
    assert bool(admit(doc)) == (bad.crd is not None), admit(doc)
    with pytest.raises(SpecError):
        parse_manifest(doc)


def test_matrix_shards_and_output_are_immutable_but_suspend_is_not():
    old = manifest()
    new = copy.deepcopy(old)
    new["spec"]["matrix"]["instances"] = 9
    assert any("matrix is immutable" in e for e in admit(new, old))
    new = copy.deepcopy(old)
    new["spec"]["sharding"]["shards"] = 3
    assert any("sharding.shards is immutable" in e for e in admit(new, old))
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    new["spec"]["sharding"]["maxParallelShards"] = 1
    assert admit(new, old) == []
