"""`benchpilot report --format json` against an independent computation from the Parquet rows.

Result sets are written as the runner writes them (the sink's schema, one part per shard and attempt, a
part written twice, errors retried as a later attempt), with item effects shared by every model and
prompt type (the clustering) and model × item effects. tests/stats_reference.py recomputes every
interval and p-value with pandas, statsmodels and scipy; each must match to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import stats_reference as ref
from tests.helpers import run_cli
from tests.results_builder import write_results

class Checker:
    """Compares intervals and p-values of the JSON with the reference's; counts what it compared."""

    def __init__(self):
        self.compared = 0

    def interval(self, got: dict, want: tuple, where: str) -> None:
        est, low, high = want
        for key, w in (("estimate", est), ("low", low), ("high", high)):
            assert ref.close(got[key], w), f"{where} {key}: report {got[key]!r}, reference {w!r}"
            self.compared += 1
        if low is None:
            assert got.get("note"), f"{where}: no interval and no note saying why"

    def value(self, got, want, where: str) -> None:
        assert ref.close(got, want), f"{where}: report {got!r}, reference {want!r}"
        self.compared += 1


def check_groups(summary: dict, df, check: Checker, several: bool) -> None:
    final = df[df["status"].isin(ref.FINAL)]
    lead = ["uid"] if several else []
    for key, by in (("by_model_prompt_type", [*lead, "model", "prompt_type"]),
                    ("by_task_type", [*lead, "model", "task_type"]), ("by_model", [*lead, "model"])):
        got = {tuple(g[k] for k in by): g for g in summary[key]}
        assert len(got) == df.groupby(by).ngroups
        for name, rows in final.groupby(by):
            g, where = got[name], f"{key} {name}"
            items = rows[ref.ITEM].to_numpy()
            check.interval(g["success"], ref.rate_ci(rows["status"] == "success", items), f"{where} success")
            check.interval(g["partial"], ref.rate_ci(rows["status"] == "partial", items), f"{where} partial")
            check.interval(g["score"], ref.mean_ci(rows["score"], items), f"{where} score")
            for flag, j in g["flags"].items():
                flags = rows["details"].map(lambda t: bool(t) and json.loads(t).get(flag) is True)
                check.interval(j, ref.rate_ci(flags, items), f"{where} {flag}")
            assert g["final"] == len(rows) and g["success"]["clusters"] == len(rows[ref.ITEM].drop_duplicates())
            wins = int((rows["status"] == "success").sum())
            all_rows = df.set_index(by).loc[[name]] if len(by) > 1 else df[df[by[0]] == name[0]]
            check.value(g["cost_per_success"], all_rows["cost_usd"].sum() / wins if wins else None, f"{where} $/win")
        for name, rows in df.groupby(by):
            check.interval(got[name]["latency_s"], ref.mean_ci(rows["latency_s"], rows[ref.ITEM].to_numpy(), None),
                           f"{key} {name} latency")
            assert got[name]["max_attempt"] == rows["attempt"].max() and got[name]["cases"] == len(rows)
            assert got[name]["counts"] == {s: int((rows["status"] == s).sum()) for s in got[name]["counts"]}


def _pair(check: Checker, row: dict, merged, cluster_cols: list[str], where: str) -> tuple[float | None, float | None]:
    a, b = merged["ok_a"].to_numpy(float), merged["ok_b"].to_numpy(float)
    items = merged[cluster_cols].to_numpy()
    assert row["pairs"] == len(merged), where
    check.interval(row["success_diff"], ref.mean_ci(a - b, items, (-1, 1)), f"{where} success diff")
    check.interval(row["score_diff"], ref.mean_ci(merged["score_a"] - merged["score_b"], items, (-1, 1)),
                   f"{where} score diff")
    check.value(row["p_exact"], ref.mcnemar_exact(a, b), f"{where} exact McNemar")
    clustered = len(merged[cluster_cols].drop_duplicates()) < len(merged)
    want_c = ref.mcnemar_clustered(a, b, items) if clustered else None
    check.value(row["p_clustered"], want_c, f"{where} clustered McNemar")
    check.value(row["score_p"], ref.paired_p(merged["score_a"] - merged["score_b"], items), f"{where} score p")
    return (want_c if clustered else ref.mcnemar_exact(a, b)), ref.paired_p(merged["score_a"] - merged["score_b"], items)


