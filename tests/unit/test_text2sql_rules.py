"""text2sql's pure rules: reading the query out of any answer shape, the official comparison
rules (Spider's test-suite evaluator, BIRD's EX, the strict rule), the queries as Spider's
evaluator runs them, and Spider's hardness rule."""

from __future__ import annotations

import json
import sqlite3

import pytest

from benchpilot_runner.contract.fields import SpecError
from benchpilot_runner.contract.parse import parse_manifest
from benchpilot_runner.suites.text2sql.compare import (bird_same, remove_distinct, spider_orders, spider_query,
                                                        spider_same, strict_same)
from benchpilot_runner.suites.text2sql.extract import extract_sql
from benchpilot_runner.suites.text2sql.hardness import spider_hardness
from benchpilot_runner.suites.text2sql.sqltext import statements, strip_ends
from tests.helpers import ROOT
from tests.servers.sql_answers import SHAPES

Q = ("SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
     "WHERE T1.note = 'it''s; -- not a comment' GROUP BY T1.name")
SPIDER = ROOT.parent / "shared" / "data" / "spider-dev"

ANSWERS = {
    "bare": Q, "semicolon": f"{Q};", "fence-sql": f"```sql\n{Q}\n```", "fence-sqlite": f"```sqlite\n{Q};\n```",
    "fence-SQL": f"```SQL\n{Q}\n```", "fence-postgresql": f"```postgresql\n{Q}\n```", "fence-mysql": f"```mysql\n{Q}\n```",
    "fence-tsql": f"```tsql\n{Q}\n```", "fence-none": f"```\n{Q}\n```", "fence-tilde": f"~~~sql\n{Q}\n~~~",
    "fence-one-line": f"```{Q}```", "fence-tag-and-query": f"```sql {Q}```", "fence-unclosed": f"```sql\n{Q}",
    "fence-comment-inside": f"```sql\n-- count each singer's concerts\n{Q}; -- done\n```",
    "several-blocks": f"Draft:\n```sql\nSELECT 1\n```\nBetter:\n```sql\n{Q}\n```\nDone.",
    "python-then-sql": f"```python\nimport sqlite3\n```\n```sql\n{Q}\n```",
    "result-table-after": f"```sql\n{Q}\n```\nResult:\n```\n| name | count |\n| Ana | 2 |\n```",
    "think": f"<think>\nMaybe ```sql\nSELECT wrong FROM x\n``` no.\n</think>\n\n```sql\n{Q}\n```",
    "think-bare": f"<think>We select the names from singer.</think>\n{Q}",
    "think-no-opening": f"drafting SELECT nope FROM x ...</think>\n{Q}",
    "thinking": f"<thinking>joins: singer, concert</thinking>\nSQL: {Q}",
    "reasoning-tag": f"<reasoning>join then group</reasoning><sql>{Q}</sql>",
    "answer-tag": f"<answer>\n{Q}\n</answer>",
    "prefix-sql": f"SQL: {Q}", "prefix-answer": f"Answer: {Q};", "prefix-bold": f"**Final SQL:** {Q}",
    "prefix-query-line": f"Query:\n{Q}", "numbered": f"1. {Q}", "quoted": f"> {Q}",
    "trailing-comment": f"{Q} -- the answer", "trailing-block-comment": f"{Q}; /* done */",
    "prose-after-blank": f"{Q}\n\nThis query counts each singer's concerts.",
    "prose-after-line": f"{Q};\nThis query counts each singer's concerts.",
    "prose-after-label": f"{Q}\nExplanation: it counts concerts.",
    "prose-before-with": f"I'll answer with a join of the two tables.\n{Q}",
    "prose-before-select": f"We select the singers and count their concerts:\n\n{Q}",
    "prose-select-statement": f"The SELECT statement:\n{Q}",
    "inline-code": f"The answer is `{Q}`.",
    "inline-keyword-then-bare": f"I use a `SELECT` with `GROUP BY`:\n\n{Q}",
}


@pytest.mark.parametrize("shape", sorted(ANSWERS))
def test_the_query_is_read_from_every_answer_shape(shape):
    assert extract_sql(ANSWERS[shape]) == Q


