"""The real Spider dev set (972 questions, 19 SQLite databases) through the suite, answered by an
OpenAI-compatible endpoint in the shapes real models write: the gold SQL scores 100 % under every
mode, and predictions derived from the gold queries get the verdicts the official rules give them
(derived from the rules' definitions in tests/text2sql_derive.py, not from benchpilot's scorer)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchpilot_runner.suites.text2sql.sqltext import strip_ends
from tests.helpers import ROOT, run_cli, write_manifest
from tests.servers.sql_answers import SHAPES, shape_for
from tests.text2sql_derive import FAMILIES, derive, expected

pytestmark = pytest.mark.slow
SPIDER = ROOT.parent / "shared" / "data" / "spider-dev"
MODES = ("spider", "bird", "strict")


@pytest.fixture(scope="module")
def dev() -> list[dict]:
    if not (SPIDER / "dev.json").is_file():
        pytest.fail(f"the Spider dev set is not at {SPIDER} (see its README in shared/data)")
    return json.loads((SPIDER / "dev.json").read_text())


def db_path(q: dict) -> str:
    return str(SPIDER / "database" / q["db_id"] / f"{q['db_id']}.sqlite")


@pytest.fixture(scope="module")
def derived(dev) -> dict[int, tuple[str, str, dict]]:
    """One derived prediction per question: index -> (family, SQL, expected verdicts); the families
    take turns so that each one is used wherever it applies."""
    out, families = {}, [f for f in FAMILIES if f != "gold"]
    for i, q in enumerate(dev):
        for k in range(len(families)):
            family = families[(i + k) % len(families)]
            sql = derive(family, q["query"], i)
            want = expected(family, q["query"], sql, db_path(q)) if sql else None
            if want is not None:
                out[i] = (family, sql, want)
                break
    return out


def run_suite(tmp_path: Path, fake_llm, dev, tables: dict[str, dict[int, str]], **config) -> tuple[dict, dict]:
    """Every question once per table (model t2s.<table>.mixed): question_id -> row, per table; and
    the report's summary."""
    for name, sqls in tables.items():
        fake_llm.fake.sql_tables[name] = {(dev[i]["db_id"], dev[i]["question"].strip()): s for i, s in sqls.items()}
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "spider-dev"},
           "spec": {"suite": "text2sql", "suiteConfig": {"dataset": str(SPIDER), **config},
                    "endpoint": {"baseURL": fake_llm.base_url, "qps": 2000},
                    "matrix": {"models": [{"name": f"t2s/{n}", "model": f"t2s.{n}.mixed"} for n in tables],
                               "promptTypes": ["zero_shot"], "instances": 400},
                    "sharding": {"shards": 1, "concurrencyPerShard": 32},
                    "output": {"flushEveryRows": 1000, "flushEverySeconds": 5}}}
    out = tmp_path / "out"
    res = run_cli("run", str(write_manifest(tmp_path / "m.yaml", doc)), "--output", str(out), "--no-progress",
                  timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows: dict[str, dict] = {}
    for part in sorted(out.rglob("part-*.parquet")):
        for r in pq.read_table(part).to_pylist():
            d = json.loads(r["details"])
            rows.setdefault(r["model"].split("/", 1)[1], {})[d["question_id"]] = {**r, "details": d}
    report = run_cli("report", str(out), "--format", "json")
    assert report.returncode == 0, report.stderr[-2000:]
    return rows, json.loads(report.stdout)


def test_spider_dev_gold_and_derived_predictions_get_the_official_verdicts(tmp_path, fake_llm, dev, derived):
    gold = {i: q["query"] for i, q in enumerate(dev)}
    rows, summary = run_suite(tmp_path, fake_llm, dev, {"gold": gold,
                                                        "derived": {i: s for i, (_, s, _) in derived.items()}})
    assert len(rows["gold"]) == len(rows["derived"]) == len(dev) == 972, "every question once"

    # the gold SQL as the prediction: 100 % under every mode, read from every answer shape
    for i, q in enumerate(dev):
        r = rows["gold"][str(i)]
        d = r["details"]
        assert r["status"] == "success" and all(d[f"ex_{m}"] for m in MODES), (i, d)
        assert d["sql"] == strip_ends(q["query"]) and d["valid"] and not d["corrected"], \
            (i, shape_for(q["question"].strip()), d)
        assert not d["modes_disagree"] and r["turns"] == 1
    assert {shape_for(q["question"].strip()) for q in dev} == set(SHAPES), "every answer shape is served"

    # derived predictions: the verdict of each rule, family by family
    families = Counter()
    for i, (family, sql, want) in derived.items():
        d = rows["derived"][str(i)]["details"]
        assert d["sql"] == strip_ends(sql), (family, i, d["sql"], sql)
        got = {m: d[f"ex_{m}"] for m in MODES}
        assert got == want, (family, i, dev[i]["query"], sql, got, want)
        assert d["modes_disagree"] == (len(set(want.values())) > 1)
        assert (rows["derived"][str(i)]["status"] == "success") == want["spider"], "spider scoring by default"
        families[family] += 1
    assert set(families) == set(FAMILIES) - {"gold"}, families
    disagree = Counter(family for family, _, want in derived.values() if len(set(want.values())) > 1)
    assert disagree["permuted"] and disagree["empty_wider"], "the modes disagree where the rules differ"
    # the report: EX under the chosen mode (spider), each mode's, and how many cases the modes disagree on
    counts = summary["flag_counts"]
    for m in MODES:
        assert counts[f"ex_{m}"] == 972 + sum(want[m] for _, _, want in derived.values()), m
    assert counts["modes_disagree"] == sum(len(set(want.values())) > 1 for _, _, want in derived.values())
    by_model = {g["model"]: g for g in summary["by_model"]}
    assert by_model["t2s/gold"]["success_rate"] == 1.0
    assert by_model["t2s/derived"]["success_rate"] == by_model["t2s/derived"]["ex_spider_rate"]
    # a correction round only where the database refused the query
    for r in rows["derived"].values():
        assert r["details"]["corrected"] == (r["details"]["error"] is not None and r["turns"] == 2)


def test_hardness_of_spider_dev_by_the_official_rule(dev):
    """Spider's dev.json carries its official parse of each gold query ('sql'); Spider's
    eval_hardness applied to it (written out below from evaluation.py) is the level each question
    must get from its SQL text."""
    from benchpilot_runner.suites.text2sql.dataset import FolderDataset

    levels = [official_hardness(q["sql"]) for q in dev]
    ds = FolderDataset(str(SPIDER))
    assert [it.hardness for it in ds.items] == levels
    to_suite = {"easy": "simple", "medium": "moderate", "hard": "challenging", "extra": "challenging"}
    assert [it.difficulty for it in ds.items] == [to_suite[h] for h in levels]


def official_hardness(sql: dict) -> str:
    """Spider's eval_hardness over its parse (the official rule: see evaluation.py)."""
    def conds(s):
        return s["from"]["conds"][::2] + s["where"][::2] + s["having"][::2]

    def links(s):
        return s["from"]["conds"][1::2] + s["where"][1::2] + s["having"][1::2]

    comp1 = (len(sql["where"]) > 0) + (len(sql["groupBy"]) > 0) + (len(sql["orderBy"]) > 0) \
        + (sql["limit"] is not None) + max(0, len(sql["from"]["table_units"]) - 1) \
        + links(sql).count("or") + sum(1 for c in conds(sql) if c[1] == 9)  # 9: 'like' in WHERE_OPS
    comp2 = sum(isinstance(c[3], dict) + isinstance(c[4], dict) for c in conds(sql)) \
        + sum(sql[k] is not None for k in ("intersect", "except", "union"))
    order_units = [u[1] for u in sql["orderBy"][1] if u[1]] + [u[2] for u in sql["orderBy"][1] if u[2]] \
        if sql["orderBy"] else []
    aggs = sum(1 for unit in [*sql["select"][1], *sql["where"][::2], *sql["groupBy"], *order_units, *sql["having"]]
               if unit[0] != 0)  # as evaluation.py counts: a condition's first field is its NOT flag
    others = (aggs > 1) + (len(sql["select"][1]) > 1) + (len(sql["where"]) > 1) + (len(sql["groupBy"]) > 1)
    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (others > 2 and comp1 <= 2 and comp2 == 0) or (2 < comp1 <= 3 and others <= 2 and comp2 == 0) or \
            (comp1 <= 1 and others == 0 and comp2 <= 1):
        return "hard"
    return "extra"
