"""Readers take one row per case: a final outcome if there is one, else the latest attempt."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from benchpilot_runner import report as R

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def table(rows):
    cols = ("namespace", "run", "uid", "case_id", "status", "attempt", "finished_at")
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}).set_column(
        5, "attempt", pa.array([r[5] for r in rows], pa.int32()))


def test_final_beats_a_later_error_and_the_latest_attempt_wins_among_errors():
    t = table([
        ("d", "r", "u", "a", "success", 1, T0),
        ("d", "r", "u", "a", "error", 2, T0 + dt.timedelta(1)),  # a second writer's retry: not final
        ("d", "r", "u", "b", "error", 1, T0),
        ("d", "r", "u", "b", "timeout", 2, T0),
        ("d", "r", "u", "c", "failure", 1, T0),
        ("d", "r", "u", "c", "failure", 1, T0 + dt.timedelta(1)),  # the same part written twice
        ("d", "r", "v", "a", "error", 1, T0),  # another result set: never merged with u
    ])
    kept = R.dedupe(t).to_pylist()
    got = {(r["uid"], r["case_id"]): (r["status"], r["attempt"], r["finished_at"]) for r in kept}
    assert got == {("u", "a"): ("success", 1, T0), ("u", "b"): ("timeout", 2, T0),
                   ("u", "c"): ("failure", 1, T0 + dt.timedelta(1)), ("v", "a"): ("error", 1, T0)}
    assert sorted(R.losers_of(t, R.winners(t)).to_pylist()) == [1, 2, 4]


# --- what a user of `benchpilot report` sees (real parts on disk, the real CLI) ---

import json  # noqa: E402
import re  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402

from benchpilot_runner.results.rows import SCHEMA  # noqa: E402
from tests.helpers import run_cli  # noqa: E402
from tests.results_builder import T0 as B0, _row, write_results  # noqa: E402


def _report(root, *args):
    done = run_cli("report", str(root), *args)
    return done, (json.loads(done.stdout) if "--format" in args and done.returncode == 0 else None)


def test_a_group_of_one_case_or_no_pairs_says_n_too_small(tmp_path):
    rows = [{"model": m, "prompt_type": p, "difficulty": "easy", "task_type": "t", "instance": i, "status": s,
             "score": 1.0 if s == "success" else 0.0, "latency_s": 0.1, "valid": True, "case_id": f"{m}{p}{i}"}
            for m, p, i, s in (("solo", "optimal", 0, "success"), ("a", "optimal", 0, "success"),
                               ("a", "optimal", 1, "failure"), ("a", "baseline", 5, "success"),
                               ("a", "baseline", 6, "failure"))]
    shard = tmp_path / "default" / "r" / "u" / "shard-00000"
    shard.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([_row(r, "r", "workflow", 1, False) for r in rows], schema=SCHEMA),
                   shard / "part-00001-00000-w.parquet")
    done, summary = _report(tmp_path, "--format", "json")
    assert done.returncode == 0, done.stderr
    solo = next(g for g in summary["by_model"] if g["model"] == "solo")
    assert solo["success"]["low"] is None and solo["success"]["note"] == "n too small"
    pair = next(p for p in summary["comparisons"][0]["pairs"] if {p["a"], p["b"]} == {"a", "solo"})
    assert pair["pairs"] == 1 and pair["success_diff"]["low"] is None and not pair["significant"]
    unpaired = next(r for r in summary["robustness"][0]["rows"] if r["model"] == "a")  # baseline items 5, 6
    assert unpaired["pairs"] == 0 and unpaired["success_diff"]["note"] == "no pairs" and unpaired["p"] is None
    table = run_cli("report", str(tmp_path)).stdout
    assert "n too small" in table and "[0, 0]" not in table


def test_a_reference_prompt_type_not_in_the_results_is_one_line_and_exit_2(tmp_path):
    write_results(tmp_path, instances=2)
    done, _ = _report(tmp_path, "--reference", "zero_shot", "--format", "json")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "--reference" in done.stderr and "'zero_shot'" in done.stderr
    assert "baseline, flawed_x, optimal" in done.stderr  # what is allowed
    done, summary = _report(tmp_path, "--reference", "baseline", "--format", "json")
    assert done.returncode == 0 and summary["robustness"][0]["reference"] == "baseline"


def test_without_the_suites_reference_the_robustness_table_says_why(tmp_path):
    write_results(tmp_path, instances=2, prompts=("baseline", "cot"))
    _, summary = _report(tmp_path, "--format", "json")
    block = summary["robustness"][0]
    assert block["rows"] == [] and "'optimal' is not in this result set" in block["note"]
    assert "is not in this result set" in run_cli("report", str(tmp_path)).stdout


def test_the_terminal_report_shows_intervals_and_which_differences_are_significant(tmp_path):
    write_results(tmp_path, instances=8, seed=2)
    out = run_cli("report", str(tmp_path)).stdout
    assert re.search(r"\d+ % \[\d+, \d+\]", out), out[:2000]  # 73 % [52, 88]
    assert "Models compared on the same cases" in out and "Robustness" in out and "statistically tied" in out
    assert "cannot be told from noise" in out and "cost $" in out and "tokens in" in out


def test_the_case_list_is_bounded_and_spread_over_the_kinds_of_failure(tmp_path):
    write_results(tmp_path, instances=6, seed=3, suite="text2sql", prompts=("zero_shot", "cot"), with_valid=True)
    _, summary = _report(tmp_path, "--format", "json", "--max-cases", "25")
    cases = summary["cases"]
    assert cases["non_success"] == sum(b["cases"] for b in cases["buckets"]) > 25 == cases["listed"]
    kinds = {(c["model"], c["prompt_type"], c["task_type"], c["status"], c["error_type"]) for c in cases["list"]}
    assert len(kinds) == min(25, len(cases["buckets"]))  # one of each kind before a second of any
    listed = cases["list"][0]
    assert listed["case_id"] and listed["details"]["sql"].startswith("SELECT") and listed["status"] != "success"
    errors = [c for c in cases["list"] if c["status"] in ("error", "timeout")]
    assert errors and all(c["error_message"] == "connection refused" for c in errors)
    none = json.loads(run_cli("report", str(tmp_path), "--format", "json", "--max-cases", "0").stdout)["cases"]
    assert none["list"] == [] and none["buckets"] == cases["buckets"]


def test_the_html_report_is_one_file_with_nothing_fetched(tmp_path):
    write_results(tmp_path, instances=4, seed=5, suite="text2sql", prompts=("zero_shot", "few_shot"),
                  with_valid=True)
    page = tmp_path / "report.html"
    done = run_cli("report", str(tmp_path), "--html", str(page))
    assert done.returncode == 0 and f"report written to {page}" in done.stderr
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<style>" in text and "<script>" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text), "nothing may be fetched"
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "Robustness" in text and "Pairwise matrix" in text and "Cost against quality" in text
    assert "SELECT" in text and "exec acc" in text  # the case details, and text2sql's name for success
    bad = run_cli("report", str(tmp_path), "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert bad.returncode == 2 and "--html" in bad.stderr and bad.stderr.count("\n") == 1


def test_an_empty_root_and_a_reference_without_outcomes_are_reported_not_crashed(tmp_path):
    (tmp_path / "empty").mkdir()
    done, summary = _report(tmp_path / "empty", "--format", "json", "--html", str(tmp_path / "e.html"))
    assert done.returncode == 0 and summary["total"] == 0 and summary["comparisons"] == []
    assert (tmp_path / "e.html").read_text().startswith("<!DOCTYPE html>")
    rows = [{"model": "m", "prompt_type": p, "difficulty": "easy", "task_type": "t", "instance": i,
             "status": "success", "score": 1.0, "latency_s": 0.1, "valid": True, "case_id": f"{p}{i}"}
            for p in ("optimal", "baseline") for i in range(3)]
    shard = tmp_path / "r" / "default" / "r" / "u" / "shard-00000"
    shard.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([_row(r, "r", "workflow", 1, False, status="timeout" if
                                              r["prompt_type"] == "optimal" else None) for r in rows],
                                        schema=SCHEMA), shard / "part-00001-00000-w.parquet")
    _, summary = _report(tmp_path / "r", "--format", "json")
    assert "'optimal' has no case with a final outcome" in summary["robustness"][0]["note"]


def test_numbers_are_printed_so_that_no_interval_looks_zero_wide():
    from benchpilot_runner.report import fmt

    assert fmt.rate({"estimate": 0.73, "low": 0.52, "high": 0.88}) == "73 % [52, 88]"
    assert fmt.rate({"estimate": 0.7731, "low": 0.7712, "high": 0.7750}) == "77.3 % [77.1, 77.5]"
    assert fmt.diff({"estimate": 0.001, "low": -0.004, "high": 0.005}, False) == "+0.1 [−0.4, +0.5]"
    assert fmt.diff({"estimate": -0.27, "low": -0.52, "high": -0.01}, True) == "−27 [−52, −1] *"
    assert fmt.mean({"estimate": 0.5, "low": 0.4991, "high": 0.5009}) == "0.500 [0.499, 0.501]"
    assert fmt.rate({"estimate": 1.0, "low": None, "high": None, "note": "n too small"}) == "100 % (n too small)"


def test_the_pareto_front_keeps_what_nothing_beats_on_both_cost_and_success():
    from benchpilot_runner.report.cost import pareto

    points = [(1.0, 0.5), (2.0, 0.7), (2.0, 0.6), (3.0, 0.7), (0.5, 0.2), (1.0, 0.5)]
    assert pareto(points) == [True, True, False, False, True, True]  # equal points do not beat each other
