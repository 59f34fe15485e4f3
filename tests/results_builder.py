"""Result sets written as the runner writes them, for the report's tests (no runner needed).

The sink's schema, one part per shard and attempt, a part written twice by another writer, errors and
timeouts retried as a later attempt; success driven by model skill, prompt effect, an item effect shared by
every model and prompt type (the clustering) and a model × item effect.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchpilot_runner.results.rows import SCHEMA

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


def _row(r: dict, run: str, suite: str, attempt: int, with_valid: bool, status: str | None = None) -> dict:
    final = status is None
    details = {"valid": r["valid"], "sql": f"SELECT {r['case_id']!r} -- {r['prompt_type']}"} if with_valid else None
    return {"run": run, "namespace": "default", "case_id": r["case_id"], "suite": suite, "model": r["model"],
            "prompt_type": r["prompt_type"], "difficulty": r["difficulty"], "task_type": r["task_type"],
            "instance": r["instance"], "shard": 0, "attempt": attempt, "status": r["status"] if final else status,
            "score": r["score"] if final else 0.0, "error_type": None if final else "ConnectionError",
            "error_message": None if final else "connection refused", "latency_s": r["latency_s"],
            "turns": 3, "tool_calls": 2, "prompt_tokens": 400 + r["instance"], "completion_tokens": 40,
            "cost_usd": 0.001 * (1 + len(r["model"]) % 3), "started_at": T0, "finished_at": T0 + dt.timedelta(attempt),
            "details": json.dumps(details, sort_keys=True) if details else None}
