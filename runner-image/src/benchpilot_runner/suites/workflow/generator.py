"""Task generation: a case (task type, difficulty, instance) becomes a concrete tool-use task.

Pure and deterministic: the same case always gives the same task. The required workflow comes
from per-task-type templates; the tools offered to the model are the required ones plus
distractors retrieved by similarity to the task text (embedding retrieval through the cache's
FAISS index when one is loaded, a lexical fallback otherwise).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from .vocab import VERSION as SUITE_VERSION
from .registry import BY_NAME, TOOLS

# how many steps each task type has at easy difficulty; medium adds 1, hard adds 2
BASE_STEPS = {"simple_task": 1, "basic_task": 3, "data_pipeline": 4, "api_integration": 4,
              "multi_stage_pipeline": 6}
EXTRA_STEPS = {"easy": 0, "medium": 1, "hard": 2}
OFFERED_TOOLS = {"easy": 8, "medium": 12, "hard": 16}

DATASETS = ("sales", "orders", "customers", "invoices", "shipments", "tickets", "sensors", "payroll")
SERVICES = ("crm", "billing", "inventory", "weather", "analytics")
FIELDS = ("amount", "region", "status", "price", "quantity", "score")
SCHEMAS = ("order_v2", "customer_v1", "event_v3")


@dataclass(frozen=True)
class Step:
    tool: str
    args: tuple[tuple[str, object], ...]  # sorted (name, value) pairs; hashable

    @property
    def kwargs(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.args}

    def render(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.args)
        return f"{self.tool}({args})"


def _fmt(v: object) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def step(tool: str, **args: object) -> Step:
    assert tool in BY_NAME, tool
    return Step(tool, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in args.items())))


@dataclass(frozen=True)
class Task:
    task_id: str
    task_type: str
    difficulty: str
    description: str
    steps: tuple[Step, ...]
    offered: tuple[str, ...]  # tool names, in the order shown to the model


class Retriever(Protocol):
    def retrieve(self, text: str, k: int) -> list[str]:
        """Names of the k tools most similar to ``text``, most similar first."""


_WORD = re.compile(r"[a-z]+")


class LexicalRetriever:
    """Fallback retrieval by word overlap; deterministic, no model needed."""

    def __init__(self) -> None:
        self._bags = [(t.name, set(_WORD.findall(t.text().lower()))) for t in TOOLS]

    def retrieve(self, text: str, k: int) -> list[str]:
        words = set(_WORD.findall(text.lower()))
        scored = sorted(self._bags, key=lambda nb: (-len(words & nb[1]) / (1 + len(nb[1])), nb[0]))
        return [name for name, _ in scored[:k]]


# ----------------------------------------------------------------------------- templates
# A stage is a function (rng, ctx) -> (Step, phrase). ctx carries names chosen for the task.


def _src_file(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    fmt = ctx.setdefault("fmt", rng.choice(("csv", "json")))
    path = f"/data/{ctx['dataset']}_{ctx['n']}.{fmt}"
    return step("file_reader", path=path), f"read the {ctx['dataset']} data from {path}"


def _parse(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    if ctx.get("fmt", "json") == "csv":
        delim = rng.choice((",", ";", "|"))
        return (step("csv_parser", delimiter=delim, has_header=True),
                f"parse it as CSV with delimiter '{delim}' and a header row")
    return step("json_parser"), "parse it as JSON records"


def _validate(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    schema = rng.choice(SCHEMAS)
    return (step("schema_validator", schema=schema, strict=True),
            f"validate the records strictly against schema '{schema}'")


def _filter(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    field = rng.choice(("amount", "price", "quantity", "score"))
    limit = rng.choice((10, 50, 100, 250, 1000))
    cond = f"{field} > {limit}"
    ctx["condition"] = cond
    return step("data_filter", condition=cond), f"keep only records where {cond}"


def _transform(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    op = rng.choice(("normalize", "uppercase", "round"))
    fields = sorted(rng.sample(FIELDS, 2))
    return (step("data_transformer", operation=op, fields=fields),
            f"{op} the fields {' and '.join(fields)}")


def _dedupe(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    key = rng.choice(("id", "email", "order_id"))
    return step("deduplicator", key=key), f"remove duplicate records by {key}"


def _aggregate(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    group = rng.choice(("region", "status", "customer"))
    fn = rng.choice(("sum", "mean", "count", "max"))
    return (step("data_aggregator", group_by=group, function=fn),
            f"aggregate with {fn} grouped by {group}")


def _sort(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    field = rng.choice(FIELDS)
    desc = rng.random() < 0.5
    return (step("data_sorter", field=field, descending=desc),
            f"sort by {field} in {'descending' if desc else 'ascending'} order")


def _join(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    other = rng.choice([d for d in DATASETS if d != ctx["dataset"]])
    how = rng.choice(("inner", "left"))
    return (step("data_joiner", other=other, on="id", how=how),
            f"{how}-join it with the {other} dataset on id")


def _write(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    fmt = rng.choice(("parquet", "csv", "json"))
    path = f"/out/{ctx['dataset']}_{ctx['n']}_clean.{fmt}"
    ctx["out"] = path
    return step("file_writer", path=path, format=fmt), f"save the result as {fmt} to {path}"


def _auth(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    return step("api_authenticator", service=ctx["service"]), f"authenticate to the {ctx['service']} API"


def _fetch(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    if rng.random() < 0.5:
        size = rng.choice((50, 100, 200))
        ep = f"/v1/{ctx['dataset']}"
        return (step("api_paginator", endpoint=ep, page_size=size),
                f"fetch every page of {ep} with {size} records per page")
    url = f"https://{ctx['service']}.example.com/v1/{ctx['dataset']}"
    return step("network_fetcher", url=url, method="GET"), f"GET {url}"


def _db_write(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    mode = rng.choice(("append", "overwrite"))
    table = f"{ctx['dataset']}_{ctx['service']}"
    return step("database_writer", table=table, mode=mode), f"{mode} the records into table {table}"


def _query(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    q = f"SELECT * FROM {ctx['dataset']} WHERE year = {2020 + ctx['n'] % 6}"
    return (step("database_query", query=q, database="warehouse"),
            f"query the warehouse database with \"{q}\"")


def _classify(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    labels = sorted(rng.sample(("urgent", "normal", "spam", "billing", "technical"), 3))
    return (step("text_classifier", labels=labels, field="description"),
            f"classify the description field into {', '.join(labels)}")


def _report(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    fmt = rng.choice(("pdf", "html", "markdown"))
    title = f"{ctx['dataset'].title()} report {ctx['n']}"
    ctx["title"] = title
    return step("report_generator", title=title, format=fmt), f"generate a {fmt} report titled '{title}'"


def _email(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    to = f"team-{ctx['dataset']}@example.com"
    subject = ctx.get("title", f"{ctx['dataset']} results")
    return step("email_sender", to=to, subject=subject), f"email it to {to} with subject '{subject}'"


def _cache(rng: random.Random, ctx: dict) -> tuple[Step, str]:
    key = f"{ctx['dataset']}:{ctx['n']}"
    return step("cache_store", key=key, ttl_seconds=3600), f"cache the result under key '{key}' for an hour"


# core stages per task type, and optional middle stages used to reach the step count
TEMPLATES = {
    "simple_task": ([_src_file], [_parse, _write]),
    "basic_task": ([_src_file, _parse, _write], [_filter, _sort, _dedupe]),
    "data_pipeline": ([_src_file, _parse, _filter, _write], [_validate, _transform, _aggregate, _join]),
    "api_integration": ([_auth, _fetch, _parse, _db_write], [_transform, _filter, _dedupe, _cache]),
    "multi_stage_pipeline": ([_query, _filter, _aggregate, _write, _report, _email],
                             [_join, _classify, _transform, _sort]),
}
# index before which optional stages are inserted (after the source/parse prefix)
INSERT_AT = {"simple_task": 1, "basic_task": 2, "data_pipeline": 3, "api_integration": 3,
             "multi_stage_pipeline": 2}


def task_seed(task_type: str, difficulty: str, instance: int, suite_version: str = SUITE_VERSION) -> int:
    """The seed of a task: every model and prompt type of a cell faces the very same task."""
    key = f"{suite_version}|{task_type}|{difficulty}|{instance}".encode()
    return int(hashlib.sha256(key).hexdigest()[:12], 16)


def generate(task_type: str, difficulty: str, instance: int, seed: int | None = None,
             retriever: Retriever | None = None) -> Task:
    """The task of (task type, difficulty, instance); ``seed`` defaults to :func:`task_seed`."""
    if seed is None:
        seed = task_seed(task_type, difficulty, instance)
    rng = random.Random(seed)
    ctx: dict = {"dataset": rng.choice(DATASETS), "service": rng.choice(SERVICES), "n": instance + 1}
    if task_type == "api_integration":
        ctx["fmt"] = "json"
    core, optional = TEMPLATES[task_type]
    n_steps = BASE_STEPS[task_type] + EXTRA_STEPS[difficulty]
    stages = list(core)
    if task_type == "simple_task":
        stages = stages + optional[: n_steps - 1]
    else:
        extra = rng.sample(optional, min(len(optional), max(0, n_steps - len(core))))
        at = INSERT_AT[task_type]
        stages = stages[:at] + extra + stages[at:]
    built = [stage(rng, ctx) for stage in stages]
    steps = tuple(s for s, _ in built)
    phrases = [p for _, p in built]
    description = _sentence(phrases)
    required = [s.tool for s in steps]
    k = OFFERED_TOOLS[difficulty]
    similar = (retriever or LexicalRetriever()).retrieve(description, k + len(required))
    offered = list(dict.fromkeys(required + [t for t in similar if t not in required]))[:max(k, len(required))]
    rng.shuffle(offered)
    return Task(task_id=f"{task_type}-{difficulty}-{instance}", task_type=task_type, difficulty=difficulty,
                description=description, steps=steps, offered=tuple(offered))


def _sentence(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        body = phrases[0]
    else:
        body = ", ".join(phrases[:-1]) + ", and then " + phrases[-1]
    return body[0].upper() + body[1:] + "."
