"""The text2sql suite's pure parts and its local I/O: data, SQL limits, scoring, prompts, simulated models."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from benchpilot_runner.contract.cases import iter_cases
from benchpilot_runner.contract.fields import SpecError
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.cases import CaseProgress, CaseRunner
from benchpilot_runner.suites.base import Retrieval
from benchpilot_runner.suites.text2sql import builtin, builtin_db, dataset as D, prompts, scoring, vocab
from benchpilot_runner.suites.text2sql.pipeline import Text2SqlRunner, vote
from benchpilot_runner.suites.text2sql.sim import invalid_query, wrong_query
from benchpilot_runner.suites.text2sql.sqlexec import ExecResult, SqlRunner


@pytest.fixture(scope="module")
def dbs(tmp_path_factory) -> dict[str, Path]:
    return builtin_db.ensure_databases(tmp_path_factory.mktemp("t2s"))


@pytest.fixture(scope="module")
def conns(dbs):
    return {k: sqlite3.connect(v) for k, v in dbs.items()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def t2s_manifest(**matrix) -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "t2s"},
            "spec": {"suite": "text2sql", "matrix": {"models": ["sim/strong"], "promptTypes": ["zero_shot"], **matrix}}}


# ----------------------------------------------------------------------------- built-in data


def test_databases_are_seeded_with_foreign_keys_and_realistic_sizes(dbs, tmp_path):
    assert len(dbs) == 5
    again = builtin_db.ensure_databases(tmp_path)
    for db_id, path in dbs.items():
        conn = sqlite3.connect(path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert 4 <= len(tables) <= 12, db_id
        fks = sum(len(conn.execute(f"PRAGMA foreign_key_list({t})").fetchall()) for t in tables)
        assert fks >= len(tables) - 2, f"{db_id}: tables are linked by foreign keys"
        dump = "\n".join(conn.iterdump())
        other = "\n".join(sqlite3.connect(again[db_id]).iterdump())
        assert dump == other, f"{db_id}: the same content on every machine"


def test_questions_are_deterministic_distinct_and_their_gold_sql_runs(dbs, conns):
    runner = SqlRunner()
    sqls, empty = set(), 0
    for shape in vocab.TASK_TYPES:
        for diff in vocab.DIFFICULTIES:
            for i in range(30):
                q = builtin.make_question(shape, diff, i, conns)
                assert q == builtin.make_question(shape, diff, i, conns)
                assert q.db_id == builtin_db.DATABASES[i % 5].db_id
                res = runner.run_sync(str(dbs[q.db_id]), q.sql)
                assert res.ok, (q.question_id, q.sql, res)
                assert D.classify(q.sql) == shape, (q.question_id, q.sql)
                empty += not res.rows
                sqls.add(q.sql)
    assert len(sqls) >= 300, "a few hundred distinct questions"
    assert empty < 0.05 * 450, "gold answers are rarely empty"


def test_misleading_hints_name_a_wrong_column_or_join(conns):
    q = builtin.make_question("join", "simple", 0, conns)
    col_text, col_sql = q.hints["misleading_column_hint"]
    join_text, join_sql = q.hints["misleading_join_hint"]
    assert col_text.startswith("Hint:") and col_sql != q.sql
    assert ".id = " in join_text and join_sql != q.sql


# ----------------------------------------------------------------------------- SQL limits


def test_the_models_sql_never_writes(dbs, tmp_path):
    path = dbs["retail"]
    before = sha(path)
    runner = SqlRunner()
    for sql in ("DELETE FROM customers", "DROP TABLE orders", "UPDATE products SET unit_price = 0",
                "INSERT INTO suppliers (id) VALUES (999)", "CREATE TABLE x (a)",
                f"ATTACH DATABASE '{tmp_path / 'evil.sqlite'}' AS evil", "PRAGMA journal_mode = WAL",
                "SELECT 1; DELETE FROM customers", "VACUUM", "REINDEX", "-- only a comment", "",
                "/* c */ (DELETE FROM customers)", "ANALYZE"):
        res = runner.run_sync(str(path), sql)
        assert not res.ok and res.error, sql
    assert sha(path) == before
    assert not (tmp_path / "evil.sqlite").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no journal, WAL or lock file"


def test_hanging_and_huge_queries_are_cut_by_the_limits(dbs):
    runner = SqlRunner(timeout_s=0.3, row_limit=500)
    t0 = time.monotonic()
    hang = runner.run_sync(str(dbs["retail"]),
                           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
    assert hang.cut == "time_limit" and time.monotonic() - t0 < 2
    huge = runner.run_sync(str(dbs["retail"]), "SELECT * FROM order_items a, order_items b")
    assert huge.cut == "row_limit" and huge.rows == ()
    blob = runner.run_sync(str(dbs["retail"]), "SELECT randomblob(100000000)")
    assert blob.error and not blob.ok
    # under the row cap, but 300 values of 900 KB: 270 MB if it were kept
    wide = runner.run_sync(str(dbs["retail"]),
                           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300) "
                           "SELECT x, zeroblob(900000) FROM c")
    assert wide.cut == "size_limit" and wide.rows == ()
    fits = runner.run_sync(str(dbs["retail"]),
                           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) "
                           "SELECT x, printf('%.*c', 900000, 'y') FROM c")
    assert fits.ok and len(fits.rows) == 10 and len(fits.rows[0][1]) == 900000, "10 large values fit"
    ok = runner.run_sync(str(dbs["retail"]), "SELECT count(*) FROM customers")
    assert ok.ok and ok.rows == ((80,),)


# ----------------------------------------------------------------------------- scoring, prompts, voting


def r(rows, cols=1, **kw) -> ExecResult:
    return ExecResult(tuple(f"c{i}" for i in range(cols)), tuple(rows), **kw)


def score(gold: ExecResult, pred: ExecResult, ordered: bool, mode: str = "strict") -> scoring.Verdict:
    """A case's outcome under ``mode`` when the queries run as written under every rule."""
    j = scoring.Judged(gold, pred, gold, pred, spider_ordered=ordered, strict_ordered=ordered)
    return scoring.outcome(j, mode, scoring.verdicts(j))


