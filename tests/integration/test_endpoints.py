"""Several providers in one run: run-wide rate limits per endpoint, tokens and cost, a budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import manifest, run_cli, write_manifest

pytestmark = pytest.mark.slow
PRICE_IN, PRICE_OUT = 2.0, 8.0  # USD per million tokens; the fake server answers 50 in, 10 out


def doc_for(fake_llm, name: str, **spec) -> dict:
    doc = manifest(**spec)
    doc["metadata"]["name"] = name
    doc["spec"]["endpoints"] = [
        {"name": "slow-api", "baseURL": fake_llm.url("slow-api"), "limits": {"requestsPerMinute": 300},
         "apiKeyEnv": "KEY_SLOW"},
        {"name": "fast-api", "baseURL": fake_llm.url("fast-api"), "limits": {"requestsPerMinute": 900},
         "apiKeyEnv": "KEY_FAST"}]
    doc["spec"]["matrix"] = {
        "models": [{"name": "alpha", "endpoint": "slow-api", "model": "fixed-20",
                    "price": {"inputPerMillionTokens": PRICE_IN, "outputPerMillionTokens": PRICE_OUT}},
                   {"name": "beta", "endpoint": "fast-api", "model": "fixed-20", "params": {"max_tokens": 64},
                    "price": {"inputPerMillionTokens": PRICE_IN}},
                   {"name": "gamma", "endpoint": "fast-api", "model": "fixed-20"}],
        "promptTypes": ["baseline", "optimal"], "difficulties": ["easy"], "taskTypes": ["simple_task", "basic_task"],
        "instances": 8}  # 32 cases per model, one request each
    doc["spec"]["sharding"] = {"shards": 4, "concurrencyPerShard": 8}
    return doc


def rate(log: list, prefix: str) -> tuple[int, float]:
    times = sorted(t for t, p, _ in log if p == prefix)
    return len(times), (len(times) - 1) / (times[-1] - times[0])


def test_two_endpoints_three_models_limits_tokens_and_cost(tmp_path, fake_llm):
    env = {"KEY_SLOW": "key-slow-0123456789", "KEY_FAST": "key-fast-0123456789"}
    path = write_manifest(tmp_path / "two.yaml", doc_for(fake_llm, "two"))
    out = tmp_path / "out"
    start = len(fake_llm.fake.requests_log)
    done = run_cli("run", str(path), "--output", str(out), "--no-progress", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    log = fake_llm.fake.requests_log[start:]
    n_slow, r_slow = rate(log, "slow-api")
    n_fast, r_fast = rate(log, "fast-api")
    assert (n_slow, n_fast) == (32, 64)
    # each endpoint's limit holds for the whole run (4 shards share it), within 5 %
    assert r_slow <= 300 / 60 * 1.05, f"slow-api at {r_slow:.2f}/s"
    assert r_fast <= 900 / 60 * 1.05, f"fast-api at {r_fast:.2f}/s"
    assert r_slow >= 300 / 60 * 0.7, "and is used, not starved"
    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    by_model = {g["model"]: g for g in summary["by_model"]}
    assert by_model["alpha"]["prompt_tokens"] == 32 * 50 and by_model["alpha"]["completion_tokens"] == 32 * 10
    assert by_model["alpha"]["cost_usd"] == pytest.approx(32 * (50 * PRICE_IN + 10 * PRICE_OUT) / 1e6)
    assert by_model["beta"]["cost_usd"] == pytest.approx(32 * 50 * PRICE_IN / 1e6)
    assert by_model["gamma"]["cost_usd"] == 0 and summary["cost_usd"] == pytest.approx(
        by_model["alpha"]["cost_usd"] + by_model["beta"]["cost_usd"])
    table = run_cli("report", str(out)).stdout
    assert "cost $" in table and "tokens in" in table


def test_a_budget_stops_the_run_and_a_larger_one_resumes_only_the_rest(tmp_path, fake_llm):
    env = {"KEY_SLOW": "key-slow-0123456789", "KEY_FAST": "key-fast-0123456789"}
    per_alpha_case = (50 * PRICE_IN + 10 * PRICE_OUT) / 1e6
    small = doc_for(fake_llm, "budget", budget={"maxCostUSD": 10 * per_alpha_case})
    small["spec"]["matrix"]["models"] = small["spec"]["matrix"]["models"][:1]  # alpha only
    small["spec"]["sharding"] = {"shards": 2, "concurrencyPerShard": 2}
    out = tmp_path / "out"
    first = run_cli("run", str(write_manifest(tmp_path / "b1.yaml", small)), "--output", str(out), "--no-progress",
                    env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "budget is spent" in first.stderr and "raise the budget" in first.stderr
    summary = json.loads(run_cli("report", str(out), "--format", "json").stdout)
    ran = summary["total"]
    assert 10 <= ran <= 10 + 4, "overshoot bounded by the cases in flight"
    assert summary["cost_usd"] <= 14 * per_alpha_case + 1e-12
    big = json.loads(json.dumps(small))
    big["spec"]["budget"] = {"maxCostUSD": 100 * per_alpha_case}
    second = run_cli("run", str(write_manifest(tmp_path / "b2.yaml", big)), "--output", str(out), "--no-progress",
                     env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"{32 - ran} cases run now, {ran} were already done" in second.stderr
    assert json.loads(run_cli("report", str(out), "--format", "json").stdout)["total"] == 32


def test_endpoint_names_and_keys_are_validated(tmp_path, fake_llm):
    doc = doc_for(fake_llm, "bad")
    doc["spec"]["matrix"]["models"][0]["endpoint"] = "nowhere"
    out = run_cli("run", str(write_manifest(tmp_path / "bad.yaml", doc)), "--no-progress")
    assert out.returncode == 2 and "spec.matrix.models[0].endpoint" in out.stderr and "slow-api" in out.stderr
    doc = doc_for(fake_llm, "dup")
    doc["spec"]["endpoints"][1]["name"] = "slow-api"
    out = run_cli("run", str(write_manifest(tmp_path / "dup.yaml", doc)), "--no-progress")
    assert out.returncode == 2 and "spec.endpoints[1].name" in out.stderr and "twice" in out.stderr
    doc = doc_for(fake_llm, "nokey")
    out = run_cli("run", str(write_manifest(tmp_path / "nokey.yaml", doc)), "--no-progress",
                  env={"KEY_SLOW": "", "KEY_FAST": ""})
    assert out.returncode == 2 and "spec.endpoints[0].apiKeyEnv" in out.stderr and "KEY_SLOW" in out.stderr


def test_plan_runs_a_pilot_and_prints_the_bounds(tmp_path, fake_llm):
    env = {"KEY_SLOW": "key-slow-0123456789", "KEY_FAST": "key-fast-0123456789"}
    doc = doc_for(fake_llm, "plan")
    doc["spec"]["output"] = {"uri": str(tmp_path / "never")}
    path = write_manifest(tmp_path / "plan.yaml", doc)
    before = fake_llm.fake.requests["fixed-20"]
    out = run_cli("plan", str(path), "--pilot", "3", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr[-1500:]
    est = json.loads(out.stdout)
    assert fake_llm.fake.requests["fixed-20"] - before == 9, "3 real cases for each of the 3 models"
    alpha = est["models"]["alpha"]
    assert alpha["requests"] == 32 and alpha["promptTokens"] == 32 * 50 and alpha["completionTokens"] == 32 * 10
    assert alpha["costUSD"] == pytest.approx(32 * (50 * PRICE_IN + 10 * PRICE_OUT) / 1e6, abs=1e-4)
    # 32 requests at 300 RPM, 64 at 900 RPM: the slow endpoint bounds the run
    assert est["endpoints"]["slow-api"]["minMinutes"] == pytest.approx(32 / 300, abs=0.01)
    assert est["wallTimeLowerBoundMinutes"] == est["endpoints"]["slow-api"]["minMinutes"]
    assert not (tmp_path / "never").exists(), "a plan writes no results"
    text = run_cli("plan", str(path), env=env)
    assert text.returncode == 0 and "spec.estimate" in text.stdout and "memory request per pod" in text.stdout
