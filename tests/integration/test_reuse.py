"""Reuse and rescore as a user runs them (issue 22): real `benchpilot` processes against the fake
endpoint, which counts every request it gets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import manifest, run_cli, write_manifest

pytestmark = pytest.mark.slow
PRICE = {"inputPerMillionTokens": 2.0, "outputPerMillionTokens": 8.0}


def doc_for(base_url: str, name: str, models: list, **spec) -> dict:
    doc = manifest(**spec)
    doc["metadata"]["name"] = name
    doc["spec"]["endpoints"] = [{"name": "default", "baseURL": base_url}]
    doc["spec"]["matrix"].update(models=models, instances=3)
    return doc


def rows_of(root: Path) -> list[dict]:
    return [r for p in sorted(root.rglob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def run(tmp_path: Path, doc: dict, out: Path, *flags: str):
    path = write_manifest(tmp_path / f"{doc['metadata']['name']}.yaml", doc)
    done = run_cli("run", str(path), "--output", str(out), "--no-progress", *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_repeated_run_under_a_new_name_calls_no_provider(tmp_path, fake_llm):
    model = {"name": "agent", "model": "follow", "price": PRICE}
    first = run(tmp_path, doc_for(fake_llm.base_url, "first", [model]), tmp_path / "a")
    assert "reuse:" not in first.stderr  # reuse is off unless asked
    sent = sum(fake_llm.fake.requests.values())
    doc = doc_for(fake_llm.base_url, "again", [model], reuse={"sources": [str(tmp_path / "a")]})
    second = run(tmp_path, doc, tmp_path / "b")
    assert sum(fake_llm.fake.requests.values()) == sent, "the repeated run called the provider"
    before, after = rows_of(tmp_path / "a"), rows_of(tmp_path / "b")
    assert len(after) == len(before) == 12
    verdict = {r["case_id"]: (r["status"], r["score"], r["turns"], r["tool_calls"]) for r in before}
    assert {r["case_id"]: (r["status"], r["score"], r["turns"], r["tool_calls"]) for r in after} == verdict
    paid = {r["case_id"]: (r["prompt_tokens"], r["completion_tokens"], r["cost_usd"]) for r in before}
    for r in after:
        assert r["reused"] == r["turns"] > 0 and r["prompt_tokens"] == r["completion_tokens"] == 0
        assert r["cost_usd"] == 0.0
        assert r["saved_tokens"] == sum(paid[r["case_id"]][:2])
        assert r["saved_usd"] == pytest.approx(paid[r["case_id"]][2])
        assert r["served_model"] == "follow"
    assert f"reuse: {sum(r['turns'] for r in after)} answers taken from earlier results, 0 requests not found" \
        in second.stderr
    report = json.loads(run_cli("report", str(tmp_path / "b"), "--format", "json").stdout)
    assert report["reuse"]["answers_reused"] == sum(r["reused"] for r in after)
    assert report["reuse"]["saved_tokens"] == sum(r["saved_tokens"] for r in after)


def test_lm_eval_4063_two_models_with_identical_prompts_never_share_answers(tmp_path, fake_llm):
    """lm-eval keys its cache without the model (issue #4063): the second model got the first's answers."""
    a = {"name": "a", "model": "follow"}
    b = {"name": "b", "model": "priced"}  # same prompts, another model id (and 1000/100 tokens an answer)
    run(tmp_path, doc_for(fake_llm.base_url, "only-a", [a]), tmp_path / "a")
    calls_b = fake_llm.fake.requests["priced"]
    calls_a = fake_llm.fake.requests["follow"]
    done = run(tmp_path, doc_for(fake_llm.base_url, "a-and-b", [a, b]), tmp_path / "ab", "--reuse-from",
               str(tmp_path / "a"))
    rows = rows_of(tmp_path / "ab")
    rows_b = [r for r in rows if r["model"] == "b"]
    assert rows_b and all(r["reused"] == 0 and r["served_model"] == "priced" for r in rows_b)
    assert fake_llm.fake.requests["priced"] - calls_b == sum(r["turns"] for r in rows_b)
    assert all(r["prompt_tokens"] == 1000 * r["turns"] for r in rows_b)
    assert fake_llm.fake.requests["follow"] == calls_a  # model a: every answer reused
    assert all(r["reused"] == r["turns"] for r in rows if r["model"] == "a")
    assert "requests not found" in done.stderr


def test_a_rerun_of_a_failed_case_reuses_the_answers_it_already_got(tmp_path, fake_llm):
    """Reuse on: the run's own parts answer too (a case retried after an error pays only what is new)."""
    doc = doc_for(fake_llm.base_url, "own", [{"name": "x", "model": "follow"}], reuse={"enabled": True})
    run(tmp_path, doc, tmp_path / "o")
    part = next((tmp_path / "o").rglob("part-*.parquet"))
    # turn the first row into an error row (as an interrupted case would be) and run again
    table = pq.read_table(part).to_pylist()
    turns = table[0]["turns"]
    table[0].update(status="error", error_type="case_timeout", attempt=1)
    import pyarrow as pa

    from benchpilot_runner.results.rows import SCHEMA
    pq.write_table(pa.Table.from_pylist(table, schema=SCHEMA), part)
    sent = fake_llm.fake.requests["follow"]
    again = run(tmp_path, doc, tmp_path / "o")
    assert "1 cases run now" in again.stderr
    assert fake_llm.fake.requests["follow"] == sent
    retried = [r for r in rows_of(tmp_path / "o") if r["case_id"] == table[0]["case_id"] and r["attempt"] == 2]
    assert retried and retried[0]["reused"] == retried[0]["turns"] == turns > 0


@pytest.mark.parametrize("what", ["missing", "other-suite"])
def test_an_unusable_reuse_source_is_refused_with_one_line(tmp_path, fake_llm, what):
    source = tmp_path / "nothing-here"
    if what == "other-suite":
        t2s = manifest(suite="text2sql", matrix={"models": ["sim/strong"], "promptTypes": ["zero_shot"], "instances": 1})
        t2s["metadata"]["name"] = "sql"
        path = write_manifest(tmp_path / "sql.yaml", t2s)
        assert run_cli("run", str(path), "--output", str(tmp_path / "sql"), "--no-progress").returncode == 0
        source = tmp_path / "sql"
    doc = doc_for(fake_llm.base_url, "refused", [{"name": "x", "model": "follow"}])
    path = write_manifest(tmp_path / "r.yaml", doc)
    sent = sum(fake_llm.fake.requests.values())
    done = run_cli("run", str(path), "--output", str(tmp_path / "out"), "--no-progress", "--reuse-from", str(source))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("benchpilot: error:")]
    assert len(errors) == 1 and str(source) in errors[0]
    assert ("holds no result parts" if what == "missing" else "holds results of suite 'text2sql'") in errors[0]
    assert sum(fake_llm.fake.requests.values()) == sent


