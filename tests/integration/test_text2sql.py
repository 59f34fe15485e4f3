"""The text2sql suite as a user runs it: the example, kill and resume, a dataset of their own, bad
datasets, hostile SQL from a real endpoint, and a suite added by another package."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from benchpilot_runner import manifest as L
from tests.helpers import BENCHPILOT, EXAMPLES, ROOT, run_cli, wait_for, write_manifest

pytestmark = pytest.mark.slow
EXAMPLE = EXAMPLES / "text2sql.yaml"


def parts(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def rows(root: Path) -> list[dict]:
    return [r for p in parts(root) for r in pq.read_table(p).to_pylist()]


def report(uri: Path) -> dict:
    out = run_cli("report", str(uri), "--format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def example(**spec) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["spec"].update(spec)
    return doc


def test_example_runs_with_a_report_of_execution_accuracy(tmp_path):
    res = run_cli("run", str(EXAMPLE), "--output", str(tmp_path / "out"), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Exec acc by model × prompt type" in res.stdout and "valid" in res.stdout
    summary = report(tmp_path / "out")
    total = L.load_manifest(str(EXAMPLE)).total_cases
    assert summary["total"] == summary["distinct_case_ids"] == summary["final"] == total
    acc = {(g["model"], g["prompt_type"]): g for g in summary["by_model_prompt_type"]}
    assert len(acc) == 15 and all(0 <= g["valid_rate"] <= 1 for g in acc.values())
    assert acc["sim/strong", "zero_shot"]["success_rate"] > acc["sim/weak", "zero_shot"]["success_rate"]
    assert acc["sim/weak", "zero_shot"]["success_rate"] > acc["sim/weak", "misleading_column_hint"]["success_rate"]
    details = [json.loads(r["details"]) for r in rows(tmp_path / "out")[:50]]
    assert all({"sql", "valid", "db", "gold_rows"} <= set(d) for d in details)
    assert list((tmp_path / "out").rglob("_SUCCESS"))


def test_killed_and_resumed_every_case_once(tmp_path):
    doc = example(simulation={m: {"accuracy": a, "latencySeconds": 0.05} for m, a in
                              (("sim/strong", 0.9), ("sim/medium", 0.7), ("sim/weak", 0.4))})
    doc["spec"]["sharding"]["concurrencyPerShard"] = 8
    path = write_manifest(tmp_path / "t2s.yaml", doc)
    total = L.load_manifest(str(path)).total_cases
    out = tmp_path / "out"
    proc = subprocess.Popen([*BENCHPILOT, "run", str(path), "--output", str(out), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(rows(out)) >= total // 4 if parts(out) else False, timeout=120,
                 what="a quarter of the cases to be written")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    before = [r["case_id"] for r in rows(out)]
    assert len(before) == len(set(before)) < total
    again = run_cli("run", str(path), "--output", str(out), "--no-progress", timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{total - len(before)} cases run now, {len(before)} were already done" in again.stderr
    after = Counter(r["case_id"] for r in rows(out))
    assert len(after) == total and max(after.values()) == 1, "every case exactly once"


# ----------------------------------------------------------------------------- bring your own dataset


def make_dataset(root: Path, *, evidence: bool = True) -> Path:
    """A small dataset in the Spider/BIRD layout: dev.json and database/<db_id>/<db_id>.sqlite."""
    for db_id, ddl, data in (
        ("concert", ["CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)",
                     "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES "
                     "singer(singer_id), year INTEGER, venue TEXT)"],
         [("singer", [(1, "Ana", "Portugal", 31), (2, "Bo", "Sweden", 45), (3, "Cy", "Portugal", 27)]),
          ("concert", [(1, 1, 2019, "Porto"), (2, 1, 2021, "Lisbon"), (3, 2, 2021, "Malmo")])]),
        ("pets", ["CREATE TABLE owner (id INTEGER PRIMARY KEY, name TEXT, city TEXT)",
                  "CREATE TABLE pet (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES owner(id), kind TEXT, "
                  "weight REAL)"],
         [("owner", [(1, "Dee", "Lyon"), (2, "Eli", "Turin")]),
          ("pet", [(1, 1, "cat", 4.2), (2, 1, "dog", 12.5), (3, 2, "cat", 3.9)])]),
    ):
        d = root / "database" / db_id
        d.mkdir(parents=True)
        conn = sqlite3.connect(d / f"{db_id}.sqlite")
        for stmt in ddl:
            conn.execute(stmt)
        for table, values in data:
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values[0]))})", values)
        conn.commit()
        conn.close()
    questions = [
        {"db_id": "concert", "question": "Names of singers from Portugal?",
         "SQL": "SELECT name FROM singer WHERE country = 'Portugal'", "difficulty": "simple"},
        {"db_id": "concert", "question": "How many singers are there?", "query": "SELECT count(*) FROM singer"},
        {"db_id": "concert", "question": "Venues of concerts by singers older than 30?",
         "SQL": "SELECT T2.venue FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
                "WHERE T1.age > 30", "difficulty": "moderate", "evidence": "older than 30 means age > 30"},
        {"db_id": "pets", "question": "Kinds of pets heavier than the average pet?",
         "SQL": "SELECT kind FROM pet WHERE weight > (SELECT avg(weight) FROM pet)", "difficulty": "challenging"},
        {"db_id": "pets", "question": "Cities of owners with a cat or a dog",
         "query": "SELECT city FROM owner WHERE id IN (SELECT owner_id FROM pet WHERE kind = 'cat') "
                  "UNION SELECT city FROM owner WHERE id IN (SELECT owner_id FROM pet WHERE kind = 'dog')"},
        {"db_id": "pets", "question": "Owner names, ordered", "SQL": "SELECT name FROM owner ORDER BY name DESC",
         "difficulty": "simple"},
    ]
    if not evidence:
        for q in questions:
            q.pop("evidence", None)
    (root / "dev.json").write_text(json.dumps(questions, indent=1))
    return root


def byo_manifest(dataset: str, models=("sim/oracle", "sim/weak"), **config) -> dict:
    return {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "byo"},
            "spec": {"suite": "text2sql", "suiteConfig": {"dataset": dataset, **config},
                     "matrix": {"models": list(models), "promptTypes": ["zero_shot", "misleading_join_hint"],
                                "instances": 3},
                     "sharding": {"shards": 2, "concurrencyPerShard": 8},
                     "output": {"flushEveryRows": 10, "flushEverySeconds": 1}}}


def test_a_dataset_of_their_own_runs_each_question_once(tmp_path):
    ds = make_dataset(tmp_path / "ds")
    before = {p: p.read_bytes() for p in (ds / "database").rglob("*.sqlite")}
    path = write_manifest(tmp_path / "m.yaml", byo_manifest(str(ds)))
    res = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "have no case in the suite's dataset" in res.stderr
    got = rows(tmp_path / "out")
    per_model = Counter(r["model"] for r in got)
    assert per_model == {"sim/oracle": 12, "sim/weak": 12}, "6 questions x 2 prompt types, each once"
    oracle = [r for r in got if r["model"] == "sim/oracle" and r["prompt_type"] == "zero_shot"]
    assert {r["status"] for r in oracle} == {"success"}, [json.loads(r["details"]) for r in oracle]
    assert {r["task_type"] for r in got} == {"filter", "aggregate", "join", "nested", "set_operation"}
    assert {json.loads(r["details"])["db"] for r in got} == {"concert", "pets"}
    assert {p: p.read_bytes() for p in before} == before, "the user's databases are never written"
    success = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("_SUCCESS")]
    assert sum(s["cases"] for s in success if "shard" in s) == 24 and len(success) == 3, success
    again = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress", timeout=300)
    assert again.returncode == 0 and "0 cases run now, 24 were already done" in again.stderr, again.stderr[-2000:]


@pytest.mark.parametrize("damage,words", [
    ("missing", ["does-not-exist", "dataset"]),
    ("no-questions", ["no questions file", "dev.json"]),
    ("not-json", ["dev.json", "not a JSON document"]),
    ("no-sql", ["dev.json", "question [1]", "SQL or query"]),
    ("no-database", ["pets/pets.sqlite", "question [3]", "does not exist"]),
    ("not-sqlite", ["concert.sqlite", "not a SQLite database"]),
])
def test_a_bad_dataset_fails_before_any_case_naming_the_file(tmp_path, damage, words):
    ds = make_dataset(tmp_path / "ds")
    uri = str(ds)
    if damage == "missing":
        uri = str(tmp_path / "does-not-exist")
    elif damage == "no-questions":
        (ds / "dev.json").unlink()
    elif damage == "not-json":
        (ds / "dev.json").write_text("[{")
    elif damage == "no-sql":
        qs = json.loads((ds / "dev.json").read_text())
        qs[1].pop("query")
        (ds / "dev.json").write_text(json.dumps(qs))
    elif damage == "no-database":
        (ds / "database" / "pets" / "pets.sqlite").unlink()
    else:
        (ds / "database" / "concert" / "concert.sqlite").write_bytes(b"this is not sqlite at all")
    path = write_manifest(tmp_path / "m.yaml", byo_manifest(uri))
    res = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress")
    assert res.returncode == 2, res.stderr[-2000:]
    assert all(w in res.stderr for w in words), res.stderr[-2000:]
    assert "Traceback" not in res.stderr and not parts(tmp_path / "out")


def test_dataset_from_object_storage(tmp_path, moto_s3):
    ds = make_dataset(tmp_path / "ds")
    moto_s3.bucket("datasets")
    fs = moto_s3.fs()
    for f in ds.rglob("*"):
        if f.is_file():
            fs.put_file(str(f), f"datasets/mini/{f.relative_to(ds).as_posix()}")
    # a database no question names (Spider's database/ holds many more than its dev set uses)
    fs.pipe_file("datasets/mini/database/unused/unused.sqlite", b"SQLite format 3\x00" + b"\0" * 200_000)
    path = write_manifest(tmp_path / "m.yaml", byo_manifest("s3://datasets/mini", models=("sim/oracle",)))
    env = {**moto_s3.env(), "BENCHPILOT_DATA_DIR": str(tmp_path / "data")}
    res = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress", timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(rows(tmp_path / "out")) == 12
    copies = tmp_path / "data" / "benchpilot-text2sql-1" / "datasets"
    (copy,) = copies.iterdir()
    assert sorted(p.name for p in (copy / "database").iterdir()) == ["concert", "pets"], "only what is asked"
    assert not [p for p in copies.rglob("*") if ".part" in p.name]

    # a question naming a database the bucket does not hold: refused before any case, naming the object;
    # the edited questions file is a new version of the dataset, copied again
    qs = json.loads((ds / "dev.json").read_text()) + [
        {"db_id": "zoo", "question": "How many animals?", "SQL": "SELECT count(*) FROM animal"}]
    fs.pipe_file("datasets/mini/dev.json", json.dumps(qs).encode())
    res = run_cli("run", str(path), "--output", str(tmp_path / "out2"), "--no-progress", env=env)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "s3://datasets/mini/database/zoo/zoo.sqlite" in res.stderr and "does not exist" in res.stderr
    assert "Traceback" not in res.stderr and not parts(tmp_path / "out2")
    assert len(list(copies.iterdir())) == 1, "a failed copy leaves nothing behind"


# ----------------------------------------------------------------------------- hostile SQL from an endpoint


def test_hostile_sql_is_cut_scored_and_never_writes(tmp_path, fake_llm):
    models = [{"name": f"gw/{k}", "model": f"sql-{k}"} for k in ("hang", "huge", "delete", "drop", "attach",
                                                                  "pragma", "prose", "count")]
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "hostile"},
           "spec": {"suite": "text2sql", "suiteConfig": {"statementTimeoutSeconds": 0.5, "rowLimit": 1000},
                    "endpoint": {"baseURL": fake_llm.base_url, "qps": 100},
                    "matrix": {"models": models, "promptTypes": ["zero_shot"], "taskTypes": ["filter"],
                               "difficulties": ["simple"], "instances": 2},
                    "limits": {"caseTimeoutSeconds": 60},
                    "output": {"flushEveryRows": 4, "flushEverySeconds": 1}}}
    path = write_manifest(tmp_path / "m.yaml", doc)
    data = tmp_path / "data"
    res = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress", timeout=120,
                  env={"BENCHPILOT_DATA_DIR": str(data)})
    assert res.returncode == 0, res.stderr[-3000:]
    by_model = {}
    for r in rows(tmp_path / "out"):
        by_model.setdefault(r["model"], []).append((r["status"], json.loads(r["details"])))
    assert len(by_model) == 8 and all(len(v) == 2 for v in by_model.values())
    for model, results in by_model.items():
        for status, d in results:
            if model == "gw/count":  # valid SQL, the wrong answer: no correction round
                assert status == "failure" and d["valid"] and not d["corrected"] and d["rows"] == 1, d
            else:
                assert status == "failure" and not d["valid"] and d["corrected"], (model, d)
    assert {d["cut"] for _, d in by_model["gw/hang"]} == {"time_limit"}
    assert {d["cut"] for _, d in by_model["gw/huge"]} == {"row_limit"}
    for model in ("gw/delete", "gw/drop", "gw/attach", "gw/pragma"):
        assert all("only a query" in d["error"] for _, d in by_model[model]), by_model[model]
    assert all("no SQL" in d["error"] for _, d in by_model["gw/prose"])
    dbs = sorted(data.rglob("*.sqlite"))
    assert dbs and all(sqlite3.connect(p).execute("SELECT count(*) FROM sqlite_master").fetchone()[0] >= 4
                       for p in dbs)
    assert not Path("/tmp/benchpilot-attack.sqlite").exists()


# ----------------------------------------------------------------------------- a suite from another package

TINY = '''
"""A tiny benchmark suite: is a number even? The model answers yes or no."""
from benchpilot_runner.llm.base import ChatResult
from benchpilot_runner.suites.base import Vocabulary


class Runner:
    def exists(self, case):
        return True

    def simulate(self, case, model, params):
        async def chat(messages, tools):
            n = int(messages[-1]["content"].split()[-1].rstrip("?"))
            wrong = (case.seed % 100) / 100 >= params.accuracy
            even = (n % 2 == 0) != wrong
            return ChatResult({"role": "assistant", "content": "yes" if even else "no"}, 5, 1)
        return chat

    async def run(self, case, chat):
        n = case.instance * 7 + len(case.task_type)
        answer = await chat([{"role": "user", "content": f"Is this even: {n}?"}], [])
        ok = (answer.message["content"].strip() == "yes") == (n % 2 == 0)
        return {"status": "success" if ok else "failure", "score": float(ok), "error_type": None,
                "error_message": None, "details": {"n": n, "ok": ok}}


class Tiny:
    name = "tiny"
    version = "tiny-1"
    vocabulary = Vocabulary(prompt_types=("plain",), task_types=("small", "large"), difficulties=("any",))
    config_fields = ("offset",)
    summary_fields = ("ok",)

    def parse_config(self, f):
        return {"offset": f.number("offset", 0, minimum=0, maximum=10, integer=True)}

    def result_basis(self, spec):
        return dict(spec.suite_config)

    def cache_texts(self, config, *, instances=100):
        return {"numbers": [(str(i), f"the number {i}") for i in range(instances)]}

    def prepare(self, spec, retrieval):
        return Runner()


SUITE = Tiny()
'''


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory) -> Path:
    """A package made here, with an entry point in benchpilot.suites, installed with pip into a folder."""
    src = tmp_path_factory.mktemp("tiny-src")
    (src / "tiny_suite.py").write_text(TINY)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "benchpilot-tiny-suite"
        version = "0.1.0"
        [project.entry-points."benchpilot.suites"]
        tiny = "tiny_suite:SUITE"
        [tool.setuptools]
        py-modules = ["tiny_suite"]
    """))
    site = tmp_path_factory.mktemp("tiny-site")
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", "--target", str(site), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert list(site.glob("*.dist-info/entry_points.txt"))
    return site


