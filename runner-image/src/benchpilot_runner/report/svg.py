"""PURE: the HTML report's charts as inline SVG text (no library, no script): success rates with
their error bars, and success against cost with the Pareto front."""

from __future__ import annotations

from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")
W, H = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 160, 16, 70


def _y(v: float) -> float:
    return TOP + (1.0 - v) * (H - TOP - BOTTOM)


def _frame(width: int, title: str, y_label: str) -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{H}" '
           f'viewBox="0 0 {width} {H}" role="img" aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(t)
        out.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t:.0%}</text>')
    out.append(f'<text x="12" y="{(TOP + H - BOTTOM) / 2:.0f}" transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2:.0f})" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    return out


def _legend(names: list[str], x: float) -> list[str]:
    return [f'<rect x="{x:.0f}" y="{TOP + 16 * i}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14:.0f}" y="{TOP + 16 * i + 9}">{escape(str(n))}</text>' for i, n in enumerate(names)]


def _error_bar(x: float, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    y1, y2 = _y(high), _y(low)
    return (f'<path class="err" d="M{x - 3:.1f},{y1:.1f}H{x + 3:.1f}M{x:.1f},{y1:.1f}V{y2:.1f}'
            f'M{x - 3:.1f},{y2:.1f}H{x + 3:.1f}"/>')


def success_bars(rows: list[dict], title: str) -> str:
    """Grouped bars: one group per prompt type, one bar per model, each with its interval."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    prompts = list(dict.fromkeys(r["prompt_type"] for r in rows))
    width = max(W, LEFT + RIGHT + 28 * len(models) * len(prompts) + 20 * len(prompts))
    out = _frame(width, title, "success rate")
    slot = (width - LEFT - RIGHT) / max(1, len(prompts))
    bar = min(28.0, 0.8 * slot / max(1, len(models)))
    cell = {(r["model"], r["prompt_type"]): r["success"] for r in rows}
    for j, p in enumerate(prompts):
        x0 = LEFT + j * slot + (slot - bar * len(models)) / 2
        for i, m in enumerate(models):
            s = cell.get((m, p))
            if not s or s["estimate"] is None:
                continue
            x, y = x0 + i * bar, _y(s["estimate"])
            tip = f"{m} / {p}: {s['estimate']:.1%}" + (f" [{s['low']:.1%}, {s['high']:.1%}]" if s["low"] is not None
                                                       else " (n too small)")
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{_y(0) - y:.1f}" '
                       f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(tip)}</title></rect>')
            out.append(_error_bar(x + (bar - 2) / 2, s["low"], s["high"]))
        cx = LEFT + j * slot + slot / 2
        out.append(f'<text x="{cx:.1f}" y="{H - BOTTOM + 14}" text-anchor="end" '
                   f'transform="rotate(-25 {cx:.1f} {H - BOTTOM + 14})">{escape(str(p))}</text>')
    out += _legend(models, width - RIGHT + 12)
    return "\n".join(out + ["</svg>"])


def _front_path(points: list[tuple[float, float]]) -> str:
    if len(points) < 2:
        return ""
    d = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in sorted(points))
    return f'<path class="front" d="{d}"/>'


def cost_scatter(rows: list[dict], title: str) -> str:
    """Success (with its interval) against cost or tokens per case; the Pareto front joined by a line."""
    kind = rows[0]["axis"] if rows else None
    key = "cost_per_case" if kind == "cost_usd" else "tokens_per_case"
    usable = [r for r in rows if r["success"]["estimate"] is not None and r[key] is not None]
    out = _frame(W, title, "success rate")
    xs = [r[key] for r in usable] or [0.0]
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.08 if hi - lo > 1e-6 * abs(hi) else max(abs(hi) * 0.1, 1e-9)
    lo, hi = max(0.0, lo - pad), hi + pad
    models = list(dict.fromkeys(r["model"] for r in usable))

    def x_of(v: float) -> float:
        return LEFT + 10 + (v - lo) / (hi - lo) * (W - LEFT - RIGHT - 20)

    for k in range(5):
        v = lo + (hi - lo) * k / 4
        out.append(f'<line x1="{x_of(v):.1f}" x2="{x_of(v):.1f}" y1="{_y(0):.1f}" y2="{_y(0) + 4:.1f}" class="err"/>'
                   f'<text x="{x_of(v):.1f}" y="{_y(0) + 16:.1f}" text-anchor="middle">{v:.4g}</text>')

    front = []
    for r in usable:
        x, y, i = x_of(r[key]), _y(r["success"]["estimate"]), models.index(r["model"])
        front += [(x, y)] if r["pareto"] else []
        tip = (f"{r['model']} / {r['prompt_type']}: {r['success']['estimate']:.1%}, "
               f"{r[key]:.6g} {'$' if kind == 'cost_usd' else 'tokens'} per case" + (" (Pareto front)" if r["pareto"]
                                                                                   else ""))
        out.append(_error_bar(x, r["success"]["low"], r["success"]["high"]))
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if r["pareto"] else 4}" fill="{PALETTE[i % len(PALETTE)]}"'
                   f' class="{"pareto" if r["pareto"] else "point"}"><title>{escape(tip)}</title></circle>')
    out.append(_front_path(front))
    label = "$ per case" if kind == "cost_usd" else "tokens per case"
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - BOTTOM + 36}" text-anchor="middle">{label}</text>')
    out += _legend(models, W - RIGHT + 12)
    return "\n".join(out + ["</svg>"])
