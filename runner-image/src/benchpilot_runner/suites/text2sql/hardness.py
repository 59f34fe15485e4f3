"""Spider's hardness levels (easy, medium, hard, extra), by its official rule. Pure.

Spider's ``evaluation.py`` (``Evaluator.eval_hardness``) rates a gold query from counts over its
parse (``process_sql.get_sql``); this module takes the same counts from the query's tokens:

- component 1: a WHERE, a GROUP BY, an ORDER BY, a LIMIT (one each), one per table joined after
  the first, one per OR and one per LIKE among the conditions (ON, WHERE, HAVING);
- component 2: one per subquery used as a condition's value, plus one for a set operation
  (UNION, INTERSECT, EXCEPT) after the query;
- others: one when the aggregations exceed one, one for several selected columns, one for
  several WHERE conditions, one for several GROUP BY columns. The official count of
  aggregations reads the first field of each condition, which is its NOT flag, and the
  connectives of HAVING (``'and'`` is not ``0``): so it counts aggregated columns in SELECT,
  GROUP BY and ORDER BY, plus negated WHERE and HAVING conditions and HAVING's AND/ORs, and not
  the aggregates inside conditions. That is what it does, so that is what is counted here.

easy: comp1 <= 1, others 0, comp2 0; medium: (others <= 2, comp1 <= 1, comp2 0) or (comp1 <= 2,
others < 2, comp2 0); hard: (others > 2, comp1 <= 2, comp2 0) or (2 < comp1 <= 3, others <= 2,
comp2 0) or (comp1 <= 1, others 0, comp2 <= 1); extra: anything else. Only the top query is
counted (a set operation's right-hand query, a subquery in FROM, do not add their own clauses).
"""

from __future__ import annotations

from dataclasses import dataclass

from .sqltext import Token, code, tokenize
from .vocab import DIFFICULTIES

# Spider's levels as the suite's difficulties (a file's own names for them too)
SPIDER_LEVELS = {"easy": "simple", "medium": "moderate", "hard": "challenging", "extra": "challenging"}
_LEVEL_NAMES = {"extra hard": "extra", "extra_hard": "extra", "extra-hard": "extra"}
AGGREGATES = ("MAX", "MIN", "COUNT", "SUM", "AVG")
SET_OPS = ("UNION", "INTERSECT", "EXCEPT")
_CLAUSES = ("SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT")


@dataclass
class _Counts:
    comp1: int = 0
    comp2: int = 0
    aggregations: int = 0
    others: int = 0


def levels(given, sql: str) -> tuple[str, str]:
    """A question's (difficulty, Spider hardness or ""): its file's ``difficulty``/``hardness`` when
    that is one of the suite's (BIRD's) levels or Spider's, else Spider's rule applied to its SQL."""
    level = " ".join(given.lower().split()) if isinstance(given, str) else ""
    if level in DIFFICULTIES:
        return level, ""
    level = _LEVEL_NAMES.get(level, level)
    if level not in SPIDER_LEVELS:
        level = spider_hardness(sql)
    return SPIDER_LEVELS[level], level


def spider_hardness(sql: str) -> str:
    """easy | medium | hard | extra, by Spider's rule (see the module's docstring)."""
    c = _count(code(tokenize(sql)))
    c1, c2, o = c.comp1, c.comp2, c.others
    if c1 <= 1 and o == 0 and c2 == 0:
        return "easy"
    if (o <= 2 and c1 <= 1 and c2 == 0) or (c1 <= 2 and o < 2 and c2 == 0):
        return "medium"
    if (o > 2 and c1 <= 2 and c2 == 0) or (2 < c1 <= 3 and o <= 2 and c2 == 0) or (c1 <= 1 and o == 0 and c2 <= 1):
        return "hard"
    return "extra"


def _depth0(tokens: list[Token]) -> list[tuple[int, Token]]:
    """(index, token) of the tokens outside parentheses."""
    out, depth = [], 0
    for i, t in enumerate(tokens):
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            depth -= 1
        elif depth == 0:
            out.append((i, t))
    return out


