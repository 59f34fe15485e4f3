"""Reuse keys, transcripts and the answer index (issue 22): what makes two requests the same, what a
transcript keeps, and answers added by many writers at once."""

from __future__ import annotations

import copy
import json
import multiprocessing
import random

import pytest

from benchpilot_runner.answers import keys as K
from benchpilot_runner.answers import transcript as T
from benchpilot_runner.answers.index import AnswerIndex, ReuseError, load_index
from benchpilot_runner.llm.base import ChatResult, LLMHTTPError
from benchpilot_runner.llm.client import request_body

URL = "https://api.example.com/v1"


def _body(rng: random.Random) -> dict:
    n = rng.randint(1, 4)
    messages = [{"role": "system", "content": f"sys {rng.random()}"}]
    messages += [{"role": rng.choice(["user", "assistant"]), "content": f"m{i} {rng.random()}"} for i in range(n)]
    tools = [{"type": "function", "function": {"name": f"t{i}", "parameters": {"type": "object"}}}
             for i in range(rng.randint(0, 3))]
    params = {"temperature": rng.choice([0, 0.7]), "max_tokens": rng.randint(16, 512), "seed": rng.randint(0, 9)}
    return request_body(f"model-{rng.randint(0, 3)}", messages, tools, params)


def _mutations(body: dict, rng: random.Random):
    """(field, the body with only that field changed) for every field of the body."""
    for field in body:
        changed = copy.deepcopy(body)
        value = changed[field]
        if field == "messages":
            changed[field][rng.randrange(len(value))]["content"] += " "
        elif field == "tools":
            changed[field][rng.randrange(len(value))]["function"]["name"] += "x"
        elif isinstance(value, str):
            changed[field] = value + "x"
        elif isinstance(value, (int, float)):
            changed[field] = value + 1
        yield field, changed
    extra = copy.deepcopy(body)
    extra["top_p"] = 0.5
    yield "a new field", extra
    fewer = copy.deepcopy(body)
    fewer["messages"] = fewer["messages"][:-1]
    yield "one message fewer", fewer


@pytest.mark.parametrize("seed", range(40))
def test_changing_any_key_field_changes_the_key(seed):
    """The property: endpoint, model id, every body field, instance and occurrence are each in the key."""
    rng = random.Random(seed)
    body, instance, occ = _body(rng), rng.randint(0, 50), rng.randint(0, 3)
    key = K.key_of(URL, body, instance, occ)
    seen = {key}
    for field, changed in _mutations(body, rng):
        if changed == body:
            continue
        other = K.key_of(URL, changed, instance, occ)
        assert other != key, f"changing {field} kept the key"
        seen.add(other)
    for other in (K.key_of("https://api.example.com/v2", body, instance, occ),
                  K.key_of("https://other.example.com/v1", body, instance, occ),
                  K.key_of(URL, body, instance + 1, occ), K.key_of(URL, body, instance, occ + 1)):
        assert other not in seen
        seen.add(other)


def test_the_model_id_alone_separates_two_models_with_identical_prompts():
    """lm-eval #4063: a key without the model scores one model with another's answers."""
    body = request_body("model-a", [{"role": "user", "content": "same prompt"}], [], {})
    assert K.key_of(URL, body, 0, 0) != K.key_of(URL, {**body, "model": "model-b"}, 0, 0)


def test_transport_fields_and_url_spelling_do_not_change_the_key():
    body = request_body("m", [{"role": "user", "content": "hi"}], [], {"temperature": 0})
    key = K.key_of(URL, body, 2, 0)
    assert K.key_of(URL, {**body, "stream": False, "timeout": 30, "user": "me"}, 2, 0) == key
    for spelling in ("HTTPS://API.Example.com:443/v1/", "https://api.example.com/v1/", " https://api.example.com/v1"):
        assert K.key_of(spelling, body, 2, 0) == key
    assert K.key_of("https://api.example.com:8443/v1", body, 2, 0) != key
    reordered = dict(reversed(list(body.items())))
    assert K.key_of(URL, reordered, 2, 0) == key


def _result(text: str, **kw) -> ChatResult:
    return ChatResult({"role": "assistant", "content": text}, 10, 2, finish_reason=kw.pop("finish", "stop"),
                      served_model="served-1", fingerprint="fp_1", **kw)


