"""Operator settings: grouped by concern, each field documented with its variable, unit and reason,
every documented variable the one read, and the chart setting only known ones."""

import ast
import re
from dataclasses import fields

import helm_python
import yaml

from benchpilot_operator.config import GROUPS, OperatorConfig, env_names
from tests.helpers import ROOT


def _documented() -> dict[str, str]:
    """group.field -> the docstring under each field of the config module's group classes."""
    tree = ast.parse((ROOT / "operator/src/benchpilot_operator/config.py").read_text())
    by_class = {n.name: n.body for n in tree.body if isinstance(n, ast.ClassDef)}
    out = {}
    for group, cls in GROUPS.items():
        body = by_class[cls.__name__]
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                doc = body[i + 1]
                assert isinstance(doc, ast.Expr) and isinstance(doc.value.value, str), f"{group}.{node.target.id}"
                out[f"{group}.{node.target.id}"] = doc.value.value
    return out


def test_every_setting_is_documented_and_read_from_one_variable():
    docs = _documented()
    assert set(docs) == set(env_names())
    for name, doc in docs.items():
        assert len(doc) > 25, f"{name}: say its unit and why it has its default"
    variables = list(env_names().values())
    assert len(set(variables)) == len(variables) and all(re.fullmatch(r"BENCHPILOT_[A-Z_]+", v) for v in variables)


def test_from_env_reads_and_types_every_field():
    cfg = OperatorConfig.from_env({"BENCHPILOT_RUNNER_IMAGE": "img:1", "BENCHPILOT_WATCH_NAMESPACE": "ns",
                                   "BENCHPILOT_SCRAPE_TIMEOUT_SECONDS": "3", "BENCHPILOT_MAX_OOM_RETRIES": "5"})
    assert (cfg.runner.image, cfg.watching.namespace, cfg.watching.scrape_timeout_s, cfg.memory.max_oom_retries) == (
        "img:1", "ns", 3.0, 5)
    assert OperatorConfig.from_env({}) == OperatorConfig()
    for group, cls in GROUPS.items():  # every variable reaches its field
        for f in fields(cls):
            value = "7" if isinstance(f.default, (int, float)) else "x"
            got = getattr(getattr(OperatorConfig.from_env({f.metadata["env"]: value}), group), f.name)
            assert str(got) in ("7", "7.0", "x"), (group, f.name)


def test_chart_sets_only_settings_the_operator_reads():
    chart = helm_python.Chart.load(str(ROOT / "charts/benchpilot"))
    try:
        text = chart.render(None, name="bp", namespace="bench", is_install=True)["benchpilot/templates/deployment.yaml"]
    finally:
        chart.close()
    env = {e["name"] for e in yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env <= set(env_names().values())
