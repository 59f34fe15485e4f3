"""Predictions derived from Spider's gold queries, with the verdict each official rule gives them.

Each family rewrites a gold query the way a model's answer differs from it in practice; a
family applies to the gold queries it can rewrite safely (None otherwise). The expected verdicts
come from the rules' definitions, never from benchpilot's scorer: by construction where the
family fixes it (a column permutation is allowed by Spider's rule; DISTINCT is removed from both
queries; a set does not see duplicates), else from the results of the two queries, run here with
sqlite3 and compared by the rule as its evaluator states it (brute force over column permutations
for Spider's rule, Python sets for BIRD's).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections import Counter

FAMILIES = ("gold", "permuted", "distinct_added", "distinct_dropped", "aliases", "join_swapped", "in_to_exists",
            "order_added", "order_dropped", "wrong", "empty_wider")
_SET_OP = re.compile(r"\b(UNION|INTERSECT|EXCEPT)\b", re.I)
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def _plain(sql: str) -> str:
    """``sql`` with its literals blanked (the same length), for searching code only."""
    return _STRINGS.sub(lambda m: "'" + "_" * (len(m.group()) - 2) + "'", sql)


def _single(sql: str) -> bool:
    return not _SET_OP.search(_plain(sql))


def _select_items(sql: str) -> list[tuple[int, int]] | None:
    """Spans of the top SELECT's items (a single query, items not *), else None."""
    plain = _plain(sql)
    m = re.match(r"\s*SELECT\s+(DISTINCT\s+)?", plain, re.I)
    if not m:
        return None
    depth, start, spans = 0, m.end(), []
    for i in range(m.end(), len(plain)):
        ch = plain[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and (ch == "," or re.match(r"\s+FROM\b", plain[i:], re.I)):
            spans.append((start, i))
            if ch != ",":
                break
            start = i + 1
    if not spans or any(re.fullmatch(r"\s*(\w+\.)?\*\s*", sql[a:b]) for a, b in spans):
        return None
    return spans


def derive(family: str, sql: str, index: int = 0) -> str | None:
    """The family's rewrite of gold query ``sql`` (``index`` varies the wrong queries), or None."""
    plain, low = _plain(sql), _plain(sql).lower()
    single = _single(sql)
    if family == "gold":
        return sql
    if family == "permuted":
        spans = _select_items(sql) if single and not re.search(r"\b(ORDER|GROUP) BY\s+\d", plain, re.I) else None
        if not spans or len(spans) < 2:
            return None
        items = [sql[a:b].strip() for a, b in spans]
        return sql[:spans[0][0]] + ", ".join(reversed(items)) + " " + sql[spans[-1][1]:].lstrip()
    if family == "distinct_added":
        if not single or "distinct" in low:
            return None
        return re.sub(r"^\s*SELECT\s+", "SELECT DISTINCT ", sql, count=1, flags=re.I)
    if family == "distinct_dropped":
        m = re.match(r"\s*SELECT\s+DISTINCT\s+", plain, re.I)
        return "SELECT " + sql[m.end():] if m else None
    if family == "aliases":
        if not re.search(r"\bT\d\b", plain):
            return None
        return "".join(re.sub(r"\b[Tt](\d)\b", r"alias_\1", part) if not part.startswith(("'", '"')) else part
                       for part in re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", sql))
    if family == "join_swapped":
        return _join_swapped(sql, plain, low, single)
    if family == "in_to_exists":
        return _in_to_exists(sql, low, single)
    if family == "order_added":
        if not single or "order by" in low or "limit" in low or low.count("select") != 1:
            return None
        return f"{sql.rstrip().rstrip(';')} ORDER BY 1"
    if family == "order_dropped":
        m = re.search(r"\s+ORDER\s+BY\s+.*$", plain, re.I | re.S)
        if not single or not m or "limit" in low or "distinct" in low or low.count("order by") != 1 \
                or low.count("select") != 1:
            return None
        return sql[:m.start()]
    if family == "wrong":
        return None if "distinct" in low else _wrong(sql, plain, index)
    if family == "empty_wider":
        spans = _select_items(sql) if single and "group by" not in low else None
        if not spans:
            return None
        return sql[:spans[-1][1]].rstrip() + ", " + sql[spans[0][0]:spans[0][1]].strip() + " " + \
            sql[spans[-1][1]:].lstrip()
    raise ValueError(family)


def _join_swapped(sql: str, plain: str, low: str, single: bool) -> str | None:
    if not single or "order by" in low or "limit" in low or low.count(" join ") != 1 or _select_items(sql) is None \
            or re.search(r"\b(left|right|outer|natural|cross)\b", low):
        return None
    m = re.search(r"\bFROM\s+(\w+(?:\s+AS\s+\w+)?)\s+JOIN\s+(\w+(?:\s+AS\s+\w+)?)\s+ON\b", plain, re.I)
    if not m or "(" in plain[:m.start()]:
        return None
    return sql[:m.start(1)] + m.group(2) + " JOIN " + m.group(1) + sql[m.end(2):]


def _in_to_exists(sql: str, low: str, single: bool) -> str | None:
    """``x [NOT] IN (SELECT c FROM u [WHERE ...])`` as ``[NOT] EXISTS (SELECT 1 FROM u WHERE u.c = t.x ...)``."""
    m = re.fullmatch(r"\s*(SELECT .+? FROM (\w+)) WHERE (\w+) (NOT )?IN \(\s*SELECT (\w+) FROM (\w+)(?: WHERE ([^()]+))?\s*\)"
                     r"\s*", sql, re.I | re.S)
    if not single or not m or "distinct" in low or "order by" in low or "limit" in low \
            or " join " in m.group(1).lower() or m.group(2).lower() == m.group(6).lower() or "." in (m.group(7) or ""):
        return None
    head, outer, col, negated, inner_col, inner, cond = m.groups()
    extra = f" AND ({cond.strip()})" if cond else ""
    return (f"{head} WHERE {negated or ''}EXISTS (SELECT 1 FROM {inner} WHERE {inner}.{inner_col} = {outer}.{col}"
            f"{extra})")


_MUTATIONS = (
    (r" > ", " < "), (r" < ", " > "), (r" >= ", " <= "), (r"\bmax\(", "min("), (r"\bmin\(", "max("),
    (r"\bavg\(", "sum("), (r"\bDESC\b", "ASC"), (r"\bASC\b", "DESC"), (r"LIMIT (\d+)", "LIMIT 100"),
    (r" AND ", " OR "), (r"\bcount\(\*\)", "count(*) + 1"),
)


def _wrong(sql: str, plain: str, index: int) -> str | None:
    """A plausible wrong query: a flipped comparison, another aggregate, order or limit, OR for AND."""
    n = len(_MUTATIONS)
    for k in range(n):
        pattern, repl = _MUTATIONS[(index + k) % n]
        m = re.search(pattern, plain, re.I)
        if m:
            return sql[:m.start()] + re.sub(pattern, repl, sql[m.start():m.end()], flags=re.I) + sql[m.end():]
    return None


# ----------------------------------------------------------------------------- the rules, by definition


def run(db: str, sql: str) -> tuple[tuple, int] | None:
    """(rows, width) of ``sql`` on ``db`` (read-only), or None when it fails."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode(errors="ignore")
    try:
        cur = conn.execute(sql)
        return tuple(cur.fetchall()), len(cur.description or ())
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def spider_by_definition(gold: tuple, pred: tuple, ordered: bool) -> bool:
    """test-suite-sql-eval's result_eq, as its code states it: both empty -> equal; else same row
    and column counts, the rows' values sorted by str(value)+str(type) must match (lists when
    ordered, sets when not), and some permutation of the predicted columns gives the gold rows
    (a list, or a bag)."""
    if not gold and not pred:
        return True
    if len(gold) != len(pred) or len(gold[0]) != len(pred[0]):
        return False
    loose = [[tuple(sorted(r, key=lambda v: str(v) + str(type(v)))) for r in x] for x in (gold, pred)]
    if (loose[0] != loose[1]) if ordered else (set(loose[0]) != set(loose[1])):
        return False
    for perm in itertools.permutations(range(len(gold[0]))):
        rows = [tuple(r[i] for i in perm) for r in pred]
        if (rows == list(gold)) if ordered else (Counter(rows) == Counter(gold)):
            return True
    return False


def strict_by_definition(gold: tuple, gw: int, pred: tuple, pw: int, ordered: bool) -> bool:
    """benchpilot's strict rule: same width; rows (floats to 6 places) as a multiset, a list when ordered."""
    def r6(rows):
        return [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows]
    return gw == pw and ((r6(gold) == r6(pred)) if ordered else Counter(r6(gold)) == Counter(r6(pred)))


def top_level_order(sql: str) -> bool:
    depth, plain = 0, _plain(sql).upper()
    flat = []
    for ch in plain:
        depth += ch == "("
        if depth == 0:
            flat.append(ch)
        depth -= ch == ")"
    return bool(re.search(r"\bORDER\s+BY\b", "".join(flat)))


def expected(family: str, gold_sql: str, pred_sql: str, db: str) -> dict[str, bool] | None:
    """The verdict of each mode for ``pred_sql`` against ``gold_sql``; None when the family cannot
    fix one (its rewrite failed to run)."""
    gold, pred = run(db, gold_sql), run(db, pred_sql)
    if gold is None:
        return None
    if pred is None:
        return {"spider": False, "bird": False, "strict": False}
    (g, gw), (p, pw) = gold, pred
    strict = strict_by_definition(g, gw, p, pw, top_level_order(gold_sql))
    bird = set(g) == set(p)
    by_construction = {
        "gold": True, "permuted": True, "distinct_added": True, "distinct_dropped": True, "aliases": True,
        "join_swapped": True, "order_added": True, "empty_wider": not g,
    }
    if family in by_construction:
        spider = by_construction[family]
        if family in ("aliases", "join_swapped", "order_added"):
            assert Counter(g) == Counter(p), (family, gold_sql, pred_sql)  # the rewrite is equivalent
    else:  # order_dropped, wrong, in_to_exists (NOT IN and NOT EXISTS differ on NULLs): the queries as
        # written are what Spider runs (no DISTINCT in them)
        spider = spider_by_definition(g, p, "order by" in gold_sql.lower())
    return {"spider": spider, "bird": bird, "strict": strict}
