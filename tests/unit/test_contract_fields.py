"""One home per field: the CRD's property tree, the parser's known fields (contract.tree), their
defaults (contract.types) and the README must agree. Adding a field to one and not the others fails
here, naming what was forgotten (a field the CRD lacks is pruned silently by a real API server)."""

from __future__ import annotations

import copy
import re

import yaml

from benchpilot_runner.contract import tree as T
from benchpilot_runner.contract.fields import parse_memory
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.registry import SUITES
from tests.helpers import ROOT

CRD = yaml.safe_load((ROOT / "crds" / "benchpilot.io_benchmarkruns.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def spec_tree() -> dict:
    """The parser's tree of spec fields, with the built-in suites' own matrix fields."""
    out = dict(T.SPEC)
    out["matrix"] = T.matrix_fields(SUITES.get(name) for name in SUITES.builtin)
    return out


def crd_tree(node: dict):
    """The CRD schema in the tree's terms: sub-objects, lists and maps of sub-objects, open maps, leaves."""
    if node.get("type") == "object" and "properties" in node:
        return {k: crd_tree(v) for k, v in node["properties"].items()}
    items = node.get("items")
    if node.get("type") == "array" and isinstance(items, dict) and "properties" in items:
        return T.ListOf(crd_tree(items))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        return T.MapOf(crd_tree(extra))
    if node.get("x-kubernetes-preserve-unknown-fields") or extra is not None:
        return T.OPEN
    return node.get("default", T.NONE)


def _same_default(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str) and re.fullmatch(r"[0-9.]+(Ki|Mi|Gi|Ti|K|M|G|T)?", a):
        return parse_memory(a, "") == parse_memory(b, "")
    return a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b))


def differences(ours, crd, path: str = "spec") -> list[str]:
    if isinstance(ours, dict):
        if type(ours) is not type(crd):
            return [f"{path}: the parser reads a {type(ours).__name__}, the CRD has {crd!r}"]
        out = [f"{path}.{k}: known to the parser, not in the CRD (an API server prunes it)" for k in ours if k not in crd]
        out += [f"{path}.{k}: in the CRD, unknown to the parser (refused as an unknown field)" for k in crd
                if k not in ours]
        for k in ours.keys() & crd.keys():
            out += differences(ours[k], crd[k], f"{path}.{k}")
        return out
    if ours is T.OPEN or crd is T.OPEN or isinstance(crd, dict):
        return [] if ours is crd else [f"{path}: the parser has {ours!r}, the CRD has {crd!r}"]
    if crd is not T.NONE and not _same_default(ours, crd):
        return [f"{path}: default {ours!r} in contract.types, {crd!r} in the CRD"]
    return []


def test_the_crd_has_every_field_the_parser_knows_with_the_same_defaults():
    assert differences(spec_tree(), crd_tree(SPEC_SCHEMA)) == []


def test_the_check_names_what_was_forgotten():
    schema = copy.deepcopy(SPEC_SCHEMA)
    del schema["properties"]["resources"]["properties"]["scratch"]
    schema["properties"]["limits"]["properties"]["backoffLimit"]["default"] = 9
    schema["properties"]["budget"]["properties"]["maxDollars"] = {"type": "number"}
    found = differences(spec_tree(), crd_tree(schema))
    assert sorted(found) == [
        "spec.budget.maxDollars: in the CRD, unknown to the parser (refused as an unknown field)",
        "spec.limits.backoffLimit: default 2 in contract.types, 9 in the CRD",
        "spec.resources.scratch: known to the parser, not in the CRD (an API server prunes it)"]


def leaves(node, path: str):
    """(path, default) of every leaf, through sub-objects, lists and maps."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, f"{path}.{k}" if path else k)
    elif node is not T.OPEN:
        yield path, node


def _resolved_value(doc, path: str):
    for key in path.split("."):
        if isinstance(doc, list):
            doc = doc[0]
        if isinstance(doc, dict) and key not in doc and len(doc) == 1 and key not in ("name",):
            doc = next(iter(doc.values()))  # a map by the user's names (simulation)
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def test_the_parser_fills_in_every_default_of_the_tree():
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "d"},
           "spec": {"matrix": {"models": ["sim/weak", {"name": "m", "endpoint": "e"}], "promptTypes": ["baseline"]},
                    "endpoints": [{"name": "e", "baseURL": "http://e/v1", "apiKeySecretRef": {"name": "k"}}],
                    "simulation": {"sim/x": {}}}}
    resolved = parse_manifest(doc).to_resolved()["spec"]
    missing = []
    for path, default in leaves({k: v for k, v in spec_tree().items() if k != "endpoint"}, ""):
        if default is T.NONE:
            continue
        got = _resolved_value(resolved, path)
        if not _same_default(default, got if not isinstance(got, int) or isinstance(got, bool) else got):
            if not (isinstance(default, str) and isinstance(got, str) and got.isdigit()
                    and parse_memory(default, "") == int(got)):
                missing.append(f"{path}: tree {default!r}, parsed {got!r}")
    assert missing == []


def test_the_readme_names_every_field():
    readme = (ROOT / "README.md").read_text()
    names = {path.rsplit(".", 1)[-1] for path, _ in leaves(spec_tree(), "")}
    names |= {path.rsplit(".", 1)[-1] for path, _ in leaves(T.MODEL, "")} | set(spec_tree())
    unnamed = sorted(n for n in names if not re.search(rf"\b{re.escape(n)}\b", readme))
    assert unnamed == [], f"fields the README never names: {unnamed}"
