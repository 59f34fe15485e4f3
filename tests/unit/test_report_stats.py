"""`benchpilot report --format json` against an independent computation from the Parquet rows.

Result sets are written as the runner writes them (the sink's schema, one part per shard and attempt, a
part written twice, errors retried as a later attempt), with item effects shared by every model and
prompt type (the clustering) and model × item effects. tests/stats_reference.py recomputes every
interval and p-value with pandas, statsmodels and scipy; each must match to 1e-9.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchpilot_runner.sink import SCHEMA
from tests import stats_reference as ref
from tests.helpers import run_cli

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def write_results(root: Path, *, uid="uid-1", run="r", suite="workflow", models=("m-a", "m-b", "m-c"),
                  prompts=("optimal", "baseline", "flawed_x"), difficulties=("easy", "hard"),
                  tasks=("t1", "t2", "t3"), instances=6, seed=1, errors=0.06, with_valid=False) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    skill = {m: rng.normal(0, 1) for m in models}
    effect = {p: rng.normal(0, 0.6) for p in prompts}
    for d in difficulties:
        for t in tasks:
            for i in range(instances):
                u = rng.normal(0, 1.3)
                for m in models:
                    w = rng.normal(0, 0.8)
                    for p in prompts:
                        x = skill[m] + effect[p] + u + w + rng.normal(0, 0.7)
                        status = "success" if x > 0.3 else ("partial" if x > -0.4 else "failure")
                        score = 1.0 if status == "success" else float(np.clip(0.5 + x / 2, 0, 0.95))
                        rows.append({"model": m, "prompt_type": p, "difficulty": d, "task_type": t, "instance": i,
                                     "status": status, "score": score, "latency_s": float(rng.gamma(2, 0.3)),
                                     "valid": bool(rng.random() < 0.8)})
    for k, r in enumerate(rows):
        r["case_id"] = f"{uid}-{k:06d}"
    finals = pa.Table.from_pylist([_row(r, run, suite, 1, with_valid) for r in rows], schema=SCHEMA)
    errors_at = rng.random(len(rows)) < errors
    first = [(_row(r, run, suite, 1, with_valid, status=("error" if k % 2 else "timeout")) if e else
              _row(r, run, suite, 1, with_valid)) for k, (r, e) in enumerate(zip(rows, errors_at))]
    retried = [_row(r, run, suite, 2, with_valid) for k, (r, e) in enumerate(zip(rows, errors_at)) if e and k % 3]
    shard = root / "default" / run / uid / "shard-00000"
    shard.mkdir(parents=True)
    table = pa.Table.from_pylist(first, schema=SCHEMA)
    pq.write_table(table, shard / "part-00001-00000-w1.parquet")
    pq.write_table(table.slice(0, 40), shard / "part-00001-00001-w2.parquet")  # written twice by another writer
    if retried:
        pq.write_table(pa.Table.from_pylist(retried, schema=SCHEMA), shard / "part-00002-00000-w1.parquet")
    assert finals.num_rows == len(rows)


def _row(r: dict, run: str, suite: str, attempt: int, with_valid: bool, status: str | None = None) -> dict:
    final = status is None
    details = {"valid": r["valid"]} if with_valid else None
    return {"run": run, "namespace": "default", "case_id": r["case_id"], "suite": suite, "model": r["model"],
            "prompt_type": r["prompt_type"], "difficulty": r["difficulty"], "task_type": r["task_type"],
            "instance": r["instance"], "shard": 0, "attempt": attempt, "status": r["status"] if final else status,
            "score": r["score"] if final else 0.0, "error_type": None if final else "ConnectionError",
            "error_message": None if final else "connection refused", "latency_s": r["latency_s"],
            "turns": 3, "tool_calls": 2, "prompt_tokens": 400 + r["instance"], "completion_tokens": 40,
            "cost_usd": 0.001 * (1 + len(r["model"]) % 3), "started_at": T0, "finished_at": T0 + dt.timedelta(attempt),
            "details": json.dumps(details, sort_keys=True) if details else None}


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
