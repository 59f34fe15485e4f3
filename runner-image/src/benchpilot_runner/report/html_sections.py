"""PURE: the sections of the HTML report, each from the report's dict (the JSON)."""

from __future__ import annotations

from . import fmt, svg
from .html_parts import attrs, diff_td, e, mean_td, num, rate_td, section, table, td, where

HOW_TO_READ = (
    "Every rate and mean carries its 95 % confidence interval: <b>73 % [52, 88]</b> means the data are "
    "consistent with a true rate anywhere from 52 % to 88 %. Two cells whose intervals overlap may well not "
    "differ. Differences are judged on the <i>same</i> cases (paired): a difference marked in bold is "
    "statistically significant after Holm's adjustment for the number of comparisons; a grey one cannot be told "
    "from noise — do not rank by it. Rates are over the cases with a final outcome; errors and timeouts are the "
    "infrastructure's and are counted apart. Where one item (task or question) appears more than once in a "
    "group (one model over several prompt types), standard errors are clustered by item. "
    "“n too small”: fewer than two cases or items.")


def summary_section(s: dict) -> str:
    facts = [("cases", s["total"]), ("with a final outcome", s["final"]), ("to retry (error/timeout)", s["retryable"]),
             ("superseded or duplicate rows dropped", s["duplicate_rows_dropped"]), ("parts read", s["parts"]),
             ("unreadable parts", len(s["unreadable_parts"])), ("tokens in", s["tokens"]["prompt_tokens"]),
             ("tokens out", s["tokens"]["completion_tokens"]), ("cost $", f"{s['cost_usd']:.4f}")]
    facts += [(f"status {k}", v) for k, v in s["counts"].items()]
    rows = [f"<tr><td class=l>{e(k)}</td>{td(v, key=k)}</tr>" for k, v in facts]
    sets = [f"<tr>{td(r['namespace'], 'l')}{td(r['run'], 'l')}{td(r['uid'], 'l')}{td(r.get('suite'), 'l')}"
            f"{td(r['cases'])}</tr>" for r in s["result_sets"]]
    warn = f'<p class="warning">{e(s["warning"])}</p>' if s.get("warning") else ""
    unread = (f'<p class="warning">{len(s["unreadable_parts"])} parts could not be read and are left out: '
              f'{e(", ".join(s["unreadable_parts"][:5]))}</p>') if s["unreadable_parts"] else ""
    body = (warn + unread + f'<p class="how">{HOW_TO_READ}</p>' + table("summary", ["", "value"], rows)
            + table("result-sets", ["namespace", "run", "uid", "suite", "cases"], sets, left=4))
    return section("Summary", body, "summary-section")


def group_section(s: dict, key: str, first: str | None, title: str) -> str:
    label = fmt.success_label(s.get("suites") or [])
    several = bool(s.get("warning"))
    flags = s.get("flags") or []
    head = (["result set"] if several else []) + ["model"] + ([first.replace("_", " ")] if first else [])
    head += ["cases", "final", f"{label} [95% CI]", "partial [95% CI]", *(f"{f} [95% CI]" for f in flags),
             "mean score [95% CI]", "latency s [95% CI]", "tokens in", "tokens out", "cost $", "$ / success",
             "tokens / success", "errors", "timeouts"]
    rows = []
    for g in s[key]:
        keys = {"model": g["model"], **({first: g[first]} if first else {}), **({"uid": g["uid"]} if several else {})}
        cells = ([td(fmt.set_name(g), "l")] if several else []) + [td(g["model"], "l")]
        cells += [td(g[first], "l")] if first else []
        cells += [td(g["cases"]), td(g["final"]), rate_td(g["success"], "success"), rate_td(g["partial"], "partial")]
        cells += [rate_td(g["flags"].get(f), f"flag-{f}") for f in flags]
        cells += [mean_td(g["score"], "score"), mean_td(g["latency_s"], "latency_s"), td(g["prompt_tokens"]),
                  td(g["completion_tokens"]), td(f"{g['cost_usd']:.4f}"), td(fmt.per_success(g["cost_per_success"], 6)),
                  td(fmt.per_success(g["tokens_per_success"], 0)), td(g["counts"]["error"]),
                  td(g["counts"]["timeout"])]
        rows.append(f"<tr{attrs(row='1', **keys)}>{''.join(cells)}</tr>")
    chart = ""
    if key == "by_model_prompt_type" and s[key]:
        for sid, rows_of in _per_set(s[key]).items():
            chart += svg.success_bars(rows_of, f"{label} by model × prompt type{sid} (bars: 95 % CI)")
    return section(title, table(key, head, rows, left=int(several) + 1 + int(bool(first))) + chart, f"{key}-section")


