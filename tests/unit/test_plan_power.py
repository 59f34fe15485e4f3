"""`benchpilot plan`: what difference in success rate the matrix can detect, before anything runs."""

from __future__ import annotations

import json
import math

from benchpilot_runner.contract import estimate as E
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.stats import power as P
from tests.helpers import EXAMPLES, manifest, run_cli, write_manifest


def test_the_detectable_difference_follows_the_items_each_comparison_pairs():
    doc = manifest()
    doc["spec"]["matrix"].update(difficulties=["easy", "hard"], taskTypes=["simple_task", "basic_task"], instances=10)
    pw = E.power(parse_manifest(doc), detect=0.1)
    assert pw["pairsPerComparison"] == 2 * 2 * 10
    assert pw["detectableDifference"] == P.detectable_difference(40)
    assert 0.2 < pw["detectableDifference"] < 0.5 and pw["pooledDetectableDifference"] < pw["detectableDifference"]
    need = P.pairs_needed(0.1)
    assert pw["detect"] == {"difference": 0.1, "pairsNeeded": need, "instancesPerCell": math.ceil(need / 4),
                            "cases": math.ceil(need / 4) * 4 * 2 * 2}
    assert P.power(pw["detect"]["instancesPerCell"] * 4, 0.1) >= 0.8  # enough instances for 80 % power
    more = E.power(parse_manifest(doc), discordance=0.2)["detectableDifference"]
    assert more < pw["detectableDifference"]  # arms that disagree less are told apart sooner


def test_plan_prints_it_and_refuses_a_difference_the_discordance_cannot_allow(tmp_path):
    done = run_cli("plan", str(EXAMPLES / "quickstart.yaml"), "--detect", "0.05")
    assert done.returncode == 0, done.stderr
    assert "smallest detectable difference in success rate 0.487" in done.stdout  # 15 items per cell
    assert "to detect 0.05: 1606 items per comparison = 322 instances per cell" in done.stdout
    js = json.loads(run_cli("plan", str(EXAMPLES / "quickstart.yaml"), "--format", "json").stdout)
    assert js["power"]["pairsPerComparison"] == 15 and "detect" not in js["power"]
    for args, flag in ((["--detect", "0.7"], "--detect"), (["--discordance", "0"], "--discordance"),
                       (["--detect", "nan"], "--detect")):
        bad = run_cli("plan", str(EXAMPLES / "quickstart.yaml"), *args)
        assert bad.returncode == 2 and flag in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
    tiny = manifest()
    tiny["spec"]["matrix"].update(taskTypes=["simple_task"], instances=3)
    out = run_cli("plan", str(write_manifest(tmp_path / "m.yaml", tiny))).stdout
    assert "none (too few items)" in out