def _conversation(turns: int = 4) -> tuple[T.Transcript, list[dict]]:
    tr, bodies = T.Transcript(instance=7), []
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
    tools = [{"type": "function", "function": {"name": "f"}}]
    for i in range(turns):
        body = request_body("m", messages, tools, {"max_tokens": 50})
        tr.record(URL, body, result=_result(f"answer {i}"))
        bodies.append(json.loads(json.dumps(body)))
        messages = messages + [{"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": f"more {i}"}]
    return tr, bodies


def test_a_transcript_gives_back_every_request_exactly_and_its_keys():
    tr, bodies = _conversation()
    doc = T.parse(tr.to_json())
    got = list(T.requests(doc))
    assert [body for _, body in got] == bodies
    # every answer under the key of the request that got it (computed from what was kept)
    assert [(k, r["message"]["content"]) for k, r in T.answers(doc)] == [
        (K.key_of(URL, body, 7, 0), f"answer {i}") for i, body in enumerate(bodies)]
    assert "key" not in doc["entries"][0] and "occ" not in doc["entries"][0]  # nothing random is stored
    assert tr.row_fields()["served_model"] == "served-1" and tr.row_fields()["system_fingerprint"] == "fp_1"
    # kept as deltas: a later request holds only what is new (not the earlier answer), the tools once
    assert doc["entries"][3]["request"]["prefix"] == 7 and len(doc["entries"][3]["request"]["messages"]) == 1
    assert doc["entries"][3]["request"]["tools"] == "same"


def test_errors_and_cut_off_answers_are_kept_but_never_offered_for_reuse():
    tr = T.Transcript(0)
    body = request_body("m", [{"role": "user", "content": "q"}], [], {})
    tr.record(URL, body, error=LLMHTTPError("HTTP 500: boom", status=500))
    tr.record(URL, body, result=_result("half", finish="length"))
    tr.record(URL, body, result=_result("whole"))
    doc = T.parse(tr.to_json())
    assert doc["entries"][0]["error"] == {"type": "http_error", "message": "HTTP 500: boom"}
    assert [k for k, _ in T.answers(doc)] == [K.key_of(URL, body, 0, 2)]  # the third sample only


def test_a_long_transcript_is_bounded_with_a_marker_and_whole_entries():
    tr = T.Transcript(0)
    for i in range(50):
        body = request_body("m", [{"role": "user", "content": f"{i} " + "x" * 2000}], [], {})
        tr.record(URL, body, result=_result("y" * 1000))
    text = tr.to_json(limit=20_000)
    assert len(text.encode()) <= 20_000
    doc = T.parse(text)
    assert doc["truncated"]["entries"] == 50 and doc["truncated"]["kept"] == len(doc["entries"]) > 0
    assert doc["truncated"]["bytes"] > 20_000
    assert len(list(T.answers(doc))) == len(doc["entries"])


def test_an_unreadable_transcript_is_counted_not_fatal():
    index = AnswerIndex()
    tr, _ = _conversation(2)
    for text in ("{not json", json.dumps({"v": 99, "entries": []}), tr.to_json(),
                 json.dumps({"v": 1, "endpoint": URL, "instance": 0, "entries": [{"response": {"message": 3}}]}),
                 json.dumps({"v": 1, "endpoint": URL, "instance": 0, "entries": [{"request": {"prefix": "x"}}]}),
                 json.dumps({"v": 1, "instance": 0, "entries": []})):
        index.add_transcript(text)
    assert (len(index), index.counts["unparsable"]) == (2, 5)


# ------------------------------------------------------------------ many writers, one store

WRITERS, ROWS, TURNS = 16, 40, 3


def _writer(run_dir: str, w: int) -> None:
    """One writer process: its rows (each with TURNS answers) as parts of its own, as a pod writes them."""
    import asyncio

    from benchpilot_runner.results.rows import make_row
    from benchpilot_runner.results.sink import ShardSink
    from benchpilot_runner.results.store import open_uri

    async def main() -> None:
        fs, root = open_uri(run_dir)
        sink = ShardSink(fs, root, 0, flush_rows=7, flush_s=60)
        for r in range(ROWS):
            tr = T.Transcript(r)
            for t in range(TURNS):
                body = request_body(f"writer-{w}", [{"role": "user", "content": f"{w}/{r}/{t}"}], [], {})
                tr.record(URL, body, result=_result(f"{w}/{r}/{t}"))
            sink.add(make_row(run="many", namespace="default", case_id=f"{w}-{r}", suite="workflow",
                              status="success", **tr.row_fields()))
            if sink.due():
                assert await sink.flush(), "a part was not written"
        assert await sink.flush(), "the last part was not written"
    asyncio.run(main())


