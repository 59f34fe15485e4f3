"""Estimates before launch: requests, tokens, cost and the wall time the limits imply."""

from __future__ import annotations

import pytest

from benchpilot_runner.contract import estimate as E
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.contract.types import RunSpec
from tests.helpers import manifest


def spec(**over) -> RunSpec:
    doc = manifest(endpoints=[{"name": "api", "baseURL": "http://a/v1",
                               "limits": {"requestsPerMinute": 500, "tokensPerMinute": 1_000_000}}],
                   estimate={"expectedTokensPerCase": 2000, "expectedRequestsPerCase": 4}, **over)
    doc["spec"]["matrix"] = {"models": [{"name": "m", "endpoint": "api",
                                         "price": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 4}},
                                        "sim/weak"],
                             "promptTypes": ["baseline"], "taskTypes": ["simple_task"], "instances": 10000}
    return parse_manifest(doc)


def test_the_limits_bound_the_wall_time():
    s = spec()
    est = E.estimate(s, E.from_spec(s), source="spec.estimate")
    m = est["models"]["m"]
    assert m["cases"] == 10000 and m["requests"] == 40000 and m["promptTokens"] == 18_000_000
    assert m["costUSD"] == pytest.approx(18 * 1 + 2 * 4)
    assert est["models"]["sim/weak"]["requests"] == 0 and est["costUSD"] == pytest.approx(26)
    # 40,000 requests at 500 RPM take at least 80 minutes; 20 M tokens at 1 M TPM only 20
    assert est["endpoints"]["api"]["minMinutes"] == 80 and est["wallTimeLowerBoundMinutes"] == 80
    assert "80.0 min" in E.render(est)


def test_budget_warning_and_no_inputs():
    s = spec(budget={"maxCostUSD": 5})
    assert "above budget" in E.estimate(s, E.from_spec(s), source="x")["warning"]
    bare = parse_manifest(manifest())
    est = E.estimate(bare, E.from_spec(bare), source="spec.estimate")
    assert "note" in est and est["cases"] == bare.total_cases and est["memoryPerPodMiB"] > 0
