"""SQL text as tokens: strings, quoted names, comments, words, numbers and punctuation. Pure.

Enough of SQLite's lexer to tell what is code and what is inside a string or a comment, so that
answer extraction, DISTINCT removal and Spider's hardness count never look inside a literal. The
tokens cover the text exactly (joining them gives the text back), so an edit made on tokens
changes nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# kinds: ws, comment, string ('...'), name ("...", `...`, [...]), word, number, op, punct
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*(?:'|\Z))
  | (?P<name>"(?:[^"]|"")*(?:"|\Z)|`(?:[^`]|``)*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<op><=|>=|!=|<>|==|\|\||<<|>>)
  | (?P<punct>.)
""", re.X | re.S)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


def tokenize(sql: str) -> list[Token]:
    return list(iter_tokens(sql))


def iter_tokens(sql: str, pos: int = 0) -> Iterator[Token]:
    """The tokens of ``sql`` from ``pos`` on, one at a time (a caller that stops early pays for no more)."""
    return (Token(m.lastgroup or "punct", m.group(), m.start()) for m in _TOKEN.finditer(sql, pos))


def code(tokens: list[Token]) -> list[Token]:
    """The tokens that are not whitespace or comments."""
    return [t for t in tokens if t.kind not in ("ws", "comment")]


def statements(sql: str) -> list[str]:
    """``sql`` cut at its semicolons (outside strings, names and comments); each statement keeps
    its text as written, without the semicolon; statements of only whitespace and comments dropped."""
    out, start = [], 0
    for t in tokenize(sql):
        if t.kind == "punct" and t.text == ";":
            out.append(sql[start:t.start])
            start = t.start + 1
    out.append(sql[start:])
    return [s for s in out if code(tokenize(s))]


def first_word(sql: str) -> str:
    """The first keyword of a statement (after comments and opening parentheses), upper-cased."""
    for t in tokenize(sql):
        if t.kind in ("ws", "comment") or t.text == "(":
            continue
        return t.upper if t.kind == "word" else ""
    return ""


def strip_ends(sql: str) -> str:
    """``sql`` without leading and trailing whitespace and comments, nor trailing semicolons (none
    of which changes what a query does)."""
    tokens = tokenize(sql)
    while tokens and (tokens[-1].kind in ("ws", "comment") or tokens[-1].text == ";"):
        tokens.pop()
    start = 0
    while start < len(tokens) and tokens[start].kind in ("ws", "comment"):
        start += 1
    return "".join(t.text for t in tokens[start:])
