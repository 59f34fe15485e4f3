"""Reading results back: every part under a URI, deduplicated by case id, summarised.

Deduplication keeps one row per (namespace, run, case_id) — the newest by ``finished_at`` — so a
part written twice, or a case run twice by two attempts, is never counted twice.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from .sink import PART_RE, SCHEMA, open_uri

log = logging.getLogger("benchpilot.report")


@dataclass
class Loaded:
    rows: list[dict]
    parts: int
    raw_rows: int
    unreadable: list[str]

    @property
    def duplicates(self) -> int:
        return self.raw_rows - len(self.rows)


def load(uri: str) -> Loaded:
    """All result rows under ``uri`` (a results root, a run folder, or a shard folder)."""
    fs, root = open_uri(uri)
    if not fs.exists(root):
        raise FileNotFoundError(f"no results at {uri}")
    parts = sorted(p for p in fs.find(root) if PART_RE.match(p.rsplit("/", 1)[-1]))
    tables, unreadable = [], []
    for part in parts:
        try:
            with fs.open(part, "rb") as fh:
                tables.append(pq.read_table(fh).select(list(SCHEMA.names)).cast(SCHEMA))
        except Exception as exc:  # noqa: BLE001 - report what could not be read, go on with the rest
            unreadable.append(part)
            log.warning("unreadable part skipped", extra={"part": part, "error": f"{type(exc).__name__}: {exc}"})
    raw = pa.concat_tables(tables).to_pylist() if tables else []
    best: dict[tuple, dict] = {}
    for row in raw:
        key = (row["namespace"], row["run"], row["case_id"])
        old = best.get(key)
        if old is None or (row["finished_at"] or 0) > (old["finished_at"] or 0):
            best[key] = row
    return Loaded(rows=list(best.values()), parts=len(parts), raw_rows=len(raw), unreadable=unreadable)


def _group(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    out = []
    for key in sorted(groups):
        rs = groups[key]
        n = len(rs)
        by_status = defaultdict(int)
        for r in rs:
            by_status[r["status"]] += 1
        out.append({**dict(zip(keys, key)), "cases": n,
                    "success_rate": round(by_status["success"] / n, 4),
                    "partial_rate": round(by_status["partial"] / n, 4),
                    "mean_score": round(sum(r["score"] or 0 for r in rs) / n, 4),
                    "mean_latency_s": round(sum(r["latency_s"] or 0 for r in rs) / n, 4),
                    "counts": {s: by_status[s] for s in ("success", "partial", "failure", "error", "timeout")}})
    return out


def summarize(loaded: Loaded) -> dict:
    rows = loaded.rows
    ids = [(r["namespace"], r["run"], r["case_id"]) for r in rows]
    status = defaultdict(int)
    for r in rows:
        status[r["status"]] += 1
    return {
        "total": len(rows),
        "distinct_case_ids": len(set(ids)),
        "duplicate_rows_dropped": loaded.duplicates,
        "parts": loaded.parts,
        "unreadable_parts": loaded.unreadable,
        "runs": sorted({f"{r['namespace']}/{r['run']}" for r in rows}),
        "counts": dict(sorted(status.items())),
        "by_model_prompt_type": _group(rows, ("model", "prompt_type")),
        "by_task_type": _group(rows, ("model", "task_type")),
    }


def render_table(summary: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=False, width=None if sys.stdout.isatty() else 130)
    for title, key, first in (("Success by model × prompt type", "by_model_prompt_type", "prompt_type"),
                              ("Success by model × task type", "by_task_type", "task_type")):
        table = Table(title=title)
        for col in ("model", first, "cases", "success", "partial", "mean score", "mean latency s",
                    "errors", "timeouts"):
            table.add_column(col, justify="left" if col in ("model", first) else "right")
        for g in summary[key]:
            table.add_row(g["model"], g[first], str(g["cases"]), f"{g['success_rate']:.0%}",
                          f"{g['partial_rate']:.0%}", f"{g['mean_score']:.2f}", f"{g['mean_latency_s']:.2f}",
                          str(g["counts"]["error"]), str(g["counts"]["timeout"]))
        console.print(table)
    console.print(f"{summary['total']} cases ({summary['distinct_case_ids']} distinct), "
                  f"{summary['duplicate_rows_dropped']} duplicate rows dropped, counts {summary['counts']}")


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
    for i, model in enumerate(models):
        xs = [j + i * width for j in range(len(prompts))]
        ax.bar(xs, [rate.get((model, p), 0.0) for p in prompts], width, label=model)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(prompts))])
    ax.set_xticklabels(prompts, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate")
    ax.set_title(f"Success rate by model × prompt type ({summary['total']} cases)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def to_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str)
