"""When two query results are the same answer, by each official rule. Pure.

- **spider**: Spider's execution rule as taoyds/test-suite-sql-eval implements it
  (``evaluation.py --etype exec`` and ``exec_eval.eval_exec_match``), read from its code:
  the predicted query has every ``value`` replaced by ``1`` (evaluation.py does so for models that
  print value placeholders); both queries have ``> =``, ``< =``, ``! =`` joined and, unless
  ``keep_distinct``, every DISTINCT keyword removed (its tokenizer keeps only the first statement);
  ``YEAR(CURDATE())`` reads 2020. Results: two empty results are equal whatever their columns;
  otherwise the row counts and column counts must match, and some permutation of the predicted
  columns must make the results equal — as lists when the gold query's text contains ``order
  by`` anywhere (a subquery's too), else as bags (multisets). Values compare as Python compares
  what sqlite3 returns (``3 == 3.0``; ``'3' != 3``; floats exactly). Before the permutation
  search, the rule rejects results whose rows, each sorted by ``str(value) + str(type)``, differ
  (as lists when ordered, as sets when not); that pre-check is kept, so the rare results it
  rejects while a permutation would match are rejected here too.
- **bird**: BIRD's official EX (bird-bench ``evaluation.py``/``evaluation_ex.py``): the results
  are equal as *sets* of rows (columns in order; duplicates and order ignored), with both queries
  as written; a query that fails or a pair that runs longer than 30 seconds counts as wrong.
- **strict**: benchpilot's own earlier rule: the same number of columns, rows compared in column
  order as multisets (as lists when the gold query has a top-level ORDER BY), floats rounded to
  6 places; DISTINCT as written.
"""

from __future__ import annotations

import re
from collections import Counter

from .sqltext import statements, tokenize

BIRD_TIMEOUT_S = 30.0  # BIRD's meta_time_out: both queries of a pair run within it
_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.I)


# ----------------------------------------------------------------------------- queries as Spider runs them


def spider_query(sql: str, *, keep_distinct: bool = False, predicted: bool = False) -> str:
    """``sql`` as Spider's evaluator runs it (see the module's docstring)."""
    if predicted:
        sql = sql.replace("value", "1")
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if not keep_distinct:
        sql = remove_distinct(sql)
    return _CUR_YEAR.sub("2020", sql)


def remove_distinct(sql: str) -> str:
    """The first statement of ``sql`` with every DISTINCT keyword token removed (not inside strings,
    quoted names or comments); the rest of the text as written."""
    first = statements(sql)
    text = sql if not first else sql[:sql.index(first[0]) + len(first[0])]
    return "".join(t.text for t in tokenize(text) if not t.is_word("DISTINCT"))


def spider_orders(gold_spider_sql: str) -> bool:
    """Spider's rule: order matters when the gold query's text contains 'order by'."""
    return "order by" in gold_spider_sql.lower()


# ----------------------------------------------------------------------------- results


def spider_same(gold: tuple, pred: tuple, order_matters: bool) -> bool:
    """Spider's denotation equality (rows as tuples, as sqlite3 returns them)."""
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    n = len(gold[0])
    if len(pred[0]) != n:
        return False
    loose_g, loose_p = [_loose(r) for r in gold], [_loose(r) for r in pred]
    if (loose_g != loose_p) if order_matters else (set(loose_g) != set(loose_p)):
        return False
    return _some_permutation(gold, pred, n, order_matters)


def _loose(row: tuple) -> tuple:
    return tuple(sorted(row, key=lambda v: f"{v}{type(v)}"))


def _some_permutation(gold: tuple, pred: tuple, n: int, ordered: bool) -> bool:
    """Whether the predicted columns, in some order, give the gold rows. Only columns whose values
    match a gold column's (as a sequence when ordered, as a bag when not) are tried for it, and of
    identical predicted columns only one: the same verdict as trying every permutation."""
    gold_cols, pred_cols = list(zip(*gold)), list(zip(*pred))
    if ordered:
        fits = [[j for j in range(n) if pred_cols[j] == gold_cols[i]] for i in range(n)]
    else:
        gold_bags, pred_bags = [Counter(c) for c in gold_cols], [Counter(c) for c in pred_cols]
        fits = [[j for j in range(n) if pred_bags[j] == gold_bags[i]] for i in range(n)]
    if not all(fits):
        return False
    twin = [next(k for k in range(n) if pred_cols[k] == pred_cols[j]) for j in range(n)]
    target = list(gold) if ordered else Counter(gold)
    perm: list[int] = []
    used: set[int] = set()

    def search(i: int) -> bool:
        if i == n:
            rows = [tuple(r[j] for j in perm) for r in pred]
            return rows == target if ordered else Counter(rows) == target
        tried: set[int] = set()
        for j in fits[i]:
            if j in used or twin[j] in tried:
                continue
            tried.add(twin[j])
            perm.append(j)
            used.add(j)
            if search(i + 1):
                return True
            perm.pop()
            used.discard(j)
        return False
    return search(0)


def bird_same(gold: tuple, pred: tuple) -> bool:
    """BIRD's rule: the same set of rows."""
    return set(gold) == set(pred)


def _rounded(rows: tuple) -> list[tuple]:
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows]


def strict_same(gold: tuple, pred: tuple, gold_width: int, pred_width: int, ordered: bool) -> bool:
    """benchpilot's strict rule: columns in order, rows as a multiset (a list when ordered)."""
    if gold_width != pred_width:
        return False
    g, p = _rounded(gold), _rounded(pred)
    return g == p if ordered else Counter(g) == Counter(p)


def rows_in_common(gold: tuple, pred: tuple) -> int:
    """Rows the two results share, counted as multisets (floats rounded as in the strict rule)."""
    return sum((Counter(_rounded(gold)) & Counter(_rounded(pred))).values())
