"""Operator settings: each field's documented env var is the one read, and the chart sets only known ones."""

import ast
import re
from dataclasses import fields

import helm_python
import yaml

from benchpilot_operator.config import OperatorConfig, env_name
from tests.helpers import ROOT


def test_documented_env_names_are_the_ones_read():
    src = (ROOT / "operator/src/benchpilot_operator/config.py").read_text()
    body = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef)).body
    documented = {node.target.id: re.findall(r"\((BENCHPILOT_[A-Z_]+)\)", body[i + 1].value.value)[-1]
                  for i, node in enumerate(body) if isinstance(node, ast.AnnAssign)}
    assert documented == {f.name: env_name(f.name) for f in fields(OperatorConfig)}


def test_from_env_reads_and_types_every_field():
    cfg = OperatorConfig.from_env({"BENCHPILOT_RUNNER_IMAGE": "img:1", "BENCHPILOT_WATCH_NAMESPACE": "ns",
                                   "BENCHPILOT_SCRAPE_TIMEOUT_SECONDS": "3", "BENCHPILOT_MAX_OOM_RETRIES": "5"})
    assert (cfg.image, cfg.namespace, cfg.scrape_timeout_s, cfg.max_oom_retries) == ("img:1", "ns", 3.0, 5)
    assert OperatorConfig.from_env({}) == OperatorConfig()


def test_chart_sets_only_settings_the_operator_reads():
    chart = helm_python.Chart.load(str(ROOT / "charts/benchpilot"))
    try:
        text = chart.render(None, name="bp", namespace="bench", is_install=True)["benchpilot/templates/deployment.yaml"]
    finally:
        chart.close()
    env = {e["name"] for e in yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env <= {env_name(f.name) for f in fields(OperatorConfig)}
