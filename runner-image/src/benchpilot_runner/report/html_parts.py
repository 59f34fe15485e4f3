"""PURE: HTML building blocks of the report page: escaped text, and table cells that carry their
numbers in full as data attributes (``data-est``, ``data-low``, ``data-high``) beside the rounded text."""

from __future__ import annotations

from html import escape

from . import fmt


def e(x) -> str:
    return escape("" if x is None else str(x), quote=True)


def num(x) -> str:
    return "" if x is None else repr(float(x))


def attrs(**kw) -> str:
    return "".join(f' data-{k.replace("_", "-")}="{e(v)}"' for k, v in kw.items())


def td(text, cls: str = "", **data) -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{attrs(**data)}>{e(text)}</td>"


def th(text, left: bool = False) -> str:
    return f'<th{" class=l" if left else ""}>{e(text)}</th>'


def interval_td(j: dict | None, text: str, measure: str, cls: str = "") -> str:
    j = j or {}
    small = "small" if j.get("estimate") is not None and j.get("low") is None else ""
    return td(text, " ".join(c for c in (cls, small) if c), measure=measure, est=num(j.get("estimate")),
              low=num(j.get("low")), high=num(j.get("high")), n=j.get("n", ""), method=j.get("method", ""))


def rate_td(j: dict | None, measure: str) -> str:
    return interval_td(j, fmt.rate(j), measure)


def mean_td(j: dict | None, measure: str, digits: int = 2) -> str:
    return interval_td(j, fmt.mean(j, digits), measure)


def diff_td(j: dict | None, significant: bool, measure: str, p_holm: float | None = None) -> str:
    est = (j or {}).get("estimate")
    cls = "sig" + (" neg" if est is not None and est < 0 else "") if significant else "tied"
    out = interval_td(j, fmt.diff(j, significant), measure, cls)
    return out.replace("<td", f'<td data-significant="{str(bool(significant)).lower()}" '
                              f'data-p-holm="{num(p_holm)}" title="Holm-adjusted p {fmt.pvalue(p_holm)}"', 1)


def table(table_id: str, head: list[str], rows: list[str], left: int = 1) -> str:
    heads = "".join(th(h, i < left) for i, h in enumerate(head))
    return (f'<div class="scroll"><table id="{e(table_id)}"><thead><tr>{heads}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></div>")


def section(title: str, body: str, sid: str) -> str:
    return f'<section id="{e(sid)}"><h2>{e(title)}</h2>{body}</section>'


def where(block: dict, several: bool) -> str:
    return f" — result set {block['run']}/{block['uid']}" if several else ""