def _holm(check: Checker, rows: list[dict], ps: list, score_ps: list, where: str) -> None:
    for r, want in zip(rows, ref.holm(ps)):
        check.value(r["p_holm"], want, f"{where} Holm")
        assert r["significant"] == (want is not None and want < 0.05)
    for r, want in zip(rows, ref.holm(score_ps)):
        check.value(r["score_p_holm"], want, f"{where} score Holm")


def check_comparisons(summary: dict, df, check: Checker) -> None:
    final = df[df["status"].isin(ref.FINAL)].assign(ok=lambda x: (x["status"] == "success").astype(float))
    for block in summary["comparisons"]:
        mine = final[final["uid"] == block["uid"]]
        rates = mine.groupby("model")["ok"].mean()
        assert [r["model"] for r in block["ranking"]] == sorted(rates.index, key=lambda m: (-rates[m], m))
        ps, score_ps = [], []
        for row in block["pairs"]:
            merged = mine[mine["model"] == row["a"]].merge(mine[mine["model"] == row["b"]],
                                                          on=["prompt_type", *ref.ITEM], suffixes=("_a", "_b"))
            p, sp = _pair(check, row, merged, ref.ITEM, f"{row['a']} vs {row['b']}")
            ps.append(p)
            score_ps.append(sp)
        _holm(check, block["pairs"], ps, score_ps, "models")


def check_robustness(summary: dict, df, check: Checker, reference: str) -> None:
    final = df[df["status"].isin(ref.FINAL)].assign(ok=lambda x: (x["status"] == "success").astype(float))
    for block in summary["robustness"]:
        assert block["reference"] == reference and block["rows"]
        mine = final[final["uid"] == block["uid"]]
        ps, score_ps = [], []
        for row in block["rows"]:
            a, b = mine[mine["prompt_type"] == row["prompt_type"]], mine[mine["prompt_type"] == reference]
            if not row["pooled"]:
                a, b = a[a["model"] == row["model"]], b[b["model"] == row["model"]]
            merged = a.merge(b, on=["model", *ref.ITEM], suffixes=("_a", "_b"))
            p, sp = _pair(check, row, merged, ref.ITEM, f"robustness {row['model']} {row['prompt_type']}")
            ps.append(p)
            score_ps.append(sp)
        _holm(check, block["rows"], ps, score_ps, "robustness")
        expected = {(m, p) for m in [*mine["model"].unique(), None] for p in mine["prompt_type"].unique()
                    if p != reference}
        assert {(r["model"], r["prompt_type"]) for r in block["rows"]} == expected


def report_json(root: Path, *args: str) -> dict:
    done = run_cli("report", str(root), "--format", "json", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("seed", [1, 2])
def test_every_interval_and_p_value_matches_statsmodels_and_scipy(tmp_path, seed):
    write_results(tmp_path, seed=seed)
    summary = report_json(tmp_path)
    df = ref.read_rows(tmp_path)
    assert summary["total"] == len(df) and summary["final"] == int(df["status"].isin(ref.FINAL).sum())
    assert summary["retryable"] > 0 and summary["duplicate_rows_dropped"] > 0  # the data exercise both
    check = Checker()
    check_groups(summary, df, check, several=False)
    check_comparisons(summary, df, check)
    check_robustness(summary, df, check, "optimal")
    assert check.compared > 350, check.compared


def test_text2sql_flags_and_its_reference_prompt_type(tmp_path):
    write_results(tmp_path, suite="text2sql", prompts=("zero_shot", "few_shot", "misleading_column_hint"),
                  models=("m-x", "m-y"), instances=5, seed=3, with_valid=True)
    summary = report_json(tmp_path)
    df = ref.read_rows(tmp_path)
    assert "valid" in summary["flags"]  # the suite's summary_fields, read from details
    check = Checker()
    check_groups(summary, df, check, several=False)
    check_comparisons(summary, df, check)
    check_robustness(summary, df, check, "zero_shot")
    assert check.compared > 300, check.compared


def test_result_sets_are_compared_each_on_their_own(tmp_path):
    write_results(tmp_path, uid="uid-a", seed=4, instances=4)
    write_results(tmp_path, uid="uid-b", seed=5, instances=3, models=("m-a", "m-b"))
    summary = report_json(tmp_path, "--reference", "baseline")
    df = ref.read_rows(tmp_path)
    assert summary["warning"] and {b["uid"] for b in summary["comparisons"]} == {"uid-a", "uid-b"}
    check = Checker()
    check_groups(summary, df, check, several=True)
    check_comparisons(summary, df, check)
    check_robustness(summary, df, check, "baseline")
    assert check.compared > 600, check.compared
