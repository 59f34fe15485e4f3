"""Text-to-SQL answers in the shapes real models write them, for the fake LLM server.

A test registers tables of answers, ``(db_id, question) -> SQL``, under a name
(``server.fake.sql_tables[name] = {...}``) and asks for model ``t2s.<name>.<shape>``: the server
finds the database and the question in the prompt (``Database <db_id>:`` ... ``Question: <text>``)
and answers that SQL in that shape (``mixed``: each question its own shape, the same one every
time, so that one run covers them all). A question without an entry gets prose and no SQL. A
correction round gets the same answer again, as a stubborn model would give.
"""

from __future__ import annotations

import hashlib
import re

_DB = re.compile(r"^Database ([^\s:]+):", re.M)
_QUESTION = re.compile(r"^Question: (.*)$", re.M)

SHAPES = {
    "fence": lambda q: f"```sql\n{q}\n```",
    "fence-sqlite": lambda q: f"```sqlite\n{q};\n```",
    "fence-upper": lambda q: f"Here is the query:\n\n```SQL\n{q}\n```",
    "fence-postgresql": lambda q: f"```postgresql\n{q}\n```\n\nThis returns exactly what the question asks for.",
    "fence-mysql": lambda q: f"Sure! Use this:\n```mysql\n{q};\n```",
    "fence-plain": lambda q: f"```\n{q}\n```",
    "fence-tilde": lambda q: f"~~~sql\n{q}\n~~~",
    "fence-unclosed": lambda q: f"The query:\n```sql\n{q}",
    "several": lambda q: ("A first attempt:\n```sql\nSELECT * FROM sqlite_master WHERE 0\n```\n"
                          f"On reflection, the right query is:\n```sql\n{q}\n```"),
    "think": lambda q: ("<think>\nThe question asks for one table's rows; maybe\n```sql\nSELECT 1\n```\n"
                        f"No: it needs the real tables.\n</think>\n\n```sql\n{q}\n```"),
    "think-bare": lambda q: f"<think>We select the rows the question names, from the right table.</think>\n{q}",
    "reasoning-tag": lambda q: f"<reasoning>Join where needed; filter.</reasoning>\n<sql>{q}</sql>",
    "prefix-sql": lambda q: f"SQL: {q}",
    "prefix-answer": lambda q: f"Answer: {q};",
    "bold-label": lambda q: f"**Final SQL:** {q}",
    "bare": lambda q: q,
    "bare-semicolon-comment": lambda q: f"{q}; -- answers the question",
    "prose-after": lambda q: f"{q}\n\nThis query returns the rows the question asks for.",
    "prose-before": lambda q: f"To answer this we need the tables with the data, joined as needed.\n\nThe query:\n{q}",
    "inline": lambda q: f"The answer is `{q}`.",
}


def shape_for(question: str) -> str:
    names = sorted(SHAPES)
    return names[int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % len(names)]


def answer(tables: dict[str, dict[tuple[str, str], str]], model: str, messages: list[dict]) -> str:
    """The content of the answer of model ``t2s.<table>.<shape>`` to ``messages``."""
    _, table, shape = model.split(".", 2)
    user = next((str(m.get("content") or "") for m in messages if m.get("role") == "user"), "")
    db, questions = _DB.search(user), _QUESTION.findall(user)  # the last: few-shot examples come first
    question = questions[-1].strip() if questions else ""
    sql = tables.get(table, {}).get((db.group(1) if db else "", question))
    if sql is None:
        return "I cannot tell which table holds that."
    if shape == "mixed":
        shape = shape_for(question)
        if shape == "inline" and "`" in sql:
            shape = "fence"
    return SHAPES[shape](sql)
