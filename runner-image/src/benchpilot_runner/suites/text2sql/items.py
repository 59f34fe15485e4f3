"""What a question and a schema are, and the shape of a SQL query. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    db_id: str
    question: str
    sql: str
    task_type: str
    difficulty: str
    question_id: str
    evidence: str = ""
    hardness: str = ""  # Spider's level (easy, medium, hard, extra) for a Spider-style question
    hints: dict = field(default_factory=dict, compare=False)  # prompt type -> (text, misled SQL or None)


# ----------------------------------------------------------------------------- SQL shape (pure)

_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def strip_strings(sql: str) -> str:
    return _STRING.sub("''", sql)


def _top_level(sql: str) -> str:
    """``sql`` without its parenthesised parts (subqueries, argument lists)."""
    out, depth = [], 0
    for ch in sql:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def classify(sql: str) -> str:
    """The task type of a gold query: set_operation > nested > aggregate > join > filter."""
    s = strip_strings(sql).upper()
    if re.search(r"\b(UNION|INTERSECT|EXCEPT)\b", s):
        return "set_operation"
    if re.search(r"\(\s*SELECT\b", s):
        return "nested"
    if re.search(r"\bGROUP\s+BY\b|\b(COUNT|SUM|AVG|MIN|MAX)\s*\(", s):
        return "aggregate"
    if re.search(r"\bJOIN\b", s) or re.search(r"\bFROM\s+\w+(\s+(AS\s+)?\w+)?\s*,", _top_level(s)):
        return "join"
    return "filter"


def ordered(sql: str) -> bool:
    """Whether the query's result order is part of its answer (a top-level ORDER BY)."""
    return bool(re.search(r"\bORDER\s+BY\b", _top_level(strip_strings(sql)).upper()))


# ----------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    type: str
    description: str
    values: tuple[str, ...]  # sampled distinct values (text columns)


@dataclass(frozen=True)
class Schema:
    db_id: str
    tables: tuple[str, ...]
    columns: tuple[Column, ...]
    foreign_keys: tuple[tuple[str, str, str, str], ...]  # (table, column, ref table, ref column)

    def column_texts(self) -> list[tuple[str, str]]:
        return [(f"{c.table}.{c.name}", f"{c.table}.{c.name} ({c.type or 'any'}): {c.description or c.name}")
                for c in self.columns]

    def value_texts(self) -> list[tuple[str, str]]:
        return [(f"{c.table}.{c.name}={v}", f"{c.table}.{c.name}: {v}") for c in self.columns for v in c.values]


def substitute_column(sql: str, column: str, other: str) -> str:
    """``sql`` with every use of the column name ``column`` replaced by ``other`` (what a hint misleads to)."""
    return re.sub(rf"\b{re.escape(column)}\b", other, sql)
