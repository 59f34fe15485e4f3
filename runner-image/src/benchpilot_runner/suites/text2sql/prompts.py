"""What the model sees for one question: the retrieved schema, values, examples, hint; and the SQL in its answer. Pure."""

from __future__ import annotations

from .extract import extract_sql  # noqa: F401 - the answer's query (re-exported)
from .items import Item, Schema

SYSTEM = ("You write SQLite queries that answer questions about a database. Use only the tables and columns "
          "shown. Answer with exactly one SQL query in a ```sql code block.")
COT = ("First think step by step: which tables hold the answer, how they join, which filters, groups and "
       "order the question asks for. Then give the query.")
CORRECTION_MARK = "The query failed."


def render_schema(schema: Schema, tables: list[str]) -> str:
    lines = []
    for t in tables:
        cols = [c for c in schema.columns if c.table == t]
        body = ",\n".join(f"  {c.name} {c.type}".rstrip() + (f"  -- {c.description}" if c.description else "")
                          for c in cols)
        lines.append(f"CREATE TABLE {t} (\n{body}\n);")
    fks = [f"{a}.{b} = {c}.{d}" for a, b, c, d in schema.foreign_keys if a in tables and c in tables]
    if fks:
        lines.append("Foreign keys: " + "; ".join(fks))
    return "\n".join(lines)


def build_messages(item: Item, prompt_type: str, schema_text: str, values: list[str],
                   examples: list[Item]) -> list[dict]:
    parts = [f"Database {item.db_id}:\n{schema_text}"]
    if values:
        parts.append("Values in the database that may be relevant:\n" + "\n".join(f"- {v}" for v in values))
    if prompt_type == "few_shot" and examples:
        parts.append("Examples:\n" + "\n\n".join(f"Question: {e.question}\n```sql\n{e.sql}\n```" for e in examples))
    if item.evidence:
        parts.append(f"Evidence: {item.evidence}")
    hint = item.hints.get(prompt_type)
    if hint:
        parts.append(hint[0])
    parts.append(f"Question: {item.question}")
    if prompt_type == "cot":
        parts.append(COT)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def correction(error: str) -> dict:
    return {"role": "user", "content": f"{CORRECTION_MARK} SQLite said: {error}\n"
                                       "Fix the query. Answer with the corrected query in a ```sql code block."}