@pytest.mark.parametrize("mode", scoring.MODES)
def test_execution_accuracy_rules(mode):
    gold = r([(1,), (2,), (2,)])
    assert score(gold, r([(2,), (1,), (2,)]), False, mode).status == "success"
    assert score(gold, r([(1,), (2,), (2,)]), True, mode).status == "success"
    assert score(gold, r([(1, 1)], cols=2), False, mode).status == "failure", "wrong columns"
    assert score(gold, r([(9,)]), False, mode).status == "failure", "no gold row"
    assert score(gold, r([], error="no such column: x"), False, mode).status == "failure"
    assert score(gold, r([], cut="row_limit"), False, mode).status == "failure"
    assert score(r([(3,)]), r([(3.0,)]), False, mode).status == "success", "3 == 3.0, as SQLite compares"
    assert score(r([]), r([]), False, mode).status == "success"
    assert score(r([(1,)]), r([(1,)], lossy=True), False, mode).status == ("failure" if mode == "bird" else "success"), \
        "BIRD's evaluator fails on text that is not UTF-8"
    slow = score(r([(1,)], seconds=20.0), r([(1,)], seconds=11.0), False, mode).status
    assert slow == ("failure" if mode == "bird" else "success"), "BIRD gives the pair of queries 30 s"
    if mode == "bird":  # a set: duplicates and order do not count
        assert score(gold, r([(1,), (2,)]), True, mode).status == "success"
    else:
        assert score(gold, r([(2,), (1,), (2,)]), True, mode) == scoring.Verdict("partial", 0.5)
        assert score(gold, r([(1,), (2,)]), False, mode) == scoring.Verdict("partial", round(2 / 3, 4))
    two = r([(1, "a"), (2, "b")], cols=2)
    swapped = r([("a", 1), ("b", 2)], cols=2)
    assert (score(two, swapped, False, mode).status == "success") == (mode == "spider"), "columns in any order"
    assert (score(r([]), r([], cols=3), False, mode).status == "success") == (mode != "strict"), "empty results"