def _age_scoring(root: Path) -> int:
    """Mark every row of ``root`` as scored by an older scoring version (as rows of an earlier release are)."""
    import pyarrow as pa

    from benchpilot_runner.results.rows import SCHEMA

    n = 0
    for part in root.rglob("part-*.parquet"):
        rows = pq.read_table(part).to_pylist()
        for r in rows:
            r["scoring_version"] = "workflow-scoring-0"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), part)
        n += len(rows)
    return n


def test_rescore_judges_every_kept_answer_again_without_calling_the_refusing_endpoint(tmp_path, fake_llm):
    doc = doc_for(fake_llm.url("rescore-src"), "scored", [{"name": "agent", "model": "follow", "price": PRICE}])
    run(tmp_path, doc, tmp_path / "src")
    aged = _age_scoring(tmp_path / "src")
    old = json.loads(run_cli("report", str(tmp_path / "src"), "--format", "json").stdout)
    assert old["scoring"]["older_rows"] == aged == 12
    fake_llm.fake.limit("rescore-src", 0, 3600)  # from now on the endpoint refuses every request (429)
    seen = len([1 for _, prefix, _ in fake_llm.fake.requests_log if prefix == "rescore-src"])
    done = run_cli("rescore", str(tmp_path / "src"), "--output", str(tmp_path / "dest"), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len([1 for _, prefix, _ in fake_llm.fake.requests_log if prefix == "rescore-src"]) == seen
    before = {r["case_id"]: (r["status"], r["score"]) for r in rows_of(tmp_path / "src")}
    after = rows_of(tmp_path / "dest")
    assert {r["case_id"]: (r["status"], r["score"]) for r in after} == before
    assert {r["scoring_version"] for r in after} == {"workflow-scoring-1"}
    assert all(r["reused"] == r["turns"] and r["cost_usd"] == 0.0 for r in after)
    new = json.loads(run_cli("report", str(tmp_path / "dest"), "--format", "json").stdout)
    assert new["scoring"]["older_rows"] == 0
    table = run_cli("report", str(tmp_path / "src")).stdout
    assert "12 rows were scored by older scoring code: workflow-scoring-0 (12)" in table

    # a request the transcripts lack (a model added to the manifest) is an error row, not a call
    doc["spec"]["matrix"]["models"].append({"name": "newcomer", "model": "priced"})
    path = write_manifest(tmp_path / "more.yaml", doc)
    priced = fake_llm.fake.requests["priced"]
    more = run_cli("rescore", str(tmp_path / "src"), "--output", str(tmp_path / "more"), "--manifest", str(path),
                   "--no-progress")
    assert more.returncode == 3, more.stderr[-2000:]
    assert fake_llm.fake.requests["priced"] == priced
    missing = [r for r in rows_of(tmp_path / "more") if r["model"] == "newcomer"]
    assert len(missing) == 12 and {r["error_type"] for r in missing} == {"not_in_transcript"}
    assert all("never calls a provider" in r["error_message"] for r in missing)


def test_cache_explain_shows_each_request_key_and_the_parts_that_hold_it(tmp_path, fake_llm):
    doc = doc_for(fake_llm.base_url, "explained", [{"name": "agent", "model": "follow"}])
    run(tmp_path, doc, tmp_path / "x")
    row = rows_of(tmp_path / "x")[0]
    done = run_cli("cache", "explain", str(tmp_path / "x"), "--case", row["case_id"], "--format", "json")
    assert done.returncode == 0, done.stderr
    [found] = json.loads(done.stdout)
    assert len(found["requests"]) == row["turns"]
    from benchpilot_runner.answers import keys, transcript

    doc = transcript.parse(row["transcript"])
    bodies = [body for _, body in transcript.requests(doc)]
    for r, body in zip(found["requests"], bodies):
        assert r["model"] == "follow" and r["instance"] == row["instance"] and r["held_by"] == [found["part"]]
        # auditable by hand: the key is the documented hash of the printed material
        material = json.loads(r["request_material"])
        assert material["model"] == "follow" and material["body"]["messages"] == body["messages"]
        assert hashlib.sha256(r["request_material"].encode()).hexdigest() == r["request_digest"]
        assert r["key"] == hashlib.sha256(
            f"bp-answer-1\n{r['request_digest']}\n{row['instance']}\n0".encode()).hexdigest()[:16]
        assert r["key"] == keys.key_of(doc["endpoint"], body, row["instance"], 0)
    bad = run_cli("cache", "explain", str(tmp_path / "x"), "--case", "no-such-case")
    assert bad.returncode == 2 and "no row of case no-such-case" in bad.stderr


def test_a_served_model_that_changes_mid_run_is_warned_about_and_grouped(tmp_path, fake_llm):
    doc = doc_for(fake_llm.base_url, "drifting", [{"name": "swapped", "model": "drift-6"}],
                  sharding={"shards": 1, "concurrencyPerShard": 1})
    done = run(tmp_path, doc, tmp_path / "d")
    assert "warning: model swapped changed its served model during the run: drift-6 (fingerprint fp_a) -> " \
           "drift-6-v2 (fingerprint fp_b)" in done.stderr
    rows = rows_of(tmp_path / "d")
    assert {r["system_fingerprint"] for r in rows} == {"fp_a", "fp_b"}
    report = json.loads(run_cli("report", str(tmp_path / "d"), "--format", "json").stdout)
    assert report["served_model_drift"] == ["swapped"]
    served = {g["served_model"]: g["cases"] for g in report["served_models"]}
    assert set(served) == {"drift-6", "drift-6-v2"} and sum(served.values()) == len(rows)
    html = tmp_path / "d.html"
    out = run_cli("report", str(tmp_path / "d"), "--html", str(html), "--format", "json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)["cases"]["list"]
    assert listed and all(c["conversation"].startswith("> system: ") for c in listed)
    page = html.read_text()
    assert "model swapped was served by several models" in page and "drift-6-v2" in page
    assert "<h4>conversation</h4>" in page
    assert "model swapped was served by several models" in run_cli("report", str(tmp_path / "d")).stdout


def test_a_pod_tells_the_operator_which_served_models_answered(tmp_path, fake_llm):
    from benchpilot_runner.contract.outcomes import parse_termination
    from tests.integration.test_shard_pod import Shard, openai_doc

    doc = openai_doc(tmp_path, fake_llm, "drift-3")
    doc["spec"]["sharding"] = {"shards": 1, "concurrencyPerShard": 1}
    log = tmp_path / "termination-log"
    sh = Shard(tmp_path, doc, env={"BENCHPILOT_TERMINATION_LOG": str(log)})
    code, err = sh.run(timeout=120)
    assert code == 0, err[-3000:]
    said = parse_termination(log.read_text())
    assert said.served == (("openai/drift-3", ("drift-3 (fp_a)", "drift-3-v2 (fp_b)")),)
    assert "served model changed during the run" in err


def test_answers_written_by_pods_to_the_object_store_are_reused_from_it(tmp_path, fake_llm, moto_s3):
    """Across machines: two shard pods write their answers to S3 at once; a run elsewhere reuses them all."""
    from tests.integration.test_shard_pod import Shard

    bucket = moto_s3.bucket("reuse-pods")
    doc = doc_for(fake_llm.base_url, "pods", [{"name": "agent", "model": "follow"}],
                  sharding={"shards": 2, "concurrencyPerShard": 4})
    doc["spec"]["output"] = {"uri": f"s3://{bucket}/results", "flushEveryRows": 2}
    doc["metadata"]["uid"] = "uid-pods"
    pods = [Shard(tmp_path, json.loads(json.dumps(doc)), shard=i, env=moto_s3.env()) for i in (0, 1)]
    for p in pods:
        p.start()
    for p in pods:
        _, err = p.proc.communicate(timeout=120)
        assert p.proc.returncode == 0, err[-3000:]
    sent = fake_llm.fake.requests["follow"]
    again = doc_for(fake_llm.base_url, "elsewhere", [{"name": "agent", "model": "follow"}])
    path = write_manifest(tmp_path / "elsewhere.yaml", again)
    done = run_cli("run", str(path), "--output", str(tmp_path / "local"), "--no-progress", "--reuse-from",
                   f"s3://{bucket}/results/default/pods/uid-pods", env=moto_s3.env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert fake_llm.fake.requests["follow"] == sent
    rows = rows_of(tmp_path / "local")
    assert len(rows) == 12 and all(r["reused"] == r["turns"] > 0 for r in rows)
