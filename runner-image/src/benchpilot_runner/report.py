"""Reading results back: every part under a URI, one row per case, summarised — all in Arrow.

One row per case (per result set: namespace, run, run uid): a final outcome (success, partial,
failure) if there is one, else the latest attempt. A part written twice, or a case run twice by two
writers or attempts, is never counted twice. Nothing here builds a Python object per row, so a
million rows report in about a second.

Result sets with different run uids under one root (e.g. ``toolSuccessRate`` changed between runs)
are never merged: the summary says so and groups by result set.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from .sink import PART_RE, list_parts, open_uri, read_part
from .spec import FINAL_STATUSES, STATUSES

log = logging.getLogger("benchpilot.report")

READ_COLUMNS = ("namespace", "run", "case_id", "model", "prompt_type", "task_type", "status", "score",
                "latency_s", "attempt", "prompt_tokens", "completion_tokens", "cost_usd", "finished_at")


@dataclass
class Loaded:
    table: pa.Table  # one row per case and result set
    parts: int
    raw_rows: int
    unreadable: list[str]

    @property
    def duplicates(self) -> int:
        return self.raw_rows - self.table.num_rows

    @property
    def rows(self) -> list[dict]:
        """The rows as dicts (for tests and small results only)."""
        return self.table.to_pylist()


def _uid_of(part: str) -> str:
    bits = part.rstrip("/").split("/")
    return bits[-3] if len(bits) >= 3 else ""


def _read(fs, part: str) -> tuple[str, pa.Table | None, str | None]:
    try:
        table = read_part(fs, part, READ_COLUMNS)
        table = table.append_column("uid", pa.array([_uid_of(part)] * table.num_rows, pa.string())
                                    .dictionary_encode())
        return part, table, None
    except Exception as exc:  # noqa: BLE001 - report what could not be read, go on with the rest
        return part, None, f"{type(exc).__name__}: {exc}"[:300]


def dedupe(table: pa.Table) -> pa.Table:
    """One row per (namespace, run, uid, case_id): final first, then the latest attempt and finish."""
    if table.num_rows == 0:
        return table
    final = pc.is_in(table.column("status"), value_set=pa.array(list(FINAL_STATUSES))).cast(pa.int8())
    key = pc.binary_join_element_wise(table.column("namespace").cast(pa.string()),
                                      table.column("run").cast(pa.string()),
                                      table.column("uid").cast(pa.string()),
                                      table.column("case_id"), "/")
    work = table.append_column("_key", key).append_column("_final", final)
    order = pc.sort_indices(work, sort_keys=[("_key", "ascending"), ("_final", "descending"),
                                             ("attempt", "descending"), ("finished_at", "descending")])
    work = work.take(order)
    keys = work.column("_key")
    first = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    mask = pa.concat_arrays([pa.array([True]), first.combine_chunks() if isinstance(first, pa.ChunkedArray)
                             else first])
    return work.filter(mask).drop_columns(["_key", "_final"])


def load(uri: str) -> Loaded:
    """All result rows under ``uri`` (a results root, a run folder, or a shard folder)."""
    fs, root = open_uri(uri)
    if not fs.exists(root):
        raise FileNotFoundError(f"no results at {uri}")
    parts = list_parts(fs, root, recursive=True)
    tables, unreadable = [], []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for part, table, error in pool.map(lambda p: _read(fs, p), parts):
            if table is None:
                unreadable.append(part)
                log.warning("unreadable part skipped", extra={"part": part, "error": error})
            else:
                tables.append(table)
    if tables:
        raw = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries()
        raw = raw.set_column(raw.schema.get_field_index("uid"), "uid", raw.column("uid").cast(pa.string()))
    else:
        raw = pa.table({c: pa.array([], pa.string()) for c in (*READ_COLUMNS, "uid")})
    return Loaded(table=dedupe(raw) if tables else raw, parts=len(parts), raw_rows=raw.num_rows,
                  unreadable=unreadable)


def _groups(table: pa.Table, keys: list[str]) -> list[dict]:
    """Per group: cases, rates, means, tokens, cost and counts per status (aggregated by Arrow)."""
    if table.num_rows == 0:
        return []
    sums = table.group_by(keys, use_threads=False).aggregate([
        ("case_id", "count"), ("score", "sum"), ("latency_s", "sum"), ("prompt_tokens", "sum"),
        ("completion_tokens", "sum"), ("cost_usd", "sum"), ("attempt", "max")]).to_pylist()
    by_status = table.group_by([*keys, "status"], use_threads=False).aggregate([("case_id", "count")]).to_pylist()
    counts: dict[tuple, dict] = {}
    for r in by_status:
        counts.setdefault(tuple(r[k] for k in keys), {})[r["status"]] = r["case_id_count"]
    out = []
    for r in sorted(sums, key=lambda r: tuple(str(r[k]) for k in keys)):
        n = r["case_id_count"]
        c = counts.get(tuple(r[k] for k in keys), {})
        out.append({**{k: r[k] for k in keys}, "cases": n,
                    "success_rate": round(c.get("success", 0) / n, 4),
                    "partial_rate": round(c.get("partial", 0) / n, 4),
                    "mean_score": round((r["score_sum"] or 0) / n, 4),
                    "mean_latency_s": round((r["latency_s_sum"] or 0) / n, 4),
                    "prompt_tokens": int(r["prompt_tokens_sum"] or 0),
                    "completion_tokens": int(r["completion_tokens_sum"] or 0),
                    "cost_usd": round(float(r["cost_usd_sum"] or 0.0), 6),
                    "max_attempt": int(r["attempt_max"] or 1),
                    "counts": {s: int(c.get(s, 0)) for s in STATUSES}})
    return out


def summarize(loaded: Loaded) -> dict:
    t = loaded.table
    sets = _groups(t, ["namespace", "run", "uid"]) if t.num_rows else []
    several = len(sets) > 1
    keys = (["namespace", "run", "uid"] if several else [])
    status = {s: 0 for s in STATUSES}
    for r in t.group_by(["status"]).aggregate([("case_id", "count")]).to_pylist() if t.num_rows else []:
        status[r["status"]] = r["case_id_count"]
    final = sum(status[s] for s in FINAL_STATUSES)
    total_tokens = {k: int(pc.sum(t.column(k)).as_py() or 0) for k in ("prompt_tokens", "completion_tokens")} \
        if t.num_rows else {"prompt_tokens": 0, "completion_tokens": 0}
    return {
        "total": t.num_rows,
        "distinct_case_ids": int(pc.count_distinct(t.column("case_id")).as_py()) if t.num_rows else 0,
        "final": final,
        "retryable": status["error"] + status["timeout"],
        "duplicate_rows_dropped": loaded.duplicates,
        "parts": loaded.parts,
        "unreadable_parts": loaded.unreadable,
        "result_sets": [{"namespace": s["namespace"], "run": s["run"], "uid": s["uid"], "cases": s["cases"]}
                        for s in sets],
        "warning": (f"{len(sets)} result sets with different run uids (different settings) under this root; "
                    "they are reported separately, never merged") if several else None,
        "runs": sorted({f"{s['namespace']}/{s['run']}" for s in sets}),
        "counts": {k: v for k, v in status.items() if v},
        "tokens": total_tokens,
        "cost_usd": round(float(pc.sum(t.column("cost_usd")).as_py() or 0.0), 6) if t.num_rows else 0.0,
        "by_model_prompt_type": _groups(t, [*keys, "model", "prompt_type"]),
        "by_task_type": _groups(t, [*keys, "model", "task_type"]),
        "by_model": _groups(t, [*keys, "model"]),
    }


def render_table(summary: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=False, width=None if sys.stdout.isatty() else 160)
    if summary.get("warning"):
        console.print(f"[bold yellow]warning:[/] {summary['warning']}")
    for title, key, first in (("Success by model × prompt type", "by_model_prompt_type", "prompt_type"),
                              ("Success by model × task type", "by_task_type", "task_type")):
        table = Table(title=title)
        lead = ["result set"] if summary.get("warning") else []
        for col in (*lead, "model", first, "cases", "success", "partial", "mean score", "mean latency s",
                    "tokens in", "tokens out", "cost $", "errors", "timeouts"):
            table.add_column(col, justify="left" if col in ("result set", "model", first) else "right")
        for g in summary[key]:
            head = [f"{g['run']}/{g['uid']}"] if lead else []
            table.add_row(*head, g["model"], g[first], str(g["cases"]), f"{g['success_rate']:.0%}",
                          f"{g['partial_rate']:.0%}", f"{g['mean_score']:.2f}", f"{g['mean_latency_s']:.2f}",
                          str(g["prompt_tokens"]), str(g["completion_tokens"]), f"{g['cost_usd']:.4f}",
                          str(g["counts"]["error"]), str(g["counts"]["timeout"]))
        console.print(table)
    console.print(f"{summary['total']} cases, {summary['final']} with a final outcome, {summary['retryable']} to "
                  f"retry (error/timeout); {summary['duplicate_rows_dropped']} superseded or duplicate rows dropped; "
                  f"tokens {summary['tokens']['prompt_tokens']} in / {summary['tokens']['completion_tokens']} out; "
                  f"cost ${summary['cost_usd']:.4f}; counts {summary['counts']}")


def plot(summary: dict, path: str) -> None:
    """Success rate per model × prompt type as grouped bars, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = summary["by_model_prompt_type"]
    models = sorted({g["model"] for g in groups})
    prompts = sorted({g["prompt_type"] for g in groups})
    rate = {(g["model"], g["prompt_type"]): g["success_rate"] for g in groups}
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(prompts) + 2), 4.5))
    try:
        for i, model in enumerate(models):
            xs = [j + i * width for j in range(len(prompts))]
            ax.bar(xs, [rate.get((model, p), 0.0) for p in prompts], width, label=model)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(prompts))])
        ax.set_xticklabels(prompts, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("success rate")
        ax.set_title(f"Success rate by model × prompt type ({summary['total']} cases)")
        if models:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def to_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str)


__all__ = ["PART_RE", "Loaded", "load", "summarize", "render_table", "plot", "to_json", "dedupe"]