@pytest.mark.parametrize("sql,shape,ordered", [
    ("SELECT name FROM singer WHERE age > 20", "filter", False),
    ("SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.a_id", "join", False),
    ("SELECT name FROM a, b WHERE a.id = b.a_id ORDER BY name", "join", True),
    ("SELECT country, count(*) FROM singer GROUP BY country", "aggregate", False),
    ("SELECT name FROM s WHERE age > (SELECT avg(age) FROM s) ORDER BY age DESC", "nested", True),
    ("SELECT name FROM a UNION SELECT name FROM b", "set_operation", False),
    ("SELECT x FROM t WHERE note = 'union of (select) groups'", "filter", False),
    ("SELECT a FROM t WHERE id IN (SELECT id FROM u ORDER BY v LIMIT 3)", "nested", False),
])
def test_sql_shape_and_order(sql, shape, ordered):
    assert D.classify(sql) == shape
    assert D.ordered(sql) is ordered


@pytest.mark.parametrize("text,sql", [
    ("```sql\nSELECT 1\n```", "SELECT 1"),
    ("Reasoning...\n```sql\nSELECT 2\n```\nfinal:\n```SQL\nSELECT 3;\n```", "SELECT 3"),
    ("```\nSELECT 4 FROM t\n```", "SELECT 4 FROM t"),
    ("The answer is SELECT a FROM b WHERE c = 1", "SELECT a FROM b WHERE c = 1"),
    ("I do not know.", None), ("", None), (None, None),
])
def test_sql_is_found_in_an_answer(text, sql):
    assert prompts.extract_sql(text) == sql


def test_self_consistency_votes_by_result():
    a, b = r([(1,)]), r([(2,)])
    err = r([], error="no such table")
    assert vote([("q1", a, False), ("q2", b, False), ("q3", r([(2,)]), True)])[0] == "q2"
    assert vote([("q1", err, False), ("q2", a, False)])[0] == "q2"
    assert vote([("q1", err, False), ("q2", err, True)])[:1] == ("q1",)


def test_simulated_mistakes_are_wrong_or_invalid(dbs, conns):
    import random

    runner = SqlRunner()
    for i in range(40):
        q = builtin.make_question(vocab.TASK_TYPES[i % 5], vocab.DIFFICULTIES[i % 3], i, conns)
        rng = random.Random(i)
        assert wrong_query(q.sql, rng) != q.sql
        assert not runner.run_sync(str(dbs[q.db_id]), invalid_query(q.sql, rng)).ok


# ----------------------------------------------------------------------------- spec and suite


def test_the_parser_uses_the_suites_vocabulary_and_config():
    spec = parse_manifest(t2s_manifest())
    assert spec.matrix.task_types == vocab.TASK_TYPES and spec.matrix.difficulties == vocab.DIFFICULTIES
    assert spec.matrix.suite_version == vocab.VERSION and spec.suite_config["selfConsistency"] == 1
    assert parse_manifest(spec.to_resolved()) == spec
    ids = {c.case_id for c in iter_cases(spec.matrix)}
    wf = parse_manifest({**t2s_manifest(), "spec": {"matrix": {"models": ["sim/strong"], "promptTypes": ["cot"]}}})
    assert not ids & {c.case_id for c in iter_cases(wf.matrix)}, "the suite version is in every case id"


@pytest.mark.parametrize("change,path,words", [
    (lambda s: s.update(suite="sql2text"), "spec.suite", ["not an installed suite", "text2sql", "workflow"]),
    (lambda s: s["matrix"].update(promptTypes=["baseline"]), "spec.matrix.promptTypes[0]",
     ["text2sql prompt type", "zero_shot"]),
    (lambda s: s["matrix"].update(taskTypes=["data_pipeline"]), "spec.matrix.taskTypes[0]", ["filter"]),
    (lambda s: s.update(suiteConfig={"selfConsistensy": 3}), "spec.suiteConfig.selfConsistensy",
     ["unknown field", "selfConsistency"]),
    (lambda s: s.update(suiteConfig={"selfConsistency": 99}), "spec.suiteConfig.selfConsistency", ["16"]),
    (lambda s: s.update(suiteConfig={"rowLimit": 0}), "spec.suiteConfig.rowLimit", []),
    (lambda s: s.update(suiteConfig={"questions": "dev.json"}), "spec.suiteConfig.questions", ["dataset"]),
    (lambda s: s.update(suiteConfig={"dataset": "/d", "questions": "../etc/passwd"}), "spec.suiteConfig.questions",
     ["inside the dataset"]),
    (lambda s: s.update(suiteConfig={"dataset": "a\nb"}), "spec.suiteConfig.dataset", []),
])
def test_bad_text2sql_specs_name_the_field(change, path, words):
    doc = t2s_manifest()
    change(doc["spec"])
    with pytest.raises(SpecError) as err:
        parse_manifest(doc)
    assert err.value.path == path, str(err.value)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_workflow_takes_no_suite_config():
    doc = {**t2s_manifest(), "spec": {"matrix": {"models": ["sim/strong"], "promptTypes": ["cot"]},
                                      "suiteConfig": {"dataset": "/x"}}}
    with pytest.raises(SpecError, match="spec.suiteConfig.dataset: unknown field"):
        parse_manifest(doc)


