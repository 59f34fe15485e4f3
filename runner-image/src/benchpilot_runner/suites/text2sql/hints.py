"""Misleading hints for a dataset of one's own (the built-in questions make their own). Pure."""

from __future__ import annotations

import re

from .items import Item, Schema, strip_strings, substitute_column


def generic_hints(item: Item, schema: Schema) -> dict:
    """Misleading hints for any dataset: a wrong column of a table the gold SQL uses; a wrong join."""
    sql = item.sql
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", strip_strings(sql)))
    lower = {w.lower() for w in words}
    used_tables = [t for t in schema.tables if t.lower() in lower]
    hints: dict = {}
    for t in used_tables:
        cols = [c for c in schema.columns if c.table == t]
        used = [c for c in cols if c.name.lower() in lower]
        spare = [c for c in cols if c.name.lower() not in lower and re.fullmatch(r"\w+", c.name)]
        if used and spare and re.fullmatch(r"\w+", used[0].name):
            a, b = used[0], spare[0]
            misled = substitute_column(sql, a.name, b.name)
            hints["misleading_column_hint"] = (f"Hint: the {a.description or a.name} is stored in column "
                                               f"{t}.{b.name}.", None if misled == sql else misled)
            break
    hints.setdefault("misleading_column_hint", ("Hint: the answer is in the first column of the first table.", None))
    if len(used_tables) >= 2:
        a, b = used_tables[:2]
        hints["misleading_join_hint"] = (f"Hint: join {a} and {b} on their first columns.", None)
    elif used_tables:
        other = next((t for t in schema.tables if t != used_tables[0]), used_tables[0])
        hints["misleading_join_hint"] = (f"Hint: this question needs {used_tables[0]} joined with {other}.", None)
    else:
        hints["misleading_join_hint"] = ("Hint: join every table on its first column.", None)
    return hints
