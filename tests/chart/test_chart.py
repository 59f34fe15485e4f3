"""The Helm chart, linted and rendered by real Helm (helm-python-sdk embeds Helm v4), every
rendered object validated offline against the Kubernetes schemas (kubernetes-validate, strict)."""

from __future__ import annotations

import json

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.helpers import ROOT

CHART = ROOT / "charts" / "benchpilot"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
K8S_VERSION = "1.31.0"
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def values_sets():
    yield "default", None
    for path in CI_VALUES:
        yield path.stem, yaml.safe_load(path.read_text())


VALUE_SETS = list(values_sets())


def render(values, namespace: str = "bench") -> list[dict]:
    chart = helm_python.Chart.load(str(CHART))
    try:
        out = chart.render(values, name="bp", namespace=namespace, is_install=True)
    finally:
        chart.close()
    docs = []
    for name, text in out.items():
        if name.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def notes(values) -> str:
    chart = helm_python.Chart.load(str(CHART))
    try:
        return chart.render(values, name="bp", namespace="bench", is_install=True)["benchpilot/templates/NOTES.txt"]
    finally:
        chart.close()


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("name,values", VALUE_SETS, ids=[v[0] for v in VALUE_SETS])
def test_strict_lint_is_clean(name, values):
    result = helm_python.lint(str(CHART), values, strict=True, namespace="bench")
    assert result["errors"] == [] and result["messages"] == [], result


@pytest.mark.parametrize("name,values", VALUE_SETS, ids=[v[0] for v in VALUE_SETS])
def test_every_rendered_object_is_valid(name, values):
    docs = render(values)
    assert docs
    for doc in docs:
        if doc["kind"] in MONITORING_KINDS:  # Prometheus Operator CRDs: not in the Kubernetes schemas
            assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["spec"]
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_crd_is_valid_and_identical_to_the_source_of_truth():
    assert (CHART / "crds" / "benchpilot.io_benchmarkruns.yaml").read_bytes() == \
        (ROOT / "crds" / "benchpilot.io_benchmarkruns.yaml").read_bytes()
    crd = yaml.safe_load((ROOT / "crds" / "benchpilot.io_benchmarkruns.yaml").read_text())
    kubernetes_validate.validate(crd, K8S_VERSION, strict=True)


def test_secure_defaults():
    docs = render(None)
    (dep,) = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["BENCHPILOT_RUNNER_IMAGE"] == "ghcr.io/benchpilot/benchpilot:0.1.0"
    assert env["BENCHPILOT_WATCH_NAMESPACE"] == ""


def test_rbac_is_least_privilege_and_scoped_by_value():
    cluster = render(None)
    role = next(d for d in by_kind(cluster, "ClusterRole") if not d["metadata"]["name"].endswith("discovery"))
    verbs = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert verbs[("", "pods")] == {"get", "list", "watch"}
    assert verbs[("", "configmaps")] == {"get", "list", "create", "patch"}
    assert "delete" not in verbs[("benchpilot.io", "benchmarkruns")]
    assert not any(r == "secrets" for _, r in verbs), "the operator never reads secrets"
    assert not any("*" in v for v in verbs.values())
    scoped = render(yaml.safe_load((CHART / "ci" / "namespaced-values.yaml").read_text()))
    (r,) = by_kind(scoped, "Role")
    (rb,) = by_kind(scoped, "RoleBinding")
    assert r["metadata"]["namespace"] == rb["metadata"]["namespace"] == "benchmarks"
    assert [d["metadata"]["name"] for d in by_kind(scoped, "ClusterRole")] == ["bp-benchpilot-operator-discovery"]
    (dep,) = by_kind(scoped, "Deployment")
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BENCHPILOT_WATCH_NAMESPACE"] == "benchmarks"


def test_monitoring_objects_carry_the_rules_and_the_dashboard():
    docs = render(yaml.safe_load((CHART / "ci" / "monitoring-values.yaml").read_text()))
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "benchpilot-rules.yaml").read_text())
    (pm,) = by_kind(docs, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "runner"
    (sm,) = by_kind(docs, "ServiceMonitor")
    (svc,) = by_kind(docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["benchpilot.json"]) == json.loads((CHART / "dashboards" / "benchpilot.json").read_text())
    assert not by_kind(render(None), "PrometheusRule"), "off by default (needs the Prometheus Operator)"


def test_notes_tell_how_to_apply_the_first_run():
    text = notes(None)
    assert "kubectl apply" in text and "quickstart.yaml" in text and "kubectl get br" in text


def test_values_schema_rejects_bad_values():
    with pytest.raises(Exception, match="(?i)resyncSeconds|schema|validation"):
        render({"operator": {"resyncSeconds": 600}})
    with pytest.raises(Exception, match="(?i)pullPolicy|schema|validation"):
        render({"image": {"pullPolicy": "Sometimes"}})


def test_values_memory_defaults_are_the_shared_constants():
    """The memory formula's defaults are defined once (benchpilot_runner.contract.sizing); the chart must agree."""
    from benchpilot_operator.config import OperatorConfig
    from benchpilot_runner.contract.sizing import BASE_MIB, HEADROOM_MIN_MIB, HEADROOM_RATIO, LIMIT_FACTOR

    runner = yaml.safe_load((CHART / "values.yaml").read_text())["runner"]
    assert (runner["baseMiB"], runner["headroomRatio"], runner["headroomMinMiB"], runner["limitFactor"]) == (
        BASE_MIB, HEADROOM_RATIO, HEADROOM_MIN_MIB, LIMIT_FACTOR)
    cfg = OperatorConfig()
    assert (cfg.memory.base_mib, cfg.memory.headroom_ratio, cfg.memory.headroom_min_mib, cfg.memory.limit_factor) == (
        BASE_MIB, HEADROOM_RATIO, HEADROOM_MIN_MIB, LIMIT_FACTOR)
