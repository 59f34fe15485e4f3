"""What the report says about answers (issue 22): how many were reused and what that saved, which
rows were scored by older scoring code than the suite's current one, and cases by served model
(a model whose provider changed what served it within a run shows two or more)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .loading import Loaded, _plain

COLUMNS = ("reused", "saved_tokens", "saved_usd", "served_model", "scoring_version")


def _current_scoring(suite: str) -> str | None:
    from ..contract.fields import SpecError
    from ..contract.registry import find_suite

    try:
        found = find_suite(suite)
    except SpecError:
        return None
    return str(getattr(found, "scoring_version", None) or found.version)


def _kept(loaded: Loaded) -> pa.Table:
    t = loaded.raw
    if not all(c in t.column_names for c in COLUMNS) or not t.num_rows:
        return pa.table({})
    cols = {c: _plain(t.column(c)) for c in ("model", "suite", *COLUMNS)}
    return pa.table(cols).filter(pa.array(loaded.keep))


def _scoring(t: pa.Table) -> dict:
    """Rows by (suite, scoring version), and how many were scored by code older than the current."""
    versions, older = [], 0
    for g in t.group_by(["suite", "scoring_version"]).aggregate([("model", "count")]).to_pylist():
        current = _current_scoring(g["suite"]) if g["suite"] else None
        is_old = g["scoring_version"] != current
        older += g["model_count"] if is_old else 0
        versions.append({"suite": g["suite"], "scoring_version": g["scoring_version"], "rows": g["model_count"],
                         "current": not is_old})
    return {"versions": sorted(versions, key=lambda v: (str(v["suite"]), str(v["scoring_version"]))),
            "older_rows": older}


def _served(t: pa.Table) -> list[dict]:
    rows = t.filter(pc.is_valid(t.column("served_model")))
    grouped = rows.group_by(["model", "served_model"]).aggregate([("suite", "count")]).to_pylist()
    return sorted(({"model": g["model"], "served_model": g["served_model"], "cases": g["suite_count"]}
                   for g in grouped), key=lambda g: (str(g["model"]), -g["cases"]))


def summary(loaded: Loaded) -> dict:
    """``reuse``, ``scoring`` and ``served_models`` of the report (one row per case)."""
    t = _kept(loaded)
    if not t.num_columns:
        return {"reuse": {"answers_reused": 0, "cases": 0, "saved_tokens": 0, "saved_usd": 0.0},
                "scoring": {"versions": [], "older_rows": 0}, "served_models": [], "served_model_drift": []}
    reused = t.column("reused").fill_null(0)
    served = _served(t)
    per_model: dict = {}
    for g in served:
        per_model.setdefault(g["model"], []).append(g["served_model"])
    return {
        "reuse": {"answers_reused": int(pc.sum(reused).as_py() or 0),
                  "cases": int(pc.sum(pc.greater(reused, 0).cast(pa.int64())).as_py() or 0),
                  "saved_tokens": int(pc.sum(t.column("saved_tokens").fill_null(0)).as_py() or 0),
                  "saved_usd": round(float(pc.sum(t.column("saved_usd").fill_null(0.0)).as_py() or 0.0), 6)},
        "scoring": _scoring(t),
        "served_models": served,
        "served_model_drift": sorted(m for m, names in per_model.items() if len(names) > 1),
    }


def lines(summary_: dict) -> list[str]:
    """The report's text lines about answers (none when there is nothing to say)."""
    out = []
    reuse = summary_.get("reuse") or {}
    if reuse.get("answers_reused"):
        out.append(f"reused answers: {reuse['answers_reused']} in {reuse['cases']} cases, not paid again: "
                   f"{reuse['saved_tokens']} tokens, ${reuse['saved_usd']:.4f} saved")
    scoring = summary_.get("scoring") or {}
    if scoring.get("older_rows"):
        old = [f"{v['scoring_version']} ({v['rows']})" for v in scoring["versions"] if not v["current"]]
        out.append(f"{scoring['older_rows']} rows were scored by older scoring code: {', '.join(old)}; "
                   "'benchpilot rescore' scores them again from their transcripts without calling a model")
    for model in summary_.get("served_model_drift") or []:
        names = [f"{g['served_model']} ({g['cases']})" for g in summary_["served_models"] if g["model"] == model]
        out.append(f"model {model} was served by several models: {', '.join(names)}")
    return out


MAX_CONVERSATION_CHARS = 6000  # of a listed case's conversation in the report


def _said(message: dict) -> str:
    text = str(message.get("content") or "")
    calls = [f"{(c.get('function') or {}).get('name')}({(c.get('function') or {}).get('arguments')})"
             for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    return text + ("" if not calls else (" " if text else "") + "calls: " + "; ".join(calls))


def conversation(text: str | None) -> str | None:
    """A listed case's transcript as readable text (what was sent anew each turn and what came back), bounded."""
    if not text:
        return None
    from ..answers import transcript as T

    try:
        doc = T.parse(text)
    except T.TranscriptError as exc:
        return f"(transcript not readable: {exc})"
    lines = []
    for entry in doc["entries"]:
        for m in (entry.get("request") or {}).get("messages") or []:
            if isinstance(m, dict) and m.get("role") != "assistant":
                lines.append(f"> {m.get('role')}: {_said(m)}")
        if "error" in entry:
            lines.append(f"< error {entry['error'].get('type')}: {entry['error'].get('message')}")
        else:
            r = entry.get("response") or {}
            tag = " (reused)" if entry.get("reused") else ""
            lines.append(f"< {r.get('served_model')}{tag} [{r.get('finish_reason')}]: {_said(r.get('message') or {})}")
    out = "\n".join(lines)
    if doc.get("truncated"):
        out += f"\n(transcript truncated: {doc['truncated']})"
    if len(out) > MAX_CONVERSATION_CHARS:
        out = out[:MAX_CONVERSATION_CHARS] + f"… ({len(out)} characters, cut)"
    return out