def test_sixteen_writers_add_answers_at_once_none_lost(tmp_path):
    run_dir = str(tmp_path / "store" / "default" / "many" / "uid")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(run_dir, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS, "a writer failed"
    index = load_index("workflow", (str(tmp_path / "store"),))
    assert len(index) == WRITERS * ROWS * TURNS  # every answer of every writer, none lost
    assert index.counts["unparsable"] == index.counts["duplicates"] == 0
    assert index.counts["rows"] == WRITERS * ROWS
    for w, r, t in ((5, 9, 2), (0, 0, 0), (15, 39, 1), (7, 21, 0)):  # each answer under its own key
        body = request_body(f"writer-{w}", [{"role": "user", "content": f"{w}/{r}/{t}"}], [], {})
        assert index.get(K.key_of(URL, body, r, 0))["message"]["content"] == f"{w}/{r}/{t}"
    body = request_body("writer-5", [{"role": "user", "content": "5/9/2"}], [], {})
    assert index.get(K.key_of(URL, body, 9, 1)) is None and index.get(K.key_of(URL, body, 8, 0)) is None


def test_a_source_that_is_missing_empty_or_of_another_suite_is_refused(tmp_path):
    with pytest.raises(ReuseError, match="holds no result parts"):
        load_index("workflow", (str(tmp_path / "nothing"),))
    run_dir = str(tmp_path / "t2s" / "default" / "r" / "u")
    _writer(run_dir, 0)
    with pytest.raises(ReuseError, match="holds results of suite 'workflow'; this run's suite is 'text2sql'"):
        load_index("text2sql", (str(tmp_path / "t2s"),))


def test_parts_written_before_transcripts_still_read_and_report(tmp_path):
    """A part of 0.2 (no transcript, reused, scoring_version, ... columns) reads back with nulls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchpilot_runner import report
    from benchpilot_runner.results.rows import SCHEMA

    old = pa.schema([f for f in SCHEMA if f.name not in ("transcript", "reused", "saved_tokens", "saved_usd",
                                                          "served_model", "system_fingerprint", "scoring_version")])
    rows = [{"run": "old", "namespace": "default", "case_id": f"c{i}", "suite": "workflow", "model": "m",
             "prompt_type": "baseline", "difficulty": "easy", "task_type": "simple_task", "instance": i,
             "attempt": 1, "status": "success", "score": 1.0} for i in range(3)]
    folder = tmp_path / "default" / "old" / "uid" / "shard-00000"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=old), folder / "part-00001-00000-abc.parquet")
    summary = report.summarize(report.load(str(tmp_path)))
    assert summary["total"] == 3 and summary["reuse"]["answers_reused"] == 0
    assert summary["scoring"]["older_rows"] == 3  # no scoring version: scored by code older than the current
    index = load_index("workflow", (str(tmp_path),))
    assert len(index) == 0 and index.counts["rows"] == 3


@pytest.mark.parametrize("seed", range(20))
def test_the_cached_tools_text_hashes_the_same_bytes(seed):
    """request_digest's per-case tools cache is an optimisation only: the same digest, turn after turn."""
    rng = random.Random(seed)
    body = _body(rng)
    cache: dict = {}
    for _ in range(3):
        assert K.request_digest(URL, body, cache) == K.request_digest(URL, body)
        body = {**body, "messages": body["messages"] + [{"role": "user", "content": str(rng.random())}]}
    if body.get("tools"):
        assert len(cache) == 1


def test_the_scrub_prefilter_masks_exactly_what_every_pattern_masks():
    from benchpilot_runner import redact

    pieces = ["Bearer abcdefgh123", "BASIC Zm9vOmJhcg==", "sk-abcDEF123456", "ak-1234567890", "sk_live_abcdefgh12",
              "AIza" + "b" * 24, "AKIAABCDEFGHIJKLMNOP", "ghs_" + "c" * 22, "api_key=hunter222", "PaSSword: s3cr3tv",
              "x-api-key: zzzzzz", "token=abcd1234", "paſſword=abcdef", "plain words", "tokens used", "{\"a\": 1}"]
    rng = random.Random(7)
    for _ in range(300):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        every = text
        for pattern in redact._PATTERNS:
            every = pattern.sub(redact._sub_pattern, every)
        assert redact.scrub(text) == every


def test_a_part_that_is_not_parquet_makes_its_source_refused(tmp_path):
    folder = tmp_path / "default" / "r" / "u" / "shard-00000"
    folder.mkdir(parents=True)
    (folder / "part-00001-00000-abc.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ReuseError, match="part .* is not readable"):
        load_index("workflow", (str(tmp_path),))


def _doc(reuse) -> dict:
    from tests.helpers import manifest

    doc = manifest()
    doc["spec"]["reuse"] = reuse
    return doc


@pytest.mark.parametrize("reuse, path, says", [
    ({"sources": "s3://b/r"}, "spec.reuse.sources", "not a list"),
    ({"sources": [""]}, "spec.reuse.sources[0]", "not a result URI"),
    ({"sources": ["ok/path", 3]}, "spec.reuse.sources[1]", "not a result URI"),
    ({"sources": ["http://x/results"]}, "spec.reuse.sources[0]", "does not keep results"),
    ({"enabled": "yes"}, "spec.reuse.enabled", ""),
    ({"cache": True}, "spec.reuse.cache", ""),
])
def test_spec_reuse_is_checked_with_the_field_named(reuse, path, says):
    from benchpilot_runner.contract.fields import SpecError
    from benchpilot_runner.contract.parse import parse_manifest

    with pytest.raises(SpecError) as err:
        parse_manifest(_doc(reuse))
    assert err.value.path == path and says in str(err.value)


def test_spec_reuse_defaults_overrides_and_round_trip():
    from benchpilot_runner.contract.parse import parse_manifest, with_overrides

    assert parse_manifest(_doc(None)).reuse.enabled is False
    on = parse_manifest(_doc({"sources": ["s3://bucket/results/default/first"]}))
    assert on.reuse.enabled is True and on.reuse.sources == ("s3://bucket/results/default/first",)
    off = parse_manifest(_doc({"enabled": False, "sources": ["./r"]}))
    assert off.reuse.enabled is False
    assert parse_manifest(on.to_resolved()) == on and parse_manifest(off.to_resolved()) == off
    flagged = with_overrides(off, reuse_from=("./other", "./r"))
    assert flagged.reuse.enabled and flagged.reuse.sources == ("./r", "./other")
    assert with_overrides(parse_manifest(_doc(None)), reuse=True).reuse.enabled


def test_reused_answers_and_what_they_saved_are_counted_apart_in_the_metrics():
    from benchpilot_runner.contract.parse import parse_manifest
    from benchpilot_runner.health import Heartbeat
    from benchpilot_runner.metrics import RunnerMetrics
    from benchpilot_runner.results.rows import make_row
    from benchpilot_runner.scheduler import Context, ShardScheduler
    from tests.helpers import manifest

    spec = parse_manifest(manifest())
    metrics = RunnerMetrics()
    sched = ShardScheduler(Context(spec, None, metrics, Heartbeat(60.0)), 0, sink=None, concurrency=1)
    assert sched.scoring_version == "workflow-scoring-1"
    base = dict(run=spec.name, namespace="default", case_id="c", model="m", prompt_type="baseline", status="success")
    sched._record(make_row(**base, reused=3, saved_tokens=180, saved_usd=0.25, cost_usd=0.0), 0.1, 0.0)
    sched._record(make_row(**base, reused=0, saved_tokens=0, cost_usd=0.5, prompt_tokens=100), 0.1, 0.5)
    value = metrics.registry.get_sample_value
    labels = {"run": spec.name, "model": "m"}
    assert value("benchpilot_reused_answers_total", labels) == 3
    assert value("benchpilot_saved_tokens_total", labels) == 180
    assert value("benchpilot_saved_usd_total", labels) == 0.25
    assert value("benchpilot_cost_usd_total", labels) == 0.5  # only what was paid


def test_the_termination_message_carries_served_models_within_the_kubelets_cap():
    from benchpilot_runner.contract.outcomes import Reason, TERMINATION_MESSAGE_BYTES, parse_termination

    served = {f"model-{i}": [f"served-{i}-{j} (fp_{j})" + "x" * 100 for j in range(9)] for i in range(20)}
    text = Reason.COMPLETE.to_message("m" * 10_000, done=5, total=5, served=served)
    assert len(text.encode()) <= TERMINATION_MESSAGE_BYTES
    said = parse_termination(text)
    assert said.done == 5 and len(said.served) == 6 and all(len(ids) == 3 for _, ids in said.served)
    small = parse_termination(Reason.COMPLETE.to_message("ok", served={"m": ["a (fp_1)", "b (fp_2)"]}))
    assert small.served == (("m", ("a (fp_1)", "b (fp_2)")),) and small.message == "ok"
    assert parse_termination(json.dumps({"reason": "Complete", "served": "nonsense"})).served == ()