def _per_set(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(f" — {r['run']}/{r['uid']}" if "uid" in r else "", []).append(r)
    return out


def _matrix(c: dict) -> str:
    names = [r["model"] for r in c["ranking"]]
    pair = {(r["a"], r["b"]): r for r in c["pairs"]}
    rows = []
    for a in names:
        cells = [td(a, "l")]
        for b in names:
            r = pair.get((a, b)) or pair.get((b, a))
            if a == b or r is None:
                cells.append(td("", "self"))
                continue
            j = dict(r["success_diff"])
            if r["a"] != a and j.get("estimate") is not None:  # shown as row minus column
                j.update(estimate=-j["estimate"], low=-j["high"] if j["high"] is not None else None,
                         high=-j["low"] if j["low"] is not None else None)
            cells.append(diff_td(j, r["significant"], "success_diff", r["p_holm"]).replace(
                "<td", f'<td data-a="{e(a)}" data-b="{e(b)}"', 1))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return table(f"matrix-{c['uid']}", ["row − column"] + names, rows)


def comparisons_section(s: dict) -> str:
    several, body = bool(s.get("warning")), ""
    for c in s.get("comparisons", []):
        if len(c["ranking"]) < 2:
            continue
        groups = "; ".join("{" + ", ".join(g) + "}" for g in c["tied_groups"])
        body += (f"<h3>Pairwise matrix{e(where(c, several))}</h3><p class=note>Success of the row's model minus the "
                 "column's, in points, on the cases both have a final outcome for (same prompt type and item), with "
                 "the paired 95 % CI; bold: significant after Holm. Hover a cell for its p-value.</p>" + _matrix(c)
                 + f'<p>Statistically tied groups (no two members differ significantly): <b class="tied-groups">'
                 f"{e(groups)}</b></p>")
        body += table(f"pairs-{c['uid']}", ["a", "b", "pairs", "items", "a success", "b success", "Δ success [95% CI]",
                                            "a only", "b only", "p exact", "p clustered", "test", "p (Holm)",
                                            "Δ mean score [95% CI]", "score p (Holm)"],
                      [_pair_row(r) for r in c["pairs"]], left=2)
    return section("Models compared (paired)", body or "<p>Fewer than two models: nothing to compare.</p>",
                   "comparisons-section")


def _pair_row(r: dict, first: tuple[str, str] = ("a", "b")) -> str:
    pct = (lambda x: fmt.DASH if x is None else f"{x:.1%}")
    lead = [td(r[first[0]] if r.get(first[0]) is not None else "all models", "l"), td(r[first[1]], "l")]
    cells = lead + [td(r["pairs"]), td(r["items"]), td(pct(r["a_success"]), est=num(r["a_success"])),
                    td(pct(r["b_success"]), est=num(r["b_success"])),
                    diff_td(r["success_diff"], r["significant"], "success_diff", r["p_holm"]),
                    td(r["a_only"]), td(r["b_only"]), td(fmt.pvalue(r["p_exact"]), p=num(r["p_exact"])),
                    td(fmt.pvalue(r["p_clustered"]), p=num(r["p_clustered"])), td(r["test"], "l"),
                    td(fmt.pvalue(r["p_holm"]), p=num(r["p_holm"])),
                    diff_td(r["score_diff"], (r["score_p_holm"] or 1) < 0.05, "score_diff", r["score_p_holm"]),
                    td(fmt.pvalue(r["score_p_holm"]), p=num(r["score_p_holm"]))]
    return f"<tr{attrs(row='1', a=r.get(first[0]) or '', b=r[first[1]])}>{''.join(cells)}</tr>"


def robustness_section(s: dict) -> str:
    several, body = bool(s.get("warning")), ""
    for block in s.get("robustness", []):
        if not block["rows"]:
            body += f"<p class=note>{e(block.get('note'))}{e(where(block, several))}</p>"
            continue
        prompts = list(dict.fromkeys(r["prompt_type"] for r in block["rows"]))
        cell = {(r["model"], r["prompt_type"]): r for r in block["rows"]}
        rows = []
        for model in dict.fromkeys(r["model"] for r in block["rows"]):
            cells = [td(model or "all models", "l")]
            for p in prompts:
                r = cell.get((model, p))
                cells.append(diff_td(r["success_diff"], r["significant"], "success_diff", r["p_holm"]).replace(
                    "<td", f'<td data-model="{e(model or "")}" data-prompt="{e(p)}"', 1) if r else td(fmt.DASH))
            rows.append(f"<tr>{''.join(cells)}</tr>")
        body += (f"<h3>Against {e(block['reference'])}{e(where(block, several))}</h3><p class=note>Each prompt type's "
                 f"success minus {e(block['reference'])}'s, in points, per model on the same items (all models: "
                 "pooled, clustered by item), with the paired 95 % CI; bold: significant after Holm.</p>"
                 + table(f"robustness-{block['uid']}", ["model"] + prompts, rows)
                 + table(f"robustness-detail-{block['uid']}",
                         ["model", "prompt type", "pairs", "items", "success", f"{block['reference']} success",
                          "Δ success [95% CI]", "only this", f"only {block['reference']}", "p exact", "p clustered",
                          "test", "p (Holm)", "Δ mean score [95% CI]", "score p (Holm)"],
                         [_pair_row(r, ("model", "prompt_type")) for r in block["rows"]], left=2))
    return section("Robustness: prompt types against the reference", body, "robustness-section")


def cost_section(s: dict) -> str:
    body = ""
    sets: dict[str, list[dict]] = {}
    for r in s.get("cost", []):
        sets.setdefault(f" — {r['run']}/{r['uid']}" if "uid" in r else "", []).append(r)
    for sid, rows in sets.items():
        if rows[0]["axis"] is None:
            body += f"<p class=note>No cost or tokens recorded{e(sid)} (simulated models, or no price).</p>"
        else:
            body += svg.cost_scatter(rows, f"Success against {'cost' if rows[0]['axis'] == 'cost_usd' else 'tokens'}"
                                           f" per case{sid} (bars: 95 % CI; ringed and joined: Pareto front)")
        body += table(f"cost{sid.replace(' — ', '-').replace('/', '-')}",
                      ["model", "prompt type", "success [95% CI]", "$ / case", "$ / success", "tokens / case",
                       "tokens / success", "Pareto front"],
                      [f"<tr{attrs(row='1', model=r['model'], prompt_type=r['prompt_type'])}>{td(r['model'], 'l')}"
                       f"{td(r['prompt_type'], 'l')}{rate_td(r['success'], 'success')}"
                       f"{td(fmt.per_success(r['cost_per_case'], 6))}{td(fmt.per_success(r['cost_per_success'], 6))}"
                       f"{td(fmt.per_success(r['tokens_per_case'], 0))}"
                       f"{td(fmt.per_success(r['tokens_per_success'], 0))}"
                       f"{td('yes' if r['pareto'] else '', pareto=str(r['pareto']).lower())}</tr>" for r in rows],
                      left=2)
    return section("Cost against quality", body or "<p>No groups.</p>", "cost-section")


def tool_calling_section(s: dict) -> str:
    """Each endpoint model's tool-calling mode, and how often its calls came as text (native) or could not
    be read (prompt); nothing when no model recorded a mode (simulated models, suites without tools)."""
    groups = s.get("tool_calling") or []
    if not groups:
        return ""
    def rate(x) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"
    rows = [f"<tr{attrs(row='1', model=g['model'])}>{td(g['model'], 'l')}{td(g['mode'], 'l')}{td(g['cases'])}"
            f"{td(rate(g['content_tool_call_rate']))}{td(rate(g['unreadable_call_rate']))}</tr>" for g in groups]
    return section("Tool calling by model", table("tool-calling", ["model", "mode", "cases", "calls in text (native)",
                                                                   "unreadable calls (prompt)"], rows, left=2),
                   "tool-calling-section")
