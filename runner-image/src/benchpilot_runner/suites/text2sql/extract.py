"""The SQL query in a model's answer, whatever shape the answer has. Pure.

Real models answer in many shapes: a fenced block with any language tag (```sql, ```sqlite,
```SQL, ```postgresql, ```mysql) or none, several blocks (drafts, then the answer), reasoning
first (``<think>...</think>`` and its kin, or plain prose), ``SQL:``/``Answer:`` prefixes, inline
code, prose after the query, a trailing semicolon or comment. :func:`extract_sql` reads them all:

1. reasoning blocks are dropped (the text after the last closing ``</think>``-like tag is read
   first; the whole answer when nothing is found there);
2. fenced blocks (``` or ~~~, a tag or none, the last fence may be unclosed): the last block that
   holds a query; a block's first line is a tag unless it starts the query itself;
3. ``<sql>``/``<answer>``/``<query>`` tags, then inline code spans, likewise;
4. else the query in the prose: it starts at SELECT or WITH (a WITH that opens a common table
   expression), preferably at the start of a line or after a ``Label:``, the last such one; it
   ends at its semicolon, at a blank line or a line of prose (``This query ...``), or at an
   unmatched closing parenthesis or backtick.

Within a block of several statements, the last query is taken. Trailing semicolons, comments and
whitespace are dropped (they never change what a query returns); nothing else of the query is
touched, so a valid query is never made invalid. A block that holds a statement that is not a
query (``DELETE ...``) is returned as is: the database refuses it, and that refusal is what a
correction round is for. No SQL at all gives None.
"""

from __future__ import annotations

import re

from .sqltext import first_word, iter_tokens, statements, strip_ends

MAX_SQL = 20000
QUERY_WORDS = ("SELECT", "WITH", "VALUES")
_REASONING_END = re.compile(r"</(?:think|thinking|reasoning|reflection|analysis|thought)\s*>", re.I)
_REASONING_BLOCK = re.compile(r"<(think|thinking|reasoning|reflection|analysis|thought)\b[^>]*>.*?</\1\s*>",
                              re.I | re.S)
_FENCE = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<info>(?:(?!(?P=fence))[^\n])*)\n?(?P<body>.*?)(?:(?P=fence)|\Z)", re.S)
_TAG = re.compile(r"<(sql|answer|query|final_answer|final)\b[^>]*>(?P<body>.*?)(?:</\1\s*>|\Z)", re.I | re.S)
_INLINE = re.compile(r"(?<!`)`(?P<body>[^`\n]+)`(?!`)")
_SQLISH_TAGS = frozenset("sql sqlite sqlite3 postgresql postgres psql pgsql mysql mariadb tsql t-sql plsql pl/sql "
                         "mssql sqlserver oracle duckdb bigquery snowflake hive spark sparksql ansi".split())
_START = re.compile(r"\b(?:SELECT\b|WITH\s+(?:RECURSIVE\s+)?[\w\"`\[\]]+\s*(?:\([^()]*\)\s*)?AS\s*"
                    r"(?:NOT\s+)?(?:MATERIALIZED\s*)?\()", re.I)
# what may stand before a query that starts a line: quote marks, bullets, emphasis, a short label
_LEAD_IN = re.compile(r"^[\s>*_#`~-]*(?:\d+[.)]\s*)?(?:[A-Za-z][\w ()/-]{0,40}:)?[\s*_`]*$")
# words a line of SQL may start with (a line starting with another word may be prose)
_CONTINUE = frozenset("""
    SELECT FROM WHERE AND OR NOT JOIN INNER LEFT RIGHT FULL OUTER CROSS NATURAL ON USING GROUP ORDER BY
    HAVING LIMIT OFFSET UNION INTERSECT EXCEPT ALL DISTINCT AS CASE WHEN THEN ELSE END IN EXISTS BETWEEN
    LIKE GLOB IS NULL NULLS FIRST LAST ASC DESC WITH RECURSIVE VALUES COLLATE ESCAPE WINDOW OVER
    PARTITION ROWS RANGE FILTER CAST COUNT SUM AVG MIN MAX TOTAL ABS ROUND LENGTH LOWER UPPER SUBSTR
    COALESCE IFNULL NULLIF STRFTIME DATE TIME DATETIME JULIANDAY REPLACE TRIM INSTR IIF GROUP_CONCAT
    MATERIALIZED TRUE FALSE
""".split())
_PROSE_END = re.compile(r"^[^'\n]*(?:'[^'\n]*'[^'\n]*)*[.!?:]\s*$")  # a line ending a sentence (outside quotes)
_PROSE = re.compile(r"^[A-Za-z][A-Za-z'’]*(?:\s+[A-Za-z'’,()-]+){2,}.*[.!?:]\s*$|^[A-Za-z][A-Za-z'’ ]{0,30}:\s+\S|^#+\s")


def extract_sql(text: str | None) -> str | None:
    """The query in an answer (see the module's docstring), or None."""
    if not text or not text.strip():
        return None
    ends = list(_REASONING_END.finditer(text))
    if ends:
        found = _find(text[ends[-1].end():])
        if found:
            return found
        text = _REASONING_BLOCK.sub("", text) or text
    return _find(text)


