"""The report's view of tool calling, per model: its mode (``toolCalling``), and how often its answers
held a call written as text in native mode (``content_tool_call``: the model or its server does not
use ``tool_calls``; ``toolCalling: prompt`` would read them) or a call that could not be read in
prompt mode (``unreadable_call``). Read from the rows' ``details`` with Arrow substring matches per
part (the JSON is written with sorted keys and default separators), so a results folder is enough.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

MODE, CONTENT, UNREADABLE = "tool_calling", "tc_content_call", "tc_unreadable_call"


def add_columns(table: pa.Table, details: pa.ChunkedArray) -> pa.Table:
    """The part's rows with their mode (null where the suite recorded none) and the two flags as int8;
    a part without any mode is returned as it is (concatenation fills the columns with nulls)."""
    def has(text: str) -> pa.ChunkedArray:
        return pc.match_substring(details, text)

    if details.null_count == len(details) or not pc.any(has('"tool_calling": "')).as_py():
        return table  # simulated models, other suites (most rows of a big sweep): the columns come as nulls
    none = pa.scalar(None, pa.string())
    mode = pc.if_else(has('"tool_calling": "prompt"'), "prompt", pc.if_else(has('"tool_calling": "native"'),
                                                                            "native", none))
    table = table.append_column(MODE, mode.cast(pa.dictionary(pa.int32(), pa.string())))
    table = table.append_column(CONTENT, has('"content_tool_call": true').fill_null(False).cast(pa.int8()))
    return table.append_column(UNREADABLE, has('"unreadable_call": true').fill_null(False).cast(pa.int8()))


def summary(loaded) -> list[dict]:
    """Per model and mode (one row per case, superseded rows left out): cases and the two rates."""
    raw = loaded.raw
    if MODE not in raw.column_names or raw.column(MODE).null_count == raw.num_rows:
        return []
    keep = pc.is_valid(raw.column(MODE))  # superseded rows and rows without a mode are left out
    if len(loaded.losers):
        superseded = pc.is_in(pa.array(range(raw.num_rows)), value_set=loaded.losers)
        keep = pc.and_(keep, pc.invert(superseded))
    rows = raw.select(["model", MODE, CONTENT, UNREADABLE]).filter(keep)
    if rows.num_rows == 0:
        return []
    rows = rows.set_column(2, CONTENT, rows.column(CONTENT).fill_null(0)).set_column(
        3, UNREADABLE, rows.column(UNREADABLE).fill_null(0))
    groups = rows.group_by(["model", MODE], use_threads=False).aggregate(
        [(MODE, "count"), (CONTENT, "sum"), (UNREADABLE, "sum")]).to_pylist()
    out = []
    for g in sorted(groups, key=lambda g: (str(g["model"]), str(g[MODE]))):
        n = g[f"{MODE}_count"]
        out.append({"model": g["model"], "mode": g[MODE], "cases": n,
                    "content_tool_call_rate": round(g[f"{CONTENT}_sum"] / n, 4) if g[MODE] == "native" else None,
                    "unreadable_call_rate": round(g[f"{UNREADABLE}_sum"] / n, 4) if g[MODE] == "prompt" else None})
    return out


def render(summary_: dict, console) -> None:
    """A small table, printed only when some model talked to an endpoint (simulated models have no mode)."""
    groups = summary_.get("tool_calling") or []
    if not groups:
        return
    from rich.table import Table

    table = Table(title="Tool calling by model")
    for col in ("model", "mode", "cases", "calls in text (native)", "unreadable calls (prompt)"):
        table.add_column(col, justify="left" if col in ("model", "mode") else "right")
    for g in groups:
        content, unreadable = g["content_tool_call_rate"], g["unreadable_call_rate"]
        table.add_row(str(g["model"]), str(g["mode"]), str(g["cases"]),
                      "-" if content is None else f"{content:.0%}", "-" if unreadable is None else f"{unreadable:.0%}")
    console.print(table)
