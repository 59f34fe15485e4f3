"""Conditions (with their transition times), merge patches, and the status of a run that cannot start."""

from __future__ import annotations

import datetime as dt

from benchpilot_runner.redact import scrub


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def condition(prev: list[dict], type_: str, status: bool, reason: str, message: str, now: str) -> dict:
    """A condition; its ``lastTransitionTime`` moves only when its status changes."""
    old = next((c for c in prev if c.get("type") == type_), None)
    value = "True" if status else "False"
    changed = old is None or old.get("status") != value
    return {"type": type_, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now)}


def same_condition(conds: list[dict], type_: str, status: str, reason: str, message: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == status and c.get("reason") == reason
               and c.get("message") == message for c in conds)


def with_condition(status: dict, type_: str, value: bool, reason: str, message: str, now: str | None = None) -> dict:
    """``status`` with condition ``type_`` set (replacing one of that type)."""
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    conds.insert(0, condition(status.get("conditions") or [], type_, value, reason, scrub(message), now or utc_now()))
    return {**status, "conditions": conds}


def invalid_status(prev: dict, reason: str, message: str, generation: int | None) -> tuple[dict, list]:
    """The status of a run that cannot start (bad spec, does not fit): Failed with a condition."""
    now = utc_now()
    conds = prev.get("conditions") or []
    status = {"phase": "Failed", "observedGeneration": generation,
              "conditions": [condition(conds, "Ready", False, reason, message, now),
                             condition(conds, "Failed", True, reason, message, now)]}
    events = [] if same_condition(conds, "Ready", "False", reason, message) else [("Warning", reason, message)]
    return status, events


def merge_patch(prev: dict, new: dict, *, keep: tuple[str, ...] = ("kopf",)) -> dict:
    """The JSON merge patch (RFC 7386) that turns ``prev`` into ``new``: changed keys, nested maps
    diffed key by key, removed keys as None (a merge patch keeps what it does not mention)."""
    out: dict = {}
    for k, v in new.items():
        old = prev.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            sub = merge_patch(old, v, keep=())
            if sub:
                out[k] = sub
        elif old != v:
            out[k] = v
    for k in prev:
        if k not in new and k not in keep:
            out[k] = None
    return out