def _find(text: str) -> str | None:
    for found in (_from_blocks(text, _FENCE, fenced=True), _from_blocks(text, _TAG),
                  _from_blocks(text, _INLINE, inline=True)):
        if found:
            return found
    return _find_bare(text) if text.strip() else None


def _from_blocks(text: str, pattern: re.Pattern, *, fenced: bool = False, inline: bool = False) -> str | None:
    """The last query in a block of ``text``; else the last sql-tagged (or untagged) block's statement."""
    queries: list[str] = []  # from blocks tagged as SQL or not tagged
    others: list[str] = []  # statements that are not queries, from such blocks
    foreign: list[str] = []  # queries inside blocks of another language (python, ...)
    for m in pattern.finditer(text):
        body, tag = m.group("body"), ""
        if fenced:
            tag, body = _tagged(m.group("info").strip(), body)
        query = _query_in(body)
        if query and inline and len(re.findall(r"\w+", query)) < 2:
            query = None  # `SELECT` named in prose, not a query
        if query:
            (foreign if tag and tag not in _SQLISH_TAGS else queries).append(query)
        elif not inline and (not tag or tag in _SQLISH_TAGS) and body.strip():
            stmts = statements(body)
            if stmts:
                others.append(strip_ends(stmts[-1]))
    picked = next((found[-1] for found in (queries, others, foreign) if found), None)
    return picked[:MAX_SQL] if picked else None


def _tagged(info: str, body: str) -> tuple[str, str]:
    """A fence's language tag and its body: the first line is the tag (``sql``, ``sqlite``, ...)
    unless it starts the query itself (```SELECT ...```); a query after the tag on that line is
    part of the body."""
    if not info or _START.match(info) or first_word(info) in QUERY_WORDS:
        return "", f"{info}\n{body}"
    tag, _, rest = info.partition(" ")
    if rest.strip() and first_word(rest) in QUERY_WORDS:
        body = f"{rest}\n{body}"
    return tag.lower().strip("{}."), body


def _query_in(body: str) -> str | None:
    """The last query statement of a block; a block with prose before its query is read as prose."""
    stmts = [s for s in statements(body) if first_word(s) in QUERY_WORDS]
    if stmts:
        return strip_ends(stmts[-1]) or None
    return _find_bare(body) if _START.search(body) else None


def _find_bare(text: str) -> str | None:
    """The query in prose: the last one that starts a line (or follows a label); else the first of
    the others that reads FROM; else the first."""
    at_line = _candidates(text, at_line=True)
    if at_line:
        return at_line[-1][:MAX_SQL]
    others = _candidates(text, at_line=False)
    picked = next((c for c in others if re.search(r"\bFROM\b", c, re.I)), others[0] if others else None)
    return picked[:MAX_SQL] if picked else None


def _candidates(text: str, *, at_line: bool) -> list[str]:
    """The statements starting at a SELECT/WITH of ``text`` that starts a line (or does not), each
    to its end; a start inside an earlier candidate is part of it."""
    out: list[str] = []
    pos = 0
    while True:
        m = _START.search(text, pos)
        if not m:
            return [c for c in out if c]
        line_start = text.rfind("\n", max(0, m.start() - 81), m.start()) + 1 or (0 if m.start() <= 80 else -1)
        line_end = text.find("\n", m.start(), m.start() + 2000)  # a longer line is not a sentence
        lead = line_start >= 0 and bool(_LEAD_IN.match(text[line_start:m.start()]))
        if lead != at_line or (line_end >= 0 and _PROSE_END.search(text[m.start():line_end])) or \
                (line_end < 0 and len(text) - m.start() < 2000 and _PROSE_END.search(text[m.start():])):
            pos = m.end()
            continue
        end = _extent(text, m.start())
        out.append(strip_ends(text[m.start():end]))
        pos = max(end, m.end())


def _extent(text: str, start: int) -> int:
    """Where the statement starting at ``start`` ends: its semicolon, a blank line or a line of
    prose, an unmatched ')' or an unclosed backtick."""
    depth = 0
    for t in iter_tokens(text, start):
        at = t.start
        if t.kind == "punct" and t.text == ";" and depth == 0:
            return at
        if t.kind == "punct" and t.text in "([":
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            if depth == 0:
                return at
            depth -= 1
        elif t.kind == "name" and t.text.startswith("`") and (len(t.text) == 1 or not t.text.endswith("`")):
            return at
        elif t.kind == "ws" and "\n" in t.text:
            if _prose_follows(text, at + len(t.text), blank=t.text.count("\n") > 1 and depth == 0):
                return at
    return len(text)


def _prose_follows(text: str, at: int, *, blank: bool) -> bool:
    """Whether the line at ``at`` ends the query: prose, or (after a blank line) anything that does
    not continue SQL."""
    line = text[at:text.find("\n", at) if "\n" in text[at:] else len(text)].strip()
    if not line:
        return False
    head = re.match(r"[A-Za-z_][\w]*", line)
    continues = (head is None and not line.startswith(("#", "**", "> "))) or \
        (head is not None and head.group(0).upper() in _CONTINUE)
    if continues:
        return False
    return blank or bool(_PROSE.match(line)) or line.startswith(("#", "**", "> "))
