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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import report_tools
from .sink import PART_RE, list_parts, open_uri, read_part
from .spec import FINAL_STATUSES, STATUSES

log = logging.getLogger("benchpilot.report")

READ_COLUMNS = ("namespace", "run", "case_id", "suite", "model", "prompt_type", "task_type", "status", "score",
                "latency_s", "attempt", "prompt_tokens", "completion_tokens", "cost_usd", "finished_at")
EXTRA_PREFIX = "x_"  # a suite's summary flag, read out of the details JSON per part (details are then dropped)
SUCCESS_LABEL = {"text2sql": "exec acc"}  # what success means, per suite, in the table's header


def _summary_fields(suite: str) -> tuple[str, ...]:
    """The boolean ``details`` keys a suite asks the report to average (none for an unknown suite)."""
    from .spec import SpecError, find_suite

    try:
        return tuple(getattr(find_suite(suite), "summary_fields", ()))
    except SpecError:
        return ()


def _flags(table: pa.Table, details: pa.ChunkedArray) -> pa.Table:
    """Append one int8 column per summary flag of the part's suites: 1 where details say true, else 0.
    The JSON is written with sort_keys and default separators, so a flag reads as '"name": true'."""
    suites = [s for s in pc.unique(_plain(table.column("suite"))).to_pylist() if s]
    for flag in dict.fromkeys(f for s in suites for f in _summary_fields(s)):
        hit = pc.match_substring(details, f'"{flag}": true').fill_null(False).cast(pa.int8())
        table = table.append_column(EXTRA_PREFIX + flag, hit)
    return table


@dataclass
class Loaded:
    """Every row read (``raw``) and which of them are superseded (``losers``): one row per case remains."""

    raw: pa.Table
    losers: pa.Array  # row indices of raw that another row of the same case supersedes
    parts: int
    unreadable: list[str]

    @property
    def duplicates(self) -> int:
        return len(self.losers)

    @property
    def table(self) -> pa.Table:
        """One row per case (materialised on demand: summaries never need it)."""
        keep = np.ones(self.raw.num_rows, dtype=bool)
        keep[self.losers.to_numpy()] = False
        return self.raw.filter(pa.array(keep))

    @property
    def rows(self) -> list[dict]:
        """The rows as dicts (for tests and small results only)."""
        return self.table.to_pylist()


def _uid_of(part: str) -> str:
    bits = part.rstrip("/").split("/")
    return bits[-3] if len(bits) >= 3 else ""


def _read(fs, part: str) -> tuple[str, pa.Table | None, str | None]:
    try:
        table = read_part(fs, part, (*READ_COLUMNS, "details"), dictionaries=True)
        details = table.column("details")
        table = report_tools.add_columns(_flags(table.drop_columns(["details"]), details), details)
        uid = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, np.int32)), pa.array([_uid_of(part)]))
        return part, table.append_column("uid", uid), None
    except Exception as exc:  # noqa: BLE001 - report what could not be read, go on with the rest
        return part, None, f"{type(exc).__name__}: {exc}"[:300]


def _plain(column) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def dedupe(table: pa.Table) -> pa.Table:
    """One row per (namespace, run, uid, case_id): final first, then the latest attempt and finish."""
    return table.take(winners(table))


def losers_of(table: pa.Table, winners_: pa.Array) -> pa.Array:
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[winners_.to_numpy()] = True
    return pa.array(np.flatnonzero(~keep))


def winners(table: pa.Table) -> pa.Array:
    """The row indices that :func:`dedupe` keeps, ascending. Sorts a narrow table: key and ranks only."""
    if table.num_rows == 0:
        return pa.array([], pa.int64())
    sets = table.select(["namespace", "run", "uid"]).group_by(["namespace", "run", "uid"]).aggregate([])
    if sets.num_rows == 1:
        key = table.column("case_id")
    else:
        key = pc.binary_join_element_wise(_plain(table.column("namespace")), _plain(table.column("run")),
                                          _plain(table.column("uid")), table.column("case_id"), "/")
    final = pc.is_in(_plain(table.column("status")), value_set=pa.array(list(FINAL_STATUSES))).cast(pa.int8())
    narrow = pa.table({"k": key, "f": final, "a": table.column("attempt").fill_null(1),
                       "t": table.column("finished_at")})
    order = pc.sort_indices(narrow, sort_keys=[("k", "ascending"), ("f", "descending"), ("a", "descending"),
                                               ("t", "descending")])
    del narrow
    keys = key.take(order).combine_chunks() if isinstance(key, pa.ChunkedArray) else key.take(order)
    first = pa.concat_arrays([pa.array([True]), pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))])
    del keys
    chosen = order.filter(first)
    return chosen.take(pc.sort_indices(chosen))


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
        del tables
        losers = losers_of(raw, winners(raw))
    else:
        raw = pa.table({c: pa.array([], pa.string()) for c in (*READ_COLUMNS, "uid")})
        losers = pa.array([], pa.int64())
    return Loaded(raw=raw, losers=losers, parts=len(parts), unreadable=unreadable)


FINE = ["namespace", "run", "uid", "model", "prompt_type", "task_type", "status"]
_SUMS = ("score", "latency_s", "prompt_tokens", "completion_tokens", "cost_usd")


def _sums(table: pa.Table) -> tuple[str, ...]:
    return (*_SUMS, *(c for c in table.column_names if c.startswith(EXTRA_PREFIX)))


def _aggregate(table: pa.Table) -> list[dict]:
    if table.num_rows == 0:
        return []
    return table.group_by(FINE, use_threads=False).aggregate(
        [("case_id", "count"), *[(c, "sum") for c in _sums(table)], ("attempt", "max")]).to_pylist()


