"""``benchpilot report``: results read back, one row per case, summarised with their uncertainty.

loading  every part under a URI, deduplicated by case (Arrow)
frame    the cases as numpy codes and values
groups   rates and means per group, with intervals        compare  paired comparisons, robustness
cost     cost and tokens per success, Pareto front       cases    the non-success cases listed
summary  all of it as one dict (the JSON)                text     the terminal tables
plots    the PNG                                         svg, html  the self-contained HTML page
tools    each model's tool-calling mode (toolCalling)

Result sets with different run uids under one root (e.g. ``toolSuccessRate`` changed between runs)
are never merged: the summary says so and groups and compares by result set.
"""

from __future__ import annotations

import json

from ..contract.layout import PART_RE
from .compare import ReferenceError
from .loading import Loaded, case_details, dedupe, load, losers_of, winners
from .summary import summarize


def to_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str)


def render_table(summary: dict, console=None) -> None:
    from .text import render

    render(summary, console)


def plot(summary: dict, path: str) -> None:
    from .plots import success_png

    success_png(summary, path)


def write_html(summary: dict, path: str) -> None:
    from .html import write

    write(summary, path)


__all__ = ["PART_RE", "Loaded", "ReferenceError", "load", "summarize", "render_table", "plot", "write_html",
           "to_json", "dedupe", "winners", "losers_of", "case_details"]