def _rows(spec, **kw):
    runner = CaseRunner(spec, Text2SqlRunner(spec, D.BuiltinDataset(kw.pop("root")), Retrieval(),
                                             sleep=lambda s: asyncio.sleep(0)))

    async def go():
        cases = list(iter_cases(spec.matrix))
        return cases, await asyncio.gather(*(runner.run(c, CaseProgress()) for c in cases))
    return asyncio.run(go())


def test_simulated_models_answer_at_their_accuracy(tmp_path):
    spec = parse_manifest(t2s_manifest(models=["sim/oracle", "sim/strong", "sim/weak"],
                                         promptTypes=["zero_shot", "misleading_column_hint"], instances=8))
    cases, rows = _rows(spec, root=tmp_path)
    rate, n = Counter(), Counter()
    for c, row in zip(cases, rows):
        n[c.model, c.prompt_type] += 1
        rate[c.model, c.prompt_type] += row["status"] == "success"
        assert row["details"]["db"] and row["details"]["gold_rows"] >= 0
    acc = {k: rate[k] / n[k] for k in n}
    assert acc["sim/oracle", "zero_shot"] == 1.0
    assert acc["sim/strong", "zero_shot"] > acc["sim/weak", "zero_shot"] + 0.1
    assert acc["sim/weak", "zero_shot"] > acc["sim/weak", "misleading_column_hint"]
    assert any(r["details"]["corrected"] for r in rows), "some invalid SQL went through a correction round"
    assert _rows(spec, root=tmp_path)[1] == rows, "deterministic"


def test_self_consistency_samples_n_answers(tmp_path):
    doc = t2s_manifest(models=["sim/weak"], instances=3)
    doc["spec"]["suiteConfig"] = {"selfConsistency": 5}
    spec = parse_manifest(doc)
    runner = CaseRunner(spec, Text2SqlRunner(spec, D.BuiltinDataset(tmp_path), Retrieval(),
                                             sleep=lambda s: asyncio.sleep(0)))
    progress = CaseProgress()
    row = asyncio.run(runner.run(next(iter_cases(spec.matrix)), progress))
    assert row["details"]["samples"] == 5 and 1 <= row["details"]["votes"] <= 5
    assert 5 <= progress.turns <= 10, "five answers, each with at most one correction"


def test_bird_column_descriptions_in_the_encodings_bird_ships(tmp_path):
    db = tmp_path / "shop"
    (db / "database_description").mkdir(parents=True)
    conn = sqlite3.connect(db / "shop.sqlite")
    conn.execute("CREATE TABLE client (id INTEGER PRIMARY KEY, nm TEXT, dob TEXT)")
    conn.execute("CREATE TABLE sale (id INTEGER PRIMARY KEY, amt REAL)")
    conn.commit()
    conn.close()
    header = "original_column_name,column_name,column_description,data_format,value_description\n"
    # a byte-order mark before the header (it used to hide every column of the file)
    (db / "database_description" / "client.csv").write_bytes(
        ("\ufeff" + header + "nm,name,the client's full name,text,\n"
         "dob ,date of birth,,text,\n").encode("utf-8"))
    # Windows-1252, with a padded header
    (db / "database_description" / "sale.csv").write_bytes(
        (" Original_Column_Name ,column_name,column_description,data_format,value_description\n"
         "amt,amount,montant payé in euros,real,\n").encode("cp1252"))
    got = D._descriptions(db)
    assert got == {("client", "nm"): "the client's full name", ("client", "dob"): "date of birth",
                   ("sale", "amt"): "montant payé in euros"}
    schema = D.introspect("shop", db / "shop.sqlite", got)
    assert {(c.table, c.name): c.description for c in schema.columns}[("sale", "amt")] == "montant payé in euros"


