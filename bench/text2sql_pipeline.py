"""The text2sql pipeline: the seed's naive shape against benchpilot's, on the same questions.

Both run the same N questions (built-in data; default 200) with the same LLM stand-in: a
simulated model whose every answer takes exactly L seconds (default 0.2 s), the same SQL answers
and the same one correction round.

(a) naive, as the OpenSearch-SQL write-up describes the seed: each pipeline node builds its own
    ``SentenceTransformer`` (schema linking, value retrieval, and again for a correction),
    re-embeds the database's column and value texts, opens its own SQLite connection, and the
    questions run one at a time;
(b) benchpilot: the real runner (scheduler, suite, sink) with one encoder and one memory-mapped
    FAISS index per process (a cache built here without the questions, so every question is
    embedded at run time, batched), cases concurrent (64 in flight by default). Its encoder is the
    cache's ONNX export run by onnxruntime (what runner pods have: no torch);
(b0) the same runner with 0.2's encoder: the model in torch through ``transformers`` (mean pooling,
    normalisation) — the baseline, measured in the same run, when torch is installed.

Each side runs in a fresh process. Printed: questions/s, peak RSS (VmHWM), the speed-up, and
benchpilot's overhead per question excluding the LLM's latency — measured at concurrency 1, as
(wall time - answers x L) / questions, the ONNX export's largest difference from
sentence-transformers (checked by ``cache build``), and the cost of scoring a case under all three
modes (spider, bird, strict: the pure comparison of results already fetched, and reading the query
out of the answer), per case. Goals: speed-up >= 20x at 64 in flight (issue 11); peak RSS of (b) at
most 450 MiB with questions/s at least (b0)'s (issue 21); overhead under 20 ms; scoring under all
modes under 1 ms (issue 17). Figures, not a pass/fail test.

    .venv/bin/python bench/text2sql_pipeline.py [--questions 200] [--latency 0.2] [--concurrency 64]

Last line: {"naive_qps": …, "benchpilot_qps": …, "torch_qps": …, "speedup": …, "benchpilot_peak_rss_mib": …,
            "torch_peak_rss_mib": …, "overhead_ms": …, "onnx_max_abs_diff": …, "scoring_ms_per_case": …,
            "extract_ms_per_answer": …}
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def spec_for(questions: int, latency: float, concurrency: int):
    from benchpilot_runner.contract.cases import iter_cases
    from benchpilot_runner.contract.parse import parse_manifest
    from benchpilot_runner.suites.text2sql import vocab

    cells = len(vocab.TASK_TYPES) * len(vocab.DIFFICULTIES)
    doc = {"apiVersion": "benchpilot.io/v1alpha1", "kind": "BenchmarkRun", "metadata": {"name": "bench"},
           "spec": {"suite": "text2sql", "matrix": {"models": ["sim/bench"], "promptTypes": ["zero_shot"],
                                                    "instances": -(-questions // cells)},
                    "simulation": {"sim/bench": {"accuracy": 0.7, "latencySeconds": latency}},
                    "sharding": {"shards": 1, "concurrencyPerShard": concurrency},
                    "output": {"flushEveryRows": 10**6, "flushEverySeconds": 3600}}}
    spec = parse_manifest(doc)
    return spec, list(iter_cases(spec.matrix))[:questions]


# ----------------------------------------------------------------------------- (a) the naive shape


async def naive(questions: int, latency: float) -> dict:
    import sqlite3

    import numpy as np

    from benchpilot_runner.cache import load_encoder, model_source
    from benchpilot_runner.suites.text2sql import prompts
    from benchpilot_runner.suites.text2sql.dataset import BuiltinDataset
    from benchpilot_runner.suites.text2sql.sim import SqlSim

    spec, cases = spec_for(questions, latency, 1)
    ds = BuiltinDataset()
    model_dir = model_source()
    load_encoder(model_dir)  # torch and the files warm, as in a long-running worker; not timed
    answers = 0
    t0 = time.monotonic()
    for case in cases:
        item = ds.question(case.task_type, case.difficulty, case.instance)
        schema = ds.schema(item.db_id)
        # node 1: schema linking, with its own encoder
        enc = load_encoder(model_dir)
        cols = schema.column_texts()
        cv = enc.encode([t for _, t in cols], normalize_embeddings=True, show_progress_bar=False)
        q = enc.encode([item.question], normalize_embeddings=True, show_progress_bar=False)
        top_cols = [cols[i][0] for i in np.argsort(-(cv @ q[0]))[:12]]
        # node 2: value retrieval, with its own encoder
        enc = load_encoder(model_dir)
        vals = schema.value_texts()
        vv = enc.encode([t for _, t in vals], normalize_embeddings=True, show_progress_bar=False)
        q = enc.encode([item.question], normalize_embeddings=True, show_progress_bar=False)
        top_vals = [vals[i][0] for i in np.argsort(-(vv @ q[0]))[:6]]
        tables = list(dict.fromkeys(c.split(".")[0] for c in top_cols))
        messages = prompts.build_messages(item, case.prompt_type, prompts.render_schema(schema, tables),
                                          top_vals, [])
        # node 3: generation; node 4: execution on a fresh connection; node 5: correction (its own encoder)
        sim = SqlSim(case.model, spec.sim_model(case.model), item, case.prompt_type, case.seed)
        answer = await sim.chat(messages, [])
        answers += 1
        sql = prompts.extract_sql(answer.message["content"])
        conn = sqlite3.connect(ds.db_paths[item.db_id])
        try:
            conn.execute(sql).fetchall()
        except sqlite3.Error as exc:
            enc = load_encoder(model_dir)
            enc.encode([str(exc)], normalize_embeddings=True, show_progress_bar=False)
            answer = await sim.chat(messages + [answer.message, prompts.correction(str(exc))], [])
            answers += 1
            try:
                conn.execute(prompts.extract_sql(answer.message["content"]) or "").fetchall()
            except sqlite3.Error:
                pass
        conn.close()
    wall = time.monotonic() - t0
    return {"questions": len(cases), "wall_s": wall, "qps": len(cases) / wall, "answers": answers,
            "peak_rss_mib": peak_rss_mib()}


# ----------------------------------------------------------------------------- (b) benchpilot


class TorchQueryEncoder:
    """(b0): 0.2's runner encoder — the model in torch through ``transformers``, mean pooling over the
    attention mask, L2 normalisation — in place of the ONNX one (same interface)."""

    def __init__(self, model_dir):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.max_length = json.loads((Path(model_dir) / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    def encode(self, texts, batch_size=32):
        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, p=2, dim=1).numpy())
        return np.concatenate(out)


async def benchpilot(questions: int, latency: float, concurrency: int, cache_dir: str, encoder: str) -> dict:
    import fsspec

    from benchpilot_runner.cases import make_runner
    from benchpilot_runner.health import Heartbeat
    from benchpilot_runner.metrics import RunnerMetrics
    from benchpilot_runner.resources import open_cache
    from benchpilot_runner.scheduler import Context, ShardScheduler
    from benchpilot_runner.results.sink import ShardSink
    from benchpilot_runner.suites.base import Retrieval

    if encoder == "torch":
        from benchpilot_runner import resources

        resources.OnnxEncoder = TorchQueryEncoder
    spec, cases = spec_for(questions, latency, concurrency)
    cache = open_cache(cache_dir, suite="text2sql")
    runner = make_runner(spec, retrieval=Retrieval(cache))
    runner.suite.dataset.schema("retail")  # the first schema's introspection: start-up, as the encoder's load
    await cache.embed_async("warm-up: load the encoder once")
    sink = ShardSink(fsspec.filesystem("memory"), f"/bench-{concurrency}", 0, flush_rows=10**6, flush_s=10**6)
    sched = ShardScheduler(Context(spec, runner, RunnerMetrics(), Heartbeat(600)), 0, sink, concurrency=concurrency)
    t0 = time.monotonic()
    n = await sched.run(cases, asyncio.Event())
    wall = time.monotonic() - t0
    answers = sum(r["turns"] for r in sink.buffer)
    return {"questions": n, "wall_s": wall, "qps": n / wall, "answers": answers, "counts": sched.counts,
            "encoder_loads": cache.encoder_loads, "encoder_calls": cache.encoder_calls,
            "sql_statements": runner.suite.sql.statements, "peak_rss_mib": peak_rss_mib(),
            "torch_imported": "torch" in sys.modules}


def scoring_cost(questions: int) -> dict:
    """Milliseconds per case to judge a prediction under every mode (results already fetched) and to
    read the query out of an answer; over the built-in questions, the simulated model's answers."""
    import random

    from benchpilot_runner.suites.text2sql import vocab
    from benchpilot_runner.suites.text2sql.compare import spider_orders
    from benchpilot_runner.suites.text2sql.dataset import BuiltinDataset
    from benchpilot_runner.suites.text2sql.extract import extract_sql
    from benchpilot_runner.suites.text2sql.items import ordered
    from benchpilot_runner.suites.text2sql.scoring import Judged, outcome, verdicts
    from benchpilot_runner.suites.text2sql.sim import wrong_query
    from benchpilot_runner.suites.text2sql.sqlexec import SqlRunner

    ds, runner, rng = BuiltinDataset(), SqlRunner(), random.Random(17)
    cells = [(t, d) for t in vocab.TASK_TYPES for d in vocab.DIFFICULTIES]
    cases, answers = [], []
    for i in range(questions):
        item = ds.question(*cells[i % len(cells)], i // len(cells))
        path = str(ds.db_paths[item.db_id])
        pred_sql = item.sql if i % 3 else wrong_query(item.sql, rng)
        gold, pred = runner.run_sync(path, item.sql), runner.run_sync(path, pred_sql)
        cases.append(Judged(gold, pred, gold, pred, spider_orders(item.sql), ordered(item.sql)))
        answers.append(f"Reasoning first.\n```sqlite\n{pred_sql};\n```\nThis answers the question.")
    rounds = 20
    t0 = time.perf_counter()
    for _ in range(rounds):
        for j in cases:
            for mode in ("spider", "bird", "strict"):
                outcome(j, mode, verdicts(j))
    judged = (time.perf_counter() - t0) / (rounds * len(cases)) / 3 * 1000  # one verdicts+outcome per case
    t0 = time.perf_counter()
    for _ in range(rounds):
        for a in answers:
            extract_sql(a)
    extracted = (time.perf_counter() - t0) / (rounds * len(answers)) * 1000
    rows = sum(len(j.gold.rows) for j in cases) / len(cases)
    return {"scoring_ms": judged, "extract_ms": extracted, "mean_gold_rows": rows}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2, help="the LLM stand-in's seconds per answer")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--child", choices=("naive", "benchpilot", "scoring"))
    ap.add_argument("--cache")
    ap.add_argument("--encoder", choices=("onnx", "torch"), default="onnx")
    args = ap.parse_args()
    if args.child == "naive":
        print(json.dumps(asyncio.run(naive(args.questions, args.latency))))
        return
    if args.child == "scoring":
        print(json.dumps(scoring_cost(args.questions)))
        return
    if args.child == "benchpilot":
        print(json.dumps(asyncio.run(benchpilot(args.questions, args.latency, args.concurrency, args.cache,
                                                args.encoder))))
        return

    from benchpilot_runner.cache import build

    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = f"{tmp}/cache"
        # columns, descriptions and values of every database; no questions (instances=0): each question
        # is embedded at run time by the one encoder
        manifest = build(cache_dir, suite="text2sql", instances=0, log=lambda m: print(m, file=sys.stderr))
        common = ["--questions", str(args.questions), "--latency", str(args.latency)]
        fast = ["--child", "benchpilot", *common, "--concurrency", str(args.concurrency), "--cache", cache_dir]
        b = run_child(fast)
        b0 = run_child([*fast, "--encoder", "torch"]) if importlib.util.find_spec("torch") else None
        one = run_child(["--child", "benchpilot", *common, "--concurrency", "1", "--cache", cache_dir])
        a = run_child(["--child", "naive", *common])
        sc = run_child(["--child", "scoring", *common])
    overhead_ms = 1000 * (one["wall_s"] - one["answers"] * args.latency) / one["questions"]
    print(f"{args.questions} questions, LLM stand-in {args.latency:g}s per answer, 2 cores")
    print(f"(a) naive: encoder per node, one question at a time: {a['qps']:7.2f} questions/s, "
          f"peak RSS {a['peak_rss_mib']:.0f} MiB ({a['answers']} answers, {a['wall_s']:.1f}s)")
    print(f"(b) benchpilot, {args.concurrency} in flight:          {b['qps']:7.2f} questions/s, "
          f"peak RSS {b['peak_rss_mib']:.0f} MiB ({b['answers']} answers, {b['wall_s']:.2f}s, encoder loaded "
          f"{b['encoder_loads']}x, {b['encoder_calls']} encoder calls, {b['sql_statements']} SQL statements)")
    if b0:
        print(f"(b0) the same with 0.2's torch encoder:  {b0['qps']:7.2f} questions/s, peak RSS "
              f"{b0['peak_rss_mib']:.0f} MiB ({b0['wall_s']:.2f}s)")
    print(f"(b) imported torch: {b['torch_imported']}; peak RSS {b['peak_rss_mib']:.0f} MiB (goal <= 450 MiB)"
          + (f", {b['qps'] / b0['qps']:.2f}x the questions/s of (b0) (goal >= 1)" if b0 else ""))
    onnx = manifest["model"]["onnx"]
    print(f"ONNX export against sentence-transformers: largest difference {onnx['maxAbsDiff']:.1e} over "
          f"{onnx['checkedTexts']} texts (allowed {onnx['tolerance']:g})")
    print(f"speed-up (b)/(a): {b['qps'] / a['qps']:.1f}x (goal >= 20x)")
    print(f"(b) at 1 in flight: {one['qps']:.2f} questions/s; overhead per question excluding the LLM: "
          f"{overhead_ms:.1f} ms (goal < 20 ms)")
    print(f"scoring a case under all modes (spider, bird, strict), results fetched: {sc['scoring_ms']:.3f} ms "
          f"(goal < 1 ms; {sc['mean_gold_rows']:.1f} gold rows on average); reading the query out of an answer: "
          f"{sc['extract_ms']:.3f} ms")
    print(json.dumps({"naive_qps": round(a["qps"], 3), "benchpilot_qps": round(b["qps"], 2),
                      "torch_qps": b0 and round(b0["qps"], 2), "speedup": round(b["qps"] / a["qps"], 1),
                      "benchpilot_peak_rss_mib": round(b["peak_rss_mib"]),
                      "torch_peak_rss_mib": b0 and round(b0["peak_rss_mib"]),
                      "naive_peak_rss_mib": round(a["peak_rss_mib"]), "overhead_ms": round(overhead_ms, 1),
                      "onnx_max_abs_diff": onnx["maxAbsDiff"], "scoring_ms_per_case": round(sc["scoring_ms"], 4),
                      "extract_ms_per_answer": round(sc["extract_ms"], 4)}))


if __name__ == "__main__":
    main()