def _fine(loaded: Loaded) -> list[dict]:
    """One aggregation over every row, minus the superseded rows' (few): the finest grain every
    summary is made of (a few hundred rows), without copying the million that remain."""
    rows = {tuple(r[k] for k in FINE): r for r in _aggregate(loaded.raw)}
    for r in _aggregate(loaded.raw.take(loaded.losers)) if len(loaded.losers) else []:
        a = rows[tuple(r[k] for k in FINE)]
        a["case_id_count"] -= r["case_id_count"]
        for c in _sums(loaded.raw):
            a[f"{c}_sum"] = (a[f"{c}_sum"] or 0) - (r[f"{c}_sum"] or 0)
    return [r for r in rows.values() if r["case_id_count"] > 0]


def _groups(fine: list[dict], keys: list[str]) -> list[dict]:
    """Per group of ``keys``: cases, rates, means, tokens, cost and counts per status."""
    acc: dict[tuple, dict] = {}
    for r in fine:
        a = acc.setdefault(tuple(r[k] for k in keys), {"n": 0, "max_attempt": 1, "counts": {}, "flags": {},
                                                       **{c: 0.0 for c in _SUMS}})
        a["n"] += r["case_id_count"]
        a["counts"][r["status"]] = a["counts"].get(r["status"], 0) + r["case_id_count"]
        a["max_attempt"] = max(a["max_attempt"], int(r["attempt_max"] or 1))
        for c in _SUMS:
            a[c] += r[f"{c}_sum"] or 0
        for k, v in r.items():
            if k.startswith(EXTRA_PREFIX) and k.endswith("_sum") and v is not None:
                name = k[len(EXTRA_PREFIX):-len("_sum")]
                a["flags"][name] = a["flags"].get(name, 0) + v
    out = []
    for key in sorted(acc, key=lambda k: tuple(str(x) for x in k)):
        a, n = acc[key], acc[key]["n"]
        c = a["counts"]
        out.append({**dict(zip(keys, key)), "cases": n,
                    "success_rate": round(c.get("success", 0) / n, 4),
                    "partial_rate": round(c.get("partial", 0) / n, 4),
                    "mean_score": round(a["score"] / n, 4), "mean_latency_s": round(a["latency_s"] / n, 4),
                    "prompt_tokens": int(a["prompt_tokens"]), "completion_tokens": int(a["completion_tokens"]),
                    "cost_usd": round(float(a["cost_usd"]), 6), "max_attempt": a["max_attempt"],
                    "counts": {s: int(c.get(s, 0)) for s in STATUSES},
                    **{f"{name}_rate": round(v / n, 4) for name, v in sorted(a["flags"].items())}})
    return out


def summarize(loaded: Loaded) -> dict:
    t = loaded.raw
    fine = _fine(loaded)
    sets = _groups(fine, ["namespace", "run", "uid"])
    several = len(sets) > 1
    keys = ["namespace", "run", "uid"] if several else []
    status = {s: 0 for s in STATUSES}
    for r in fine:
        status[r["status"]] += r["case_id_count"]
    final = sum(status[s] for s in FINAL_STATUSES)
    tokens = {k: int(sum(r[f"{k}_sum"] or 0 for r in fine)) for k in ("prompt_tokens", "completion_tokens")}
    suites = sorted(pc.unique(_plain(t.column("suite"))).drop_null().to_pylist()) if "suite" in t.column_names else []
    return {
        "suites": suites,
        "flags": [c[len(EXTRA_PREFIX):] for c in t.column_names if c.startswith(EXTRA_PREFIX)],
        "total": t.num_rows - loaded.duplicates,
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
        "tokens": tokens,
        "cost_usd": round(float(sum(r["cost_usd_sum"] or 0 for r in fine)), 6),
        "by_model_prompt_type": _groups(fine, [*keys, "model", "prompt_type"]),
        "by_task_type": _groups(fine, [*keys, "model", "task_type"]),
        "by_model": _groups(fine, [*keys, "model"]),
        "tool_calling": report_tools.summary(loaded),
    }


def render_table(summary: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=False, width=None if sys.stdout.isatty() else 160)
    if summary.get("warning"):
        console.print(f"[bold yellow]warning:[/] {summary['warning']}")
    suites = summary.get("suites") or []
    label = SUCCESS_LABEL.get(suites[0], "success") if len(suites) == 1 else "success"
    flags = summary.get("flags") or []
    for title, key, first in ((f"{label.capitalize()} by model × prompt type", "by_model_prompt_type", "prompt_type"),
                              (f"{label.capitalize()} by model × task type", "by_task_type", "task_type")):
        table = Table(title=title)
        lead = ["result set"] if summary.get("warning") else []
        for col in (*lead, "model", first, "cases", label, "partial", *flags, "mean score", "mean latency s",
                    "tokens in", "tokens out", "cost $", "errors", "timeouts"):
            table.add_column(col, justify="left" if col in ("result set", "model", first) else "right")
        for g in summary[key]:
            head = [f"{g['run']}/{g['uid']}"] if lead else []
            table.add_row(*head, g["model"], g[first], str(g["cases"]), f"{g['success_rate']:.0%}",
                          f"{g['partial_rate']:.0%}", *(f"{g.get(f + '_rate', 0):.0%}" for f in flags),
                          f"{g['mean_score']:.2f}", f"{g['mean_latency_s']:.2f}",
                          str(g["prompt_tokens"]), str(g["completion_tokens"]), f"{g['cost_usd']:.4f}",
                          str(g["counts"]["error"]), str(g["counts"]["timeout"]))
        console.print(table)
    report_tools.render(summary, console)
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