def test_question_difficulty_from_bird_spider_or_spiders_rule(tmp_path):
    (tmp_path / "database" / "d").mkdir(parents=True)
    conn = sqlite3.connect(tmp_path / "database" / "d" / "d.sqlite")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
    conn.commit()
    conn.close()
    q = "SELECT x FROM t WHERE id = 1"
    given = [{"difficulty": "challenging"}, {"difficulty": " Moderate "}, {"hardness": "easy"},
             {"hardness": "extra"}, {"difficulty": "medium"}, {"difficulty": "unheard-of"}, {}]
    (tmp_path / "dev.json").write_text(json.dumps([{"db_id": "d", "question": f"q{i}", "query": q, **g}
                                                    for i, g in enumerate(given)]))
    ds = D.FolderDataset(str(tmp_path))
    # a WHERE only: Spider's rule says easy (one component, nothing else)
    assert [it.difficulty for it in ds.items] == ["challenging", "moderate", "simple", "challenging", "moderate",
                                                  "simple", "simple"]
    assert [it.hardness for it in ds.items] == ["", "", "easy", "extra", "medium", "easy", "easy"]


def test_a_remote_dataset_copy_is_whole_or_replaced(tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    src = tmp_path / "src.sqlite"
    conn = sqlite3.connect(src)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    fs.pipe("/t2s-unit/dev.json", json.dumps([{"db_id": "a", "question": "q", "query": "SELECT x FROM t"}]).encode())
    fs.pipe("/t2s-unit/database/a/a.sqlite", src.read_bytes())
    fs.pipe("/t2s-unit/database/b/b.sqlite", src.read_bytes())  # no question names it
    try:
        dest = D._localize("memory://t2s-unit", None, None, tmp_path / "local")
        assert sorted(p.name for p in (dest / "database").iterdir()) == ["a"] and (dest / ".complete").exists()
        # a stale, incomplete folder where the copy goes (a crash in an older version) is replaced
        (dest / ".complete").unlink()
        (dest / "database" / "a" / "a.sqlite").unlink()
        again = D._localize("memory://t2s-unit", None, None, tmp_path / "local")
        assert again == dest and (dest / "database" / "a" / "a.sqlite").read_bytes() == src.read_bytes()
        assert [p.name for p in (tmp_path / "local" / "datasets").iterdir()] == [dest.name], "no .part left"
    finally:
        fs.rm("/t2s-unit", recursive=True)


def test_a_right_answer_as_large_as_the_gold_result_is_not_cut(tmp_path):
    """The size cap bounds a model's query, but like the row cap it never cuts a result the gold
    query itself returns: 20 values of 900 KB are over the 16 MB default."""
    (tmp_path / "ds" / "database" / "big").mkdir(parents=True)
    conn = sqlite3.connect(tmp_path / "ds" / "database" / "big" / "big.sqlite")
    conn.execute("CREATE TABLE doc (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO doc VALUES (?, ?)", [(i, chr(97 + i) * 900_000) for i in range(20)])
    conn.commit()
    conn.close()
    (tmp_path / "ds" / "dev.json").write_text(json.dumps([
        {"db_id": "big", "question": "Every document's body", "query": "SELECT body FROM doc WHERE id >= 0",
         "difficulty": "simple"}]))
    doc = t2s_manifest(models=["sim/oracle"], taskTypes=["filter"], difficulties=["simple"], instances=1)
    doc["spec"]["suiteConfig"] = {"dataset": str(tmp_path / "ds")}
    spec = parse_manifest(doc)
    pipeline = Text2SqlRunner(spec, D.open_dataset(spec.suite_config), Retrieval(), sleep=lambda s: asyncio.sleep(0))
    (case,) = iter_cases(spec.matrix)
    assert pipeline.exists(case)
    row = asyncio.run(CaseRunner(spec, pipeline).run(case, CaseProgress()))
    assert row["status"] == "success", row
    assert row["details"]["rows"] == row["details"]["gold_rows"] == 20 and row["details"]["cut"] is None
    assert pipeline.sql.run_sync(str(pipeline.dataset.db_paths["big"]), "SELECT body FROM doc").cut == "size_limit"