def _clauses(tokens: list[Token]) -> tuple[dict[str, list[Token]], bool]:
    """The top query's clauses (keyword -> its tokens) and whether a set operation follows it."""
    top = _depth0(tokens)
    cuts = [(i, t.upper) for i, t in top if t.is_word(*_CLAUSES, *SET_OPS)]
    clauses: dict[str, list[Token]] = {}
    for k, (i, word) in enumerate(cuts):
        if word in SET_OPS:
            return clauses, True
        end = cuts[k + 1][0] if k + 1 < len(cuts) else len(tokens)
        clauses.setdefault(word, tokens[i + 1:end])
    return clauses, False


def _split(tokens: list[Token], *words: str) -> list[list[Token]]:
    """``tokens`` cut at the depth-0 words (or commas), the cutting tokens dropped."""
    parts, start = [], 0
    for i, t in _depth0(tokens):
        if (t.is_word(*words) if words else t.text == ","):
            parts.append(tokens[start:i])
            start = i + 1
    parts.append(tokens[start:])
    return parts


def _aggregated(tokens: list[Token]) -> int:
    """Aggregate calls at depth 0 (``count(...)``)."""
    top = _depth0(tokens)
    return sum(1 for k, (i, t) in enumerate(top) if t.is_word(*AGGREGATES)
               and i + 1 < len(tokens) and tokens[i + 1].text == "(")


def _conditions(tokens: list[Token]) -> tuple[list[list[Token]], list[str]]:
    """A condition's units and its connectives (a BETWEEN's AND is part of its unit)."""
    units, links, start, between = [], [], 0, False
    for i, t in _depth0(tokens):
        if t.is_word("BETWEEN"):
            between = True
        elif t.is_word("AND", "OR"):
            if between and t.is_word("AND"):
                between = False
                continue
            units.append(tokens[start:i])
            links.append(t.upper)
            start = i + 1
    units.append(tokens[start:])
    return [u for u in units if u], links


def _count(tokens: list[Token]) -> _Counts:
    clauses, set_op = _clauses(tokens)
    c = _Counts(comp2=int(set_op))
    frm = clauses.get("FROM", [])
    on = [u for part in _split(frm, "ON")[1:] for u in _split(part, "JOIN", "INNER", "LEFT", "CROSS")[:1]]
    tables = 1 + sum(1 for _, t in _depth0(frm) if t.is_word("JOIN") or t.text == ",") if frm else 0
    where_units, where_links = _conditions(clauses.get("WHERE", []))
    having_units, having_links = _conditions(clauses.get("HAVING", []))
    on_units, on_links = [], []
    for cond in on:
        units, links = _conditions(cond)
        on_units += units
        on_links += links
    units = on_units + where_units + having_units
    c.comp1 = sum(k in clauses for k in ("WHERE", "GROUP", "ORDER", "LIMIT")) + max(0, tables - 1) \
        + (on_links + where_links + having_links).count("OR") \
        + sum(1 for u in units if any(t.is_word("LIKE") for _, t in _depth0(u)))
    c.comp2 += sum(_top_nested(u) for u in units)
    select = _split(clauses.get("SELECT", []))
    negated = sum(1 for u in where_units + having_units if _negated(u))
    c.aggregations = sum(1 for item in select if _first_word(item) in AGGREGATES) \
        + _aggregated(clauses.get("GROUP", [])) + _aggregated(clauses.get("ORDER", [])) + negated + len(having_links)
    group = _split(clauses.get("GROUP", [])[1:]) if "GROUP" in clauses else []
    c.others = int(c.aggregations > 1) + int(len(select) > 1) + int(len(where_units) > 1) + int(len(group) > 1)
    return c


def _first_word(tokens: list[Token]) -> str:
    item = [t for t in tokens if t.kind == "word" and not t.is_word("DISTINCT")]
    return item[0].upper if item else ""


def _negated(unit: list[Token]) -> bool:
    """A condition whose operator is negated (NOT IN, NOT LIKE, NOT BETWEEN): the parse's NOT flag."""
    top = [t for _, t in _depth0(unit)]
    return any(a.is_word("NOT") and b.is_word("IN", "LIKE", "BETWEEN", "EXISTS") for a, b in zip(top, top[1:]))


def _top_nested(unit: list[Token]) -> int:
    """Subqueries that are the unit's values (``x IN (SELECT ...)``, ``x > (SELECT ...)``)."""
    depth, n = 0, 0
    for i, t in enumerate(unit):
        if t.text == "(":
            if depth == 0 and i + 1 < len(unit) and unit[i + 1].is_word("SELECT"):
                n += 1
            depth += 1
        elif t.text == ")":
            depth -= 1
    return n
