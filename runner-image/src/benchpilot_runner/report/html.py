"""The report as ONE self-contained HTML file: inline CSS, SVG and a small script, nothing fetched.

It opens offline, from a mail attachment, with scripts blocked (then every table and chart is still
there; only the case filters need the script). Its numbers are the JSON's (``report --format json``),
each cell carrying them in full as data attributes beside the rounded text.
"""

from __future__ import annotations

import json
from importlib import resources

from . import fmt
from .html_parts import attrs, e, section, table, td
from .html_sections import (comparisons_section, cost_section, group_section, robustness_section,
                            summary_section, tool_calling_section)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _options(values) -> str:
    return '<option value="">(all)</option>' + "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)


def _filters(buckets: list[dict]) -> str:
    fields = (("model", "model", "model"), ("prompt", "prompt type", "prompt_type"), ("task", "task type", "task_type"),
              ("status", "status", "status"), ("error", "error type", "error_type"))
    out = ['<div class="filters">']
    for fid, label, key in fields:
        values = sorted({"" if b[key] is None else str(b[key]) for b in buckets} - {""})
        if key == "error_type" and any(b[key] is None for b in buckets):
            values = ["(none)"] + values
        out.append(f'<label>{e(label)}<select id="f-{fid}">{_options(values)}</select></label>')
    out.append('<label>text<input id="f-text" type="search" placeholder="SQL, message, id…"></label>'
               '<button id="f-reset" type="button">reset</button></div>')
    return "".join(out)


def _keys(c: dict) -> dict:
    return {"model": c["model"], "prompt": c["prompt_type"], "task": c["task_type"], "status": c["status"],
            "error": c["error_type"] if c["error_type"] is not None else "(none)"}


def _case(c: dict) -> str:
    head = (f"{c['status']:<8} {c['model']} · {c['prompt_type']} · {c['task_type']} · {c['difficulty']} "
            f"#{c['instance']} · score {c['score']:.2f}" + (f" · {c['error_type']}" if c["error_type"] else ""))
    facts = {k: c.get(k) for k in ("case_id", "namespace", "run", "uid", "latency_s", "turns", "tool_calls")
             if c.get(k) is not None}
    body = f"<pre>{e(json.dumps(facts, indent=2))}</pre>"
    if c.get("error_message"):
        body += f"<h4>error message</h4><pre>{e(c['error_message'])}</pre>"
    if c.get("details") is not None:
        details = c["details"] if isinstance(c["details"], str) else json.dumps(c["details"], indent=2)
        body += f"<h4>details</h4><pre>{e(details)}</pre>"
    if c.get("conversation"):
        body += f"<h4>conversation</h4><pre>{e(c['conversation'])}</pre>"
    return (f'<details class="case"{attrs(**_keys(c))}><summary class="status-{e(c["status"])}">{e(head)}'
            f"</summary>{body}</details>")


def cases_section(s: dict) -> str:
    cases = s.get("cases")
    if not cases:
        return ""
    if not cases["non_success"]:
        return section("Cases that did not succeed", "<p>None: every case succeeded.</p>", "cases-section")
    several = bool(s.get("warning"))
    rows = [f"<tr{attrs(cases=b['cases'], **_keys(b))}>" + (td(fmt.set_name(b), "l") if several else "")
            + "".join(td(b[k] if b[k] is not None else "(none)", "l")
                      for k in ("model", "prompt_type", "task_type", "status", "error_type"))
            + f"{td(b['cases'])}</tr>" for b in cases["buckets"]]
    head = (["result set"] if several else []) + ["model", "prompt type", "task type", "status", "error type", "cases"]
    note = (f"{cases['non_success']} cases did not succeed; {cases['listed']} of them are listed with their details "
            f"(at most {cases['limit']}, spread over the kinds below; the rest are in the Parquet parts: "
            "columns error_message and details). Filter, then click a case to expand it.")
    body = (f"<p class=note>{e(note)}</p>{_filters(cases['buckets'])}<p id=case-count class=count></p>"
            + table("buckets", head, rows, left=len(head) - 1)
            + f'<div id="case-list">{"".join(_case(c) for c in cases["list"])}</div>')
    return section("Cases that did not succeed", body, "cases-section")


def answers_section(s: dict) -> str:
    """Reused answers, rows scored by older code, cases by served model (issue 22)."""
    from . import answers

    said = "".join(f"<p>{e(line)}</p>" for line in answers.lines(s))
    rows = [f"<tr>{td(g['model'], 'l')}{td(g['served_model'], 'l')}{td(g['cases'])}</tr>"
            for g in s.get("served_models") or []]
    if not said and not rows:
        return ""
    return section("Answers: reuse, scoring, served models",
                   said + (table("served-models", ["model", "served model", "cases"], rows, left=2) if rows else ""),
                   "answers-section")


def document(s: dict) -> str:
    runs = ", ".join(s.get("runs") or []) or "no runs"
    title = f"benchpilot report — {runs}"
    parts = [summary_section(s),
             group_section(s, "by_model_prompt_type", "prompt_type", "By model × prompt type"),
             group_section(s, "by_task_type", "task_type", "By model × task type"),
             group_section(s, "by_model", None, "By model"),
             tool_calling_section(s), comparisons_section(s), robustness_section(s), cost_section(s),
             answers_section(s), cases_section(s)]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f"<title>{e(title)}</title><style>{_asset('report.css')}</style></head><body>"
            f"<h1>{e(title)}</h1><p class=note>suites: {e(', '.join(s.get('suites') or []))}; "
            f"{e(s['total'])} cases; intervals at {s.get('confidence', 0.95):.0%}</p>"
            + "".join(parts) + f"<script>{_asset('report.js')}</script></body></html>\n")


def write(summary: dict, path: str) -> None:
    text = document(summary)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