@pytest.mark.parametrize("text,sql", [
    ("```sql\nSELECT name\nFROM singer\nWHERE age > 30\n  AND country = 'France'\nORDER BY name;\n```",
     "SELECT name\nFROM singer\nWHERE age > 30\n  AND country = 'France'\nORDER BY name"),
    ("WITH c AS (SELECT 1 AS x) SELECT x FROM c", "WITH c AS (SELECT 1 AS x) SELECT x FROM c"),
    ("```sql\nSELECT 1;\nSELECT 2;\n```", "SELECT 2"),
    ("```sql\nDELETE FROM customers\n```", "DELETE FROM customers"),  # the database refuses it: a correction
    ("select a from t limit 1;.030 sec", "select a from t limit 1"),
    ("I am not sure which table holds that.", None), ("", None), (None, None), ("```\n\n```", None),
])
def test_other_answers(text, sql):
    assert extract_sql(text) == sql


@pytest.fixture(scope="module")
def spider_golds() -> list[str]:
    return [q["query"] for q in json.loads((SPIDER / "dev.json").read_text())]


def test_a_valid_query_is_never_made_invalid(spider_golds):
    """Every Spider dev gold query, in every shape the fake endpoint serves, comes back as written
    (less its trailing semicolon): extraction never changes a query that runs."""
    for sql in spider_golds:
        for shape, make in SHAPES.items():
            assert extract_sql(make(sql)) == strip_ends(sql), (shape, sql)


def test_statements_and_ends():
    assert statements("SELECT ';' ; SELECT 2 -- x;\n; ") == ["SELECT ';' ", " SELECT 2 -- x;\n"]
    assert strip_ends("  -- lead\nSELECT 1 ; -- c\n;") == "SELECT 1"


# ----------------------------------------------------------------------------- the comparison rules


def test_spider_rule():
    a, b = (1, "x"), (2, "y")
    assert spider_same((), (), False) and spider_same((), (), True), "two empty results are equal"
    assert spider_same([], [], False)
    assert not spider_same((a,), (), False)
    assert spider_same((a, b), (b, a), False) and not spider_same((a, b), (b, a), True)
    assert spider_same((a, b), (("x", 1), ("y", 2)), True), "gold columns by a permutation of the predicted"
    assert not spider_same((a, a, b), (a, b, b), False), "bags, not sets"
    assert not spider_same(((1,),), ((1, 1),), False), "the column count matters"
    assert spider_same(((3,),), ((3.0,),), False) and not spider_same(((3,),), (("3",),), False)
    assert not spider_same(((0.1 + 0.2,),), ((0.3,),), False), "floats compare exactly"
    # the gold's columns match a permutation only as whole columns: rows must line up
    assert not spider_same(((1, 2), (3, 4)), ((2, 3), (4, 1)), False)
    # identical predicted columns, many of them: the answer without trying every permutation
    wide = tuple(tuple([i] * 9 + [i + 1]) for i in range(50))
    assert spider_same(wide, tuple(r[::-1] for r in wide), False)
    # its pre-check sorts a row's values by str(value)+str(type): 3 and 3.0 sort apart from '3.5'
    assert not spider_same(((3, "3.5"),), ((3.0, "3.5"),), False)
    assert spider_same(((3, "a"),), ((3.0, "a"),), False)


def test_bird_and_strict_rules():
    assert bird_same(((1,), (1,), (2,)), ((2,), (1,))) and not bird_same(((1, 2),), ((2, 1),))
    assert bird_same((), ())
    assert strict_same(((1.0000001,),), ((1.0,),), 1, 1, False), "floats to 6 places"
    assert not strict_same((), (), 1, 2, False) and strict_same(((1,), (2,)), ((2,), (1,)), 1, 1, False)
    assert not strict_same(((1,), (2,)), ((2,), (1,)), 1, 1, True)


@pytest.mark.parametrize("sql,keep,predicted,runs", [
    ("SELECT DISTINCT name FROM t", False, False, "SELECT  name FROM t"),
    ("SELECT count(DISTINCT name) FROM t WHERE n = 'distinct'", False, False,
     "SELECT count( name) FROM t WHERE n = 'distinct'"),
    ("SELECT DISTINCT name FROM t", True, False, "SELECT DISTINCT name FROM t"),
    ("SELECT \"distinct\" FROM t -- distinct", False, False, "SELECT \"distinct\" FROM t -- distinct"),
    ("SELECT a FROM t WHERE b > = 2 AND c ! = 1", True, False, "SELECT a FROM t WHERE b >= 2 AND c != 1"),
    ("SELECT market_value FROM t", True, True, "SELECT market_1 FROM t"),  # evaluation.py: 'value' -> '1'
    ("SELECT market_value FROM t", True, False, "SELECT market_value FROM t"),
    ("SELECT 1 FROM t WHERE y = YEAR(CURDATE())", True, False, "SELECT 1 FROM t WHERE y = 2020"),
    ("SELECT DISTINCT a FROM t; SELECT b FROM u", False, False, "SELECT  a FROM t"),
])
def test_queries_as_spiders_evaluator_runs_them(sql, keep, predicted, runs):
    assert spider_query(sql, keep_distinct=keep, predicted=predicted) == runs


