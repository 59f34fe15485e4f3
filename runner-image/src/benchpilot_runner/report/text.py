"""The report in the terminal: tables with intervals, then which differences are significant."""

from __future__ import annotations

import sys

from . import answers, fmt, tools

NOISE = ("Intervals are {c:.0%}, each on its own; a difference is significant (*) only when its p-value, "
         "Holm-adjusted for the number of comparisons, is below {a:g}. Unmarked differences cannot be told "
         "from noise: do not rank by them.")


def _console(console):
    from rich.console import Console

    return console or Console(stderr=False, width=None if sys.stdout.isatty() else 160)


def _group_table(summary: dict, title: str, key: str, first: str):
    from rich.table import Table

    label = fmt.success_label(summary.get("suites") or [])
    flags = summary.get("flags") or []
    lead = ["result set"] if summary.get("warning") else []
    table = Table(title=title)
    for col in (*lead, "model", first, "cases", f"{label} [95% CI]", "partial", *flags, "mean score [95% CI]",
                "latency s", "tokens in", "tokens out", "cost $", "errors", "timeouts"):
        table.add_column(col, justify="left" if col in ("result set", "model", first) else "right",
                         no_wrap="CI" in col)
    for g in summary[key]:
        head = [fmt.set_name(g)] if lead else []
        pct = (lambda x: fmt.DASH if x is None else f"{x:.0%}")
        table.add_row(*head, g["model"], str(g[first]), str(g["cases"]), fmt.rate(g["success"]),
                      pct(g["partial_rate"]), *(pct(g.get(f + "_rate")) for f in flags), fmt.mean(g["score"]),
                      fmt.DASH if g["mean_latency_s"] is None else f"{g['mean_latency_s']:.2f}",
                      str(g["prompt_tokens"]), str(g["completion_tokens"]), f"{g['cost_usd']:.4f}",
                      str(g["counts"]["error"]), str(g["counts"]["timeout"]))
    return table


def _cost_table(summary: dict):
    from rich.table import Table

    rows = [r for r in summary.get("cost", []) if r["axis"] == "cost_usd"]
    if not rows:
        return None
    table = Table(title="Cost against quality (* on the Pareto front: none cheaper and at least as good)")
    for col in ("model", "prompt type", "success [95% CI]", "$ / case", "$ / success", "tokens / success", "front"):
        table.add_column(col, justify="left" if col in ("model", "prompt type") else "right", no_wrap="CI" in col)
    for r in rows:
        table.add_row(r["model"], r["prompt_type"], fmt.rate(r["success"]), fmt.per_success(r["cost_per_case"], 6),
                      fmt.per_success(r["cost_per_success"], 6), fmt.per_success(r["tokens_per_success"], 0),
                      "*" if r["pareto"] else "")
    return table


def _model_lines(summary: dict) -> list[str]:
    lines = []
    for c in summary.get("comparisons", []):
        if len(c["ranking"]) < 2:
            continue
        where = f" ({fmt.set_name(c)})" if summary.get("warning") else ""
        lines.append(f"Models compared on the same cases{where} (success, points, paired 95% CI, Holm-adjusted p):")
        for r in c["pairs"]:
            verdict = "significant" if r["significant"] else "not significant"
            lines.append(f"  {r['a']} − {r['b']}: {fmt.diff(r['success_diff'])} on {r['pairs']} pairs, "
                         f"p {fmt.pvalue(r['p_holm'])} ({r['test']}) → {verdict}")
        groups = " ".join("{" + ", ".join(g) + "}" for g in c["tied_groups"])
        lines.append(f"  statistically tied groups (no two models of a group differ significantly): {groups}")
    return lines


def _robustness_table(block: dict, several: bool):
    from rich.table import Table

    prompts = list(dict.fromkeys(r["prompt_type"] for r in block["rows"]))
    where = f" ({fmt.set_name(block)})" if several else ""
    table = Table(title=f"Robustness{where}: success against {block['reference']} "
                        "(points, paired 95% CI; * significant after Holm)")
    table.add_column("model", justify="left")
    for p in prompts:
        table.add_column(p, justify="right")
    cell = {(r["model"], r["prompt_type"]): r for r in block["rows"]}
    for model in dict.fromkeys(r["model"] for r in block["rows"]):
        table.add_row(model or "all models", *(fmt.diff(cell[model, p]["success_diff"], cell[model, p]["significant"])
                                              if (model, p) in cell else fmt.DASH for p in prompts))
    return table


def render(summary: dict, console=None) -> None:
    console = _console(console)
    if summary.get("warning"):
        console.print(f"[bold yellow]warning:[/] {summary['warning']}")
    label = fmt.success_label(summary.get("suites") or []).capitalize()
    console.print(_group_table(summary, f"{label} by model × prompt type", "by_model_prompt_type", "prompt_type"))
    console.print(_group_table(summary, f"{label} by model × task type", "by_task_type", "task_type"))
    cost = _cost_table(summary)
    if cost is not None:
        console.print(cost)
    for line in _model_lines(summary):
        console.print(line, highlight=False)
    for block in summary.get("robustness", []):
        if block["rows"]:
            console.print(_robustness_table(block, bool(summary.get("warning"))))
        elif block.get("note"):
            console.print(f"robustness ({fmt.set_name(block)}): {block['note']}", highlight=False)
    tools.render(summary, console)
    if summary.get("flag_counts"):
        console.print("cases where " + ", ".join(f"{k} {v}" for k, v in summary["flag_counts"].items())
                      + f" (of {summary['total']})", highlight=False)
    for line in answers.lines(summary):
        console.print(line, highlight=False)
    if summary.get("total"):
        console.print(NOISE.format(c=summary.get("confidence", 0.95), a=summary.get("alpha", 0.05)), highlight=False)
    console.print(f"{summary['total']} cases, {summary['final']} with a final outcome, {summary['retryable']} to "
                  f"retry (error/timeout); {summary['duplicate_rows_dropped']} superseded or duplicate rows dropped; "
                  f"tokens {summary['tokens']['prompt_tokens']} in / {summary['tokens']['completion_tokens']} out; "
                  f"cost ${summary['cost_usd']:.4f}; counts {summary['counts']}", highlight=False)
