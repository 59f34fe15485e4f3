"""Alerts with promtool; the dashboard by structure and by running every panel's query against
Debian's real Prometheus, scraping a real local sweep's runner and the real operator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import kmock
import pytest
import yaml

from tests.helpers import BENCHPILOT, ROOT, manifest, write_manifest
from tests.helpers import eventually
from tests.operator.cluster import Cluster, register
from tests.servers.s3 import free_port

CHART = ROOT / "charts" / "benchpilot"
RULES = CHART / "files" / "benchpilot-rules.yaml"
DASHBOARD = json.loads((CHART / "dashboards" / "benchpilot.json").read_text())
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(not (PROMTOOL and PROMETHEUS) and not os.environ.get("CI"),
                                      reason="Debian's prometheus is not installed (make test installs it)")


@needs_prometheus
def test_rules_pass_promtool_check_and_unit_tests():
    check = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0 and "4 rules found" in check.stdout, check.stdout + check.stderr
    unit = subprocess.run([PROMTOOL, "test", "rules", "benchpilot-rules.test.yaml"], cwd=RULES.parent,
                          capture_output=True, text=True)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def test_dashboard_structure():
    panels = DASHBOARD["panels"]
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["schemaVersion"] >= 36
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for p in panels:
        assert p["title"] and p["type"] in ("stat", "bargauge", "timeseries", "table")
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"]
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']} overlaps another"
                cells.add((x, y))
        assert all(t["expr"] and t["refId"] for t in p["targets"])
    titles = " | ".join(p["title"] for p in panels).lower()
    for topic in ("runs by phase", "progress per run", "cases per second per model", "success rate",
                  "latency", "by code", "retries by reason", "memory against request"):
        assert topic in titles, topic


def prom_query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@needs_prometheus
@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_every_panel_query_returns_series_from_a_real_run(tmp_path, fake_llm):
    op_port, runner_port, prom_port, live_port = free_port(), free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []
    async with kmock.KubernetesEmulator() as k, kmock.Server(k) as srv:
        register(k)
        cluster = Cluster(k, str(srv.url))
        try:
            # the operator, with one run whose shard gets OOMKilled (so retries have a series)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "benchpilot_operator"], cwd=ROOT,
                env={**os.environ, "BENCHPILOT_API_SERVER": str(srv.url), "BENCHPILOT_METRICS_PORT": str(op_port),
                     "BENCHPILOT_LIVENESS_PORT": str(live_port), "BENCHPILOT_RESYNC_SECONDS": "0.5"}))
            run = manifest(sharding={"shards": 2})
            run["metadata"] = {"name": "watched", "namespace": "mon"}
            await cluster.apply_run(run)
            jobs = await eventually(lambda: _jobs(cluster, 2), timeout=30, what="operator created jobs")
            pod = await cluster.start_pod(jobs[0])
            await cluster.oom_kill(jobs[0], pod)
            await eventually(lambda: _retried(cluster), timeout=30, what="OOM retry recorded")
            with urllib.request.urlopen(f"http://127.0.0.1:{live_port}/healthz", timeout=5) as r:
                assert r.status == 200, "the operator's liveness endpoint"

            # a real local sweep with simulated and endpoint models, serving /metrics
            doc = manifest(sharding={"shards": 2, "concurrencyPerShard": 2},
                           simulation={"sim/mon": {"accuracy": 0.8, "latencySeconds": 0.2}},
                           endpoint={"baseURL": fake_llm.base_url, "qps": 100})
            doc["metadata"]["name"] = "mon-sweep"
            priced = {"name": "openai/slow-200", "endpoint": "default", "model": "slow-200",
                      "price": {"inputPerMillionTokens": 1.0, "outputPerMillionTokens": 2.0}}
            doc["spec"]["matrix"].update(models=["sim/mon", priced], instances=4,
                                         promptTypes=["baseline", "optimal", "cot", "flawed_missing_step"],
                                         taskTypes=["simple_task", "basic_task", "data_pipeline", "api_integration"])
            path = write_manifest(tmp_path / "sweep.yaml", doc)
            procs.append(subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(tmp_path / "out"),
                                           "--metrics-port", str(runner_port), "--no-progress"], cwd=ROOT,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

            config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                      "rule_files": [str(RULES)],
                      "scrape_configs": [
                          {"job_name": "benchpilot-operator", "static_configs": [{"targets": [f"127.0.0.1:{op_port}"]}]},
                          {"job_name": "benchpilot-runners", "static_configs": [{"targets": [f"127.0.0.1:{runner_port}"]}]}]}
            cfg = tmp_path / "prometheus.yml"
            cfg.write_text(yaml.safe_dump(config))
            data = Path(tempfile.mkdtemp(prefix="prom-", dir=tmp_path))
            procs.append(subprocess.Popen(
                [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

            async def scraped():
                try:
                    ok = prom_query(prom_port, 'count(up{job=~"benchpilot-.*"} == 1) == 2')
                    cases = prom_query(prom_port, "sum(benchpilot_cases_total)")
                    llm = prom_query(prom_port, 'sum(rate(benchpilot_llm_requests_total[2m]))')
                except OSError:
                    return False
                return ok and cases and float(cases[0]["value"][1]) >= 10 and llm and float(llm[0]["value"][1]) > 0
            await eventually(scraped, timeout=90, interval=0.5, what="Prometheus scraping both targets")
            assert procs[1].poll() is None, "the sweep should still be running while panels are queried"
            empty = []
            for panel in DASHBOARD["panels"]:
                for target in panel["targets"]:
                    if not prom_query(prom_port, target["expr"]):
                        empty.append(f"{panel['title']}: {target['expr']}")
            assert empty == [], "panel queries with no series:\n" + "\n".join(empty)
            assert prom_query(prom_port, 'ALERTS{alertname="BenchpilotOperatorDown"}') == []
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            await cluster.close()


async def _jobs(cluster: Cluster, n: int):
    jobs = await cluster.jobs("mon", "watched")
    return jobs if len(jobs) >= n else None


async def _retried(cluster: Cluster):
    st = (await cluster.run("mon", "watched")).get("status") or {}
    return (st.get("shardRetries") or {}).get("0", {}).get("oomKilled") == 1