def test_order_matters_when_the_gold_text_says_order_by():
    assert spider_orders("SELECT a FROM t ORDER BY a")
    assert spider_orders("SELECT a FROM t WHERE b IN (SELECT b FROM u ORDER BY c LIMIT 1)"), "a subquery's too"
    assert not spider_orders("SELECT a FROM t ORDER  BY a"), "the text, as the official code reads it"
    assert remove_distinct("") == ""


# ----------------------------------------------------------------------------- Spider's hardness


# the levels below are what Spider's evaluation.py (eval_hardness over process_sql.get_sql) prints
@pytest.mark.parametrize("sql,level", [
    ("SELECT count(*) FROM singer", "easy"),
    ("SELECT name FROM singer WHERE age > 20", "easy"),
    ("SELECT name, age FROM singer WHERE age > 20", "medium"),
    ("SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id WHERE T2.x = 1", "medium"),
    ("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)", "hard"),
    ("SELECT name FROM a UNION SELECT name FROM b", "hard"),
    ("SELECT name FROM a WHERE x = 1 UNION SELECT name FROM b", "hard"),
    ("SELECT T1.a, count(*) FROM a AS T1 JOIN b AS T2 ON T1.id = T2.a GROUP BY T1.a ORDER BY count(*) DESC LIMIT 1",
     "extra"),
    ("SELECT a FROM t WHERE b LIKE '%x%' OR c = 2", "hard"),
    ("SELECT count(*) FROM t GROUP BY a HAVING sum(b) > 2", "easy"),
    ("SELECT count(*) FROM t GROUP BY a HAVING sum(b) > 2 AND max(c) > 3", "medium"),  # HAVING's AND counts
    ("SELECT a FROM t WHERE b NOT IN (SELECT b FROM a) AND c = 1", "extra"),
])
def test_spiders_hardness_rule(sql, level):
    assert spider_hardness(sql) == level


# ----------------------------------------------------------------------------- configuration


def _manifest(config: dict) -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "t2s"},
            "spec": {"suite": "text2sql", "suiteConfig": config,
                     "matrix": {"models": ["sim/strong"], "promptTypes": ["zero_shot"]}}}


def test_scoring_config():
    cfg = parse_manifest(_manifest({})).suite_config
    assert (cfg["scoring"], cfg["keepDistinct"], cfg["statementTimeoutSeconds"]) == ("spider", False, 5.0)
    bird = parse_manifest(_manifest({"scoring": "bird"})).suite_config
    assert bird["statementTimeoutSeconds"] == 30.0, "BIRD's 30 s for a pair of queries"
    assert parse_manifest(_manifest({"scoring": "bird", "statementTimeoutSeconds": 2})).suite_config[
        "statementTimeoutSeconds"] == 2
    with pytest.raises(SpecError) as err:
        parse_manifest(_manifest({"scoring": "exact"}))
    assert err.value.path == "spec.suiteConfig.scoring" and "spider, bird, strict" in str(err.value)
    with pytest.raises(SpecError) as err:
        parse_manifest(_manifest({"keepDistinct": "yes"}))
    assert err.value.path == "spec.suiteConfig.keepDistinct"


def test_text_that_is_not_utf8_is_read_as_spiders_evaluator_reads_it(tmp_path):
    from benchpilot_runner.suites.text2sql.sqlexec import SqlRunner

    db = tmp_path / "latin.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (name TEXT)")
    conn.execute("INSERT INTO t VALUES (CAST(X'43616665E9' AS TEXT)), ('plain')")  # 'Cafe' + a Latin-1 e-acute
    conn.commit()
    conn.close()
    runner = SqlRunner()
    res = runner.run_sync(str(db), "SELECT name FROM t ORDER BY rowid")
    assert res.rows == (("Cafe",), ("plain",)) and res.lossy
    assert not runner.run_sync(str(db), "SELECT name FROM t WHERE name = 'plain'").lossy
