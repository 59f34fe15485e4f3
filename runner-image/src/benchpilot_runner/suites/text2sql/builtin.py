"""The built-in text2sql questions, made from templates over the databases of :mod:`.builtin_db`.

A question is made from (task type, difficulty, instance): the instance picks the database and
seeds the choice of tables, columns and values, so a cell holds hundreds of distinct questions;
its gold SQL is written by the template, and the question reads it in plain words.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3

from .builtin_db import DATABASES, Col, DbDef, Table
from .items import Item, substitute_column
from .vocab import VERSION


class _Data:
    """Read access to one generated database while making questions (values, quantiles)."""

    def __init__(self, db: DbDef, conn: sqlite3.Connection, values: dict | None = None):
        self.db, self.conn = db, conn
        self._values: dict = {} if values is None else values  # (table, column) -> sorted distinct values

    def values(self, table: str, col: str) -> list:
        key = (table, col)
        if key not in self._values:
            self._values[key] = [r[0] for r in self.conn.execute(
                f'SELECT DISTINCT "{col}" FROM {table} WHERE "{col}" IS NOT NULL ORDER BY 1')]
        return self._values[key]

    def quantile(self, table: str, col: str, q: float):
        vals = self.values(table, col)
        v = vals[min(len(vals) - 1, int(q * len(vals)))]
        return round(v, 1) if isinstance(v, float) else v


def _lit(v) -> str:
    return "'" + str(v).replace("'", "''") + "'" if isinstance(v, str) else repr(v)


def _q(s: str) -> str:
    return s[0].upper() + s[1:]


class _Gen:
    """Templates: each picks tables, columns and values with ``rng`` and returns (question, sql, meta)."""

    def __init__(self, data: _Data, rng: random.Random):
        self.d, self.db, self.rng = data, data.db, rng

    def table_with(self, *roles: str) -> Table:
        return self.rng.choice([t for t in self.db.tables if all(t.by_role(r) for r in roles)])

    def link(self, child_roles=(), parent_roles=()) -> tuple[Table, Col, Table]:
        options = [(self.db.table(c), next(x for x in self.db.table(c).cols if x.name == f), self.db.table(p))
                   for c, f, p in self.db.links()]
        options = [(c, f, p) for c, f, p in options if all(c.by_role(r) for r in child_roles)
                   and all(p.by_role(r) for r in parent_roles)]
        return self.rng.choice(options)

    def value(self, t: Table, c: Col):
        return self.rng.choice(self.d.values(t.name, c.name))

    def pick(self, t: Table, *roles: str) -> Col:
        return self.rng.choice(t.by_role(*roles))

    # -- filter
    def filter_simple(self):
        t = self.table_with("cat")
        c = self.pick(t, "cat")
        v = self.value(t, c)
        return (f"List the {t.label.desc.removeprefix('the ')} of every one of the {t.noun} whose {c.desc} is {v}.",
                f"SELECT {t.label.name} FROM {t.name} WHERE {c.name} = {_lit(v)}", {"filter": (t, c)})

    def filter_moderate(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        v, x = self.value(t, c), self.d.quantile(t.name, n.name, 0.4)
        return (f"Which {t.noun} have {c.desc} {v} and a {n.desc} above {x}? Give their "
                f"{t.label.desc.removeprefix('the ')} and {n.desc}, highest {n.desc} first.",
                f"SELECT {t.label.name}, {n.name} FROM {t.name} WHERE {c.name} = {_lit(v)} AND {n.name} > {x} "
                f"ORDER BY {n.name} DESC, {t.label.name}", {"filter": (t, c)})

    def filter_challenging(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        vals = self.d.values(t.name, c.name)
        v1, v2 = self.rng.sample(vals, 2) if len(vals) > 1 else (vals[0], vals[0])
        lo, hi = self.d.quantile(t.name, n.name, 0.2), self.d.quantile(t.name, n.name, 0.8)
        return (f"Among the {t.noun} whose {c.desc} is {v1} or {v2} and whose {n.desc} is between {lo} and {hi}, "
                f"give the five with the lowest {n.desc} (their {t.label.desc.removeprefix('the ')}).",
                f"SELECT {t.label.name} FROM {t.name} WHERE ({c.name} = {_lit(v1)} OR {c.name} = {_lit(v2)}) "
                f"AND {n.name} BETWEEN {lo} AND {hi} ORDER BY {n.name}, {t.label.name} LIMIT 5",
                {"filter": (t, c)})

    # -- join
    def join_simple(self):
        c, f, p = self.link(parent_roles=("cat",))
        pc = self.pick(p, "cat")
        v = self.value(p, pc)
        return (f"List the {c.label.desc.removeprefix('the ')} of the {c.noun} whose {f.desc.removeprefix('the ')} "
                f"has {pc.desc} {v}.",
                f"SELECT {c.name}.{c.label.name} FROM {c.name} JOIN {p.name} ON {c.name}.{f.name} = {p.name}.id "
                f"WHERE {p.name}.{pc.name} = {_lit(v)}", {"filter": (p, pc), "join": (c, f, p)})

    def join_moderate(self):
        chains = [(a, f1, b, f2, c) for a, f1, b in self.db.links() for b2, f2, c in self.db.links() if b2 == b]
        chains = [x for x in chains if self.db.table(x[4]).by_role("cat")]
        a, f1, b, f2, c = (self.db.table(x) if i % 2 == 0 else x for i, x in enumerate(self.rng.choice(chains)))
        cc = self.pick(c, "cat")
        v = self.value(c, cc)
        return (f"How many different {a.noun} are linked, through their {b.noun}, to {c.noun} with {cc.desc} {v}? "
                f"List the distinct {a.label.desc.removeprefix('the ')}.",
                f"SELECT DISTINCT {a.name}.{a.label.name} FROM {a.name} JOIN {b.name} ON {a.name}.{f1} = {b.name}.id "
                f"JOIN {c.name} ON {b.name}.{f2} = {c.name}.id WHERE {c.name}.{cc.name} = {_lit(v)}",
                {"filter": (c, cc), "join": (a, next(x for x in a.cols if x.name == f1), b)})

    def join_challenging(self):
        c, f, p = self.link(child_roles=("num",), parent_roles=("cat",))
        pc, cn = self.pick(p, "cat"), self.pick(c, "num")
        v, x = self.value(p, pc), self.d.quantile(c.name, cn.name, 0.5)
        return (f"For {p.noun} with {pc.desc} {v}, find their {c.noun} with a {cn.desc} above {x}; give the "
                f"{p.label.desc.removeprefix('the ')}, the {c.label.desc.removeprefix('the ')} and the {cn.desc}, "
                f"the three largest {cn.desc} first.",
                f"SELECT {p.name}.{p.label.name}, {c.name}.{c.label.name}, {c.name}.{cn.name} FROM {c.name} "
                f"JOIN {p.name} ON {c.name}.{f.name} = {p.name}.id WHERE {p.name}.{pc.name} = {_lit(v)} "
                f"AND {c.name}.{cn.name} > {x} ORDER BY {c.name}.{cn.name} DESC, {c.name}.id LIMIT 3",
                {"filter": (p, pc), "join": (c, f, p)})

    # -- aggregate
    def aggregate_simple(self):
        t = self.table_with("cat")
        c = self.pick(t, "cat")
        v = self.value(t, c)
        return (f"How many {t.noun} have {c.desc} {v}?",
                f"SELECT COUNT(*) FROM {t.name} WHERE {c.name} = {_lit(v)}", {"filter": (t, c)})

    def aggregate_moderate(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        fn, word = self.rng.choice((("AVG", "average"), ("MAX", "highest"), ("SUM", "total")))
        return (f"For each {c.desc}, what is the {word} {n.desc} of the {t.noun}?",
                f"SELECT {c.name}, {fn}({n.name}) FROM {t.name} GROUP BY {c.name}", {"filter": (t, c)})

    def aggregate_challenging(self):
        c, f, p = self.link()
        counts = [r[0] for r in self.d.conn.execute(
            f"SELECT COUNT(*) FROM {c.name} WHERE {f.name} IS NOT NULL GROUP BY {f.name} ORDER BY 1")]
        k = counts[len(counts) // 2] if counts else 1
        return (f"Which {p.noun} have more than {k} {c.noun}? Give the {p.label.desc.removeprefix('the ')} and "
                f"the number of {c.noun}.",
                f"SELECT {p.name}.{p.label.name}, COUNT(*) FROM {c.name} JOIN {p.name} ON {c.name}.{f.name} = "
                f"{p.name}.id GROUP BY {p.name}.id HAVING COUNT(*) > {k}",
                {"filter": (p, p.label), "join": (c, f, p)})

    # -- nested
    def nested_simple(self):
        t = self.table_with("num")
        n = self.pick(t, "num")
        return (f"Which {t.noun} have a {n.desc} above the average over all {t.noun}? Give their "
                f"{t.label.desc.removeprefix('the ')}.",
                f"SELECT {t.label.name} FROM {t.name} WHERE {n.name} > (SELECT AVG({n.name}) FROM {t.name})",
                {"filter": (t, n)})

    def nested_moderate(self):
        c, f, p = self.link(child_roles=("cat",))
        cc = self.pick(c, "cat")
        v = self.value(c, cc)
        return (f"Which {p.noun} have at least one of their {c.noun} with {cc.desc} {v}? Give their "
                f"{p.label.desc.removeprefix('the ')}.",
                f"SELECT {p.label.name} FROM {p.name} WHERE id IN (SELECT {f.name} FROM {c.name} WHERE "
                f"{cc.name} = {_lit(v)})", {"filter": (c, cc), "join": (c, f, p)})

    def nested_challenging(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        return (f"Which {t.noun} have a {n.desc} above the average {n.desc} of the {t.noun} with the same {c.desc}? "
                f"Give their {t.label.desc.removeprefix('the ')}.",
                f"SELECT a.{t.label.name} FROM {t.name} AS a WHERE a.{n.name} > (SELECT AVG(b.{n.name}) FROM "
                f"{t.name} AS b WHERE b.{c.name} = a.{c.name})", {"filter": (t, c)})

    # -- set operations
    def set_operation_simple(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        v, x = self.value(t, c), self.d.quantile(t.name, n.name, 0.85)
        return (f"List the {t.label.desc.removeprefix('the ')} of the {t.noun} that have {c.desc} {v}, together "
                f"with those whose {n.desc} is above {x} (each name once).",
                f"SELECT {t.label.name} FROM {t.name} WHERE {c.name} = {_lit(v)} UNION SELECT {t.label.name} "
                f"FROM {t.name} WHERE {n.name} > {x}", {"filter": (t, c)})

    def set_operation_moderate(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        lo, hi = self.d.quantile(t.name, n.name, 0.3), self.d.quantile(t.name, n.name, 0.7)
        return (f"Which values of {c.desc} occur both among {t.noun} with a {n.desc} below {lo} and among "
                f"{t.noun} with a {n.desc} above {hi}?",
                f"SELECT {c.name} FROM {t.name} WHERE {n.name} < {lo} INTERSECT SELECT {c.name} FROM {t.name} "
                f"WHERE {n.name} > {hi}", {"filter": (t, n)})

    def set_operation_challenging(self):
        c, f, p = self.link(child_roles=("cat",))
        cc = self.pick(c, "cat")
        v = self.value(c, cc)
        return (f"Which {p.noun} have no {c.noun} with {cc.desc} {v}? Give their "
                f"{p.label.desc.removeprefix('the ')}.",
                f"SELECT {p.label.name} FROM {p.name} EXCEPT SELECT {p.name}.{p.label.name} FROM {p.name} JOIN "
                f"{c.name} ON {c.name}.{f.name} = {p.name}.id WHERE {c.name}.{cc.name} = {_lit(v)}",
                {"filter": (c, cc), "join": (c, f, p)})


def _hints(gen: _Gen, sql: str, meta: dict) -> dict:
    """The misleading hints of a question: (text, the SQL a model that believes it writes)."""
    rng = gen.rng
    t, col = meta["filter"]
    others = [c for c in t.cols if c.name != col.name and c.role in ("cat", "num", "label", "date")]
    wrong = rng.choice(others) if others else t.label
    column = (f"Hint: the {col.desc} is stored in column {t.name}.{wrong.name}.",
              substitute_column(sql, col.name, wrong.name))
    if "join" in meta:
        c, f, p = meta["join"]
        fake = f"{c.name}.id = {p.name}.id"
        join = (f"Hint: join {c.name} to {p.name} on {fake}.", sql.replace(f"{c.name}.{f.name} = {p.name}.id", fake))
    else:
        c, f, _ = next(((gen.db.table(a), x, b) for a, x, b in gen.db.links() if b == t.name),
                       (None, None, None))
        if c is None:
            join = (f"Hint: {t.name} must be joined with itself on {t.name}.id = {t.name}.id + 1.", None)
        else:
            join = (f"Hint: this question needs {t.name} joined with {c.name} on {c.name}.id = {t.name}.id.", None)
    # a hint whose SQL is the gold SQL leads nowhere: the simulated model then errs in its own way
    return {k: (text, None if misled == sql else misled) for k, (text, misled) in
            {"misleading_column_hint": column, "misleading_join_hint": join}.items()}


_TEMPLATE = {(shape, diff): getattr(_Gen, f"{shape}_{diff}")
             for shape in ("filter", "join", "aggregate", "nested", "set_operation")
             for diff in ("simple", "moderate", "challenging")}


def question_seed(task_type: str, difficulty: str, instance: int) -> int:
    return int(hashlib.sha256(f"{VERSION}|{task_type}|{difficulty}|{instance}".encode()).hexdigest()[:12], 16)


def make_question(task_type: str, difficulty: str, instance: int, conns: dict[str, sqlite3.Connection],
                  values: dict | None = None) -> Item:
    """The question of (task type, difficulty, instance): its database is DATABASES[instance % 5].
    ``values``, kept by the caller, holds the distinct values read so far (they never change)."""
    db = DATABASES[instance % len(DATABASES)]
    rng = random.Random(question_seed(task_type, difficulty, instance))
    gen = _Gen(_Data(db, conns[db.db_id], None if values is None else values.setdefault(db.db_id, {})), rng)
    text, sql, meta = _TEMPLATE[task_type, difficulty](gen)
    return Item(db.db_id, _q(text), sql, task_type, difficulty,
                question_id=f"{task_type}-{difficulty}-{instance}", hints=_hints(gen, sql, meta))
