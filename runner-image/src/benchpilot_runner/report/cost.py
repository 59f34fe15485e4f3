"""Cost against quality: per model × prompt type, cost and tokens per case and per success, and the
Pareto front of success rate against cost (no other group is as cheap and at least as good)."""

from __future__ import annotations


def axis(rows: list[dict]) -> str | None:
    """What to plot success against: dollars if any case cost something, else tokens, else nothing."""
    if any(r["cost_usd"] > 0 for r in rows):
        return "cost_usd"
    if any(r["prompt_tokens"] + r["completion_tokens"] > 0 for r in rows):
        return "tokens"
    return None


def _x(row: dict, kind: str) -> float:
    """Cost (or tokens) per case, to 10 significant digits: sums of equal prices must compare equal."""
    total = row["cost_usd"] if kind == "cost_usd" else row["prompt_tokens"] + row["completion_tokens"]
    return float(f"{total / row['cases']:.10g}") if row["cases"] else 0.0


def pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For (cost, quality) points: True where no other point costs no more and is at least as good,
    and strictly better in one of the two."""
    out = []
    for i, (x, y) in enumerate(points):
        out.append(not any((x2 <= x and y2 >= y and (x2 < x or y2 > y)) for j, (x2, y2) in enumerate(points)
                           if j != i))
    return out


def table(groups: list[dict]) -> list[dict]:
    """Per result set (rows of ``by_model_prompt_type``): cost per case and per success, and the front."""
    sets: dict[tuple, list[dict]] = {}
    for g in groups:
        sets.setdefault((g.get("namespace"), g.get("run"), g.get("uid")), []).append(g)
    out = []
    for rows in sets.values():
        kind = axis(rows)
        usable = [r for r in rows if r["success"]["estimate"] is not None]
        front = pareto([(_x(r, kind), r["success"]["estimate"]) for r in usable]) if kind else [False] * len(usable)
        on_front = {id(r) for r, f in zip(usable, front) if f}
        for r in rows:
            out.append({**{k: r[k] for k in ("namespace", "run", "uid") if k in r},
                        "model": r["model"], "prompt_type": r["prompt_type"], "axis": kind,
                        "cases": r["cases"], "success": r["success"], "cost_usd": r["cost_usd"],
                        "tokens": r["prompt_tokens"] + r["completion_tokens"],
                        "cost_per_case": _x(r, "cost_usd") if r["cases"] else None,
                        "tokens_per_case": (r["prompt_tokens"] + r["completion_tokens"]) / r["cases"]
                        if r["cases"] else None,
                        "cost_per_success": r["cost_per_success"], "tokens_per_success": r["tokens_per_success"],
                        "pareto": id(r) in on_front})
    return out