def test_a_suite_from_another_package_runs_end_to_end(tmp_path, tiny_site):
    env = {"PYTHONPATH": os.pathsep.join([str(tiny_site), os.environ.get("PYTHONPATH", "")])}
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "tiny"},
           "spec": {"suite": "tiny", "suiteConfig": {"offset": 3},
                    "matrix": {"models": ["sim/oracle", "sim/weak"], "promptTypes": ["plain"], "instances": 10},
                    "sharding": {"shards": 2}}}
    path = write_manifest(tmp_path / "m.yaml", doc)
    res = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    got = rows(tmp_path / "out")
    assert len(got) == 40 and {r["suite"] for r in got} == {"tiny"}
    assert {r["status"] for r in got if r["model"] == "sim/oracle"} == {"success"}
    summary = json.loads(run_cli("report", str(tmp_path / "out"), "--format", "json", env=env).stdout)
    assert summary["flags"] == ["ok"] and summary["by_model"][0]["ok_rate"] == 1.0
    # the parser checks the plug-in's vocabulary and config like any suite's
    doc["spec"]["matrix"]["taskTypes"] = ["huge"]
    bad = run_cli("run", str(write_manifest(tmp_path / "bad.yaml", doc)), "--output", str(tmp_path / "o2"), env=env)
    assert bad.returncode == 2 and "spec.matrix.taskTypes[0]" in bad.stderr and "small, large" in bad.stderr
    # without the package, the name is unknown and the message lists what is installed
    missing = run_cli("run", str(path), "--output", str(tmp_path / "o3"))
    assert missing.returncode == 2 and "'tiny' is not an installed suite" in missing.stderr
    assert "text2sql, workflow" in missing.stderr
