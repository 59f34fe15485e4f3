"""One text2sql case, end to end, in the style of OpenSearch-SQL — with everything heavy loaded once.

Per question: retrieve the relevant columns and values (FAISS over the shared read-only cache,
the question embedded by the process's one encoder, batched across concurrent cases; a lexical
fallback without a cache), build the prompt, ask the model, run its SQL read-only under a time
limit and a row cap, correct it once from the database's error, optionally sample several
answers and vote by result, and score by execution against the gold result (computed once per
question per process). The runner is shared by every concurrent case: it holds no per-case state.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, OrderedDict
from typing import Any, Mapping

from ...llm.base import EndpointUnavailable, LLMError
from ..base import Chat, Retrieval
from . import prompts
from .compare import spider_orders, spider_query
from .dataset import Dataset
from .items import Item, Schema, ordered
from .scoring import DEFAULT_MODE, MODES, Judged, fingerprint, outcome, verdicts
from .sim import SqlSim
from .sqlexec import ExecResult, SqlRunner

GOLD_CACHE = 8192
GOLD_ROOM = 8  # the gold query may return this many times the bytes a model's query may
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("the a an of in on for to and or is are was were with by at from which what who how many "
                  "give list their them that have has each every one all than above below".split())


def _tokens(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower().replace("_", " ")) if w not in _STOP}


class Text2SqlRunner:
    def __init__(self, spec, dataset: Dataset, retrieval: Retrieval, *, sql: SqlRunner | None = None, sleep=None):
        cfg = spec.suite_config
        self.spec, self.dataset, self.retrieval = spec, dataset, retrieval
        self.samples = int(cfg.get("selfConsistency", 1))
        self.correct = bool(cfg.get("correction", True))
        self.schema_k = int(cfg.get("schemaTopK", 12))
        self.value_k = int(cfg.get("valueTopK", 6))
        self.few_shot = int(cfg.get("fewShotExamples", 3))
        self.mode = str(cfg.get("scoring", DEFAULT_MODE))
        self.keep_distinct = bool(cfg.get("keepDistinct", False))
        self.sql = sql or SqlRunner(timeout_s=float(cfg.get("statementTimeoutSeconds", 5.0)),
                                    row_limit=int(cfg.get("rowLimit", 10000)))
        self._sleep = sleep
        self._gold: OrderedDict[tuple, asyncio.Future[ExecResult]] = OrderedDict()
        self._lexical: dict[str, tuple] = {}
        self.cache = retrieval.cache
        if self.cache is not None:
            missing = sorted(f"schema:{d}" for d in dataset.db_paths if f"schema:{d}" not in self.cache.groups)
            if missing:
                from ...resources import CacheError

                raise CacheError(f"the cache has no embeddings for {', '.join(missing[:5])}; build it for this "
                                 "dataset ('benchpilot cache build --suite text2sql --dataset ...')")

    # ------------------------------------------------------------------ the suite runner protocol
    def _item(self, case) -> Item | None:
        return self.dataset.question(case.task_type, case.difficulty, case.instance)

    def exists(self, case) -> bool:
        return self.dataset.has(case.task_type, case.difficulty, case.instance)

    def simulate(self, case, model: str, params) -> Chat:
        kwargs = {"sleep": self._sleep} if self._sleep else {}
        return SqlSim(model, params, self._item(case), case.prompt_type, case.seed, **kwargs).chat

    async def run(self, case, chat: Chat) -> Mapping[str, Any]:
        item = self._item(case)
        schema = self.dataset.loaded_schema(item.db_id) or await asyncio.to_thread(self.dataset.schema, item.db_id)
        tables, values = await self.retrieve(item, schema)
        examples = self.dataset.examples(item, self.few_shot) if case.prompt_type == "few_shot" else []
        messages = prompts.build_messages(item, case.prompt_type, prompts.render_schema(schema, tables), values,
                                          examples)
        details: dict[str, Any] = {"db": item.db_id, "question_id": item.question_id, "tables_shown": len(tables)}
        gold = await self.gold(item)
        if not gold.ok:
            why = gold.error or f"stopped by the {gold.cut.replace('_', ' ')}"
            return {"status": "error", "score": 0.0, "error_type": "gold_sql_failed",
                    "error_message": f"the dataset's gold SQL of question {item.question_id} did not run: {why}",
                    "details": details}
        candidates: list[tuple[str | None, ExecResult, bool]] = []
        try:
            # a right answer is never cut by the caps: it may return as many rows and bytes as the gold query
            rows = max(self.sql.row_limit, len(gold.rows))
            size = max(self.sql.max_bytes, gold.size)
            for _ in range(self.samples):
                candidates.append(await self._sample(item, messages, chat, rows, size))
        except EndpointUnavailable:
            raise
        except LLMError as exc:
            return {"status": "error", "score": 0.0, "error_type": exc.error_type,
                    "error_message": str(exc)[:500], "details": details}
        sql, result, corrected, votes = vote(candidates)
        judged = await self.judge(item, gold, sql, result, rows, size)
        by_mode = verdicts(judged)
        verdict = outcome(judged, self.mode, by_mode)
        details.update(sql=(sql or "")[:4000], valid=result.ok, corrected=corrected, rows=len(result.rows),
                       gold_rows=len(gold.rows), error=result.error, cut=result.cut, samples=len(candidates),
                       votes=votes, modes_disagree=len(set(by_mode.values())) > 1,
                       **{f"ex_{m}": by_mode[m] for m in MODES})
        if item.hardness:
            details["hardness"] = item.hardness
        return {"status": verdict.status, "score": verdict.score, "error_type": None, "error_message": None,
                "details": details}

    async def judge(self, item: Item, gold: ExecResult, sql: str | None, result: ExecResult, rows: int,
                    size: int) -> Judged:
        """The results every mode compares: the gold's and the prediction's as written, and as
        Spider's evaluator runs them (a second run only when that changes the text: DISTINCT, ...)."""
        gold_sql = spider_query(item.sql, keep_distinct=self.keep_distinct)
        gold_spider = gold if gold_sql == item.sql else await self.gold(item, gold_sql)
        pred_spider = result
        if sql:
            pred_sql = spider_query(sql, keep_distinct=self.keep_distinct, predicted=True)
            if pred_sql != sql:
                pred_spider = await self.execute(str(self.dataset.db_paths[item.db_id]), pred_sql, rows, size)
        return Judged(gold, result, gold_spider, pred_spider, spider_orders(gold_sql), ordered(item.sql))

    # ------------------------------------------------------------------ steps
    async def _sample(self, item: Item, messages: list[dict], chat: Chat, rows: int,
                      size: int) -> tuple[str | None, ExecResult, bool]:
        path = str(self.dataset.db_paths[item.db_id])
        answer = await chat(messages, [])
        sql = await _extract(answer.message.get("content"))
        result = await self.execute(path, sql, rows, size)
        if result.ok or not self.correct:
            return sql, result, False
        problem = result.error or {
            "time_limit": f"the query ran longer than {self.sql.timeout_s:g}s and was stopped",
            "size_limit": f"the query's result is larger than {size / 2**20:g} MB and was stopped",
        }.get(result.cut or "", f"the query returned more than {rows} rows")
        retry = messages + [answer.message if answer.message.get("content") else
                            {"role": "assistant", "content": ""}, prompts.correction(problem)]
        answer = await chat(retry, [])
        sql = await _extract(answer.message.get("content"))
        return sql, await self.execute(path, sql, rows, size), True

    async def execute(self, path: str, sql: str | None, rows: int | None = None,
                      size: int | None = None) -> ExecResult:
        if not sql:
            return ExecResult(error="no SQL query in the answer")
        return await self.sql.run(path, sql, row_limit=rows, max_bytes=size)

    async def gold(self, item: Item, sql: str | None = None) -> ExecResult:
        """The gold query's result (or that of ``sql``, the gold as Spider's evaluator runs it), run
        once per question per process (concurrent cases of the same question share the one run in flight)."""
        sql = sql or item.sql
        key = (item.db_id, sql)
        fut = self._gold.get(key)
        if fut is None:
            # the gold query gets room: it is the dataset's, not the model's
            fut = self._gold[key] = asyncio.ensure_future(self.sql.run(
                str(self.dataset.db_paths[item.db_id]), sql, timeout_s=max(30.0, self.sql.timeout_s),
                row_limit=max(100_000, self.sql.row_limit), max_bytes=GOLD_ROOM * self.sql.max_bytes))
            while len(self._gold) > GOLD_CACHE:
                self._gold.popitem(last=False)
        if fut.done():
            return fut.result()
        return await asyncio.shield(fut)  # a cancelled case leaves the shared run to the others

    async def retrieve(self, item: Item, schema: Schema) -> tuple[list[str], list[str]]:
        """The tables to show (those of the best-matching columns, and their foreign-key neighbours)
        and the best-matching values."""
        text = f"{item.question} {item.evidence}".strip()
        if self.cache is not None:
            vec = await self.cache.embed_async(text)
            cols = [k for k, _ in self.cache.search_vec(f"schema:{item.db_id}", vec, self.schema_k)]
            vals = [k for k, _ in self.cache.search_vec(f"values:{item.db_id}", vec, self.value_k)]
        else:
            cols, vals = self._lexical_search(item.db_id, schema, text)
        hit = list(dict.fromkeys(k.split(".", 1)[0] for k in cols))
        near = {b for a, _, b, _ in schema.foreign_keys if a in hit} | {a for a, _, b, _ in schema.foreign_keys
                                                                        if b in hit}
        tables = [t for t in schema.tables if t in hit or t in near] or list(schema.tables)
        values = []
        for k in vals:
            col, _, v = k.partition("=")
            values.append(f"{col} = '{v}'")
        return tables, values

    def _lexical_search(self, db_id: str, schema: Schema, text: str) -> tuple[list[str], list[str]]:
        idx = self._lexical.get(db_id)
        if idx is None:
            idx = self._lexical[db_id] = ([(k, _tokens(t)) for k, t in schema.column_texts()],
                                          [(k, _tokens(t)) for k, t in schema.value_texts()])
        q = _tokens(text)

        def top(rows, k):
            scored = sorted(((len(q & toks), i) for i, (_, toks) in enumerate(rows)), key=lambda x: (-x[0], x[1]))
            return [rows[i][0] for s, i in scored[:k] if s > 0]
        return top(idx[0], self.schema_k), top(idx[1], self.value_k)


async def _extract(content) -> str | None:
    """The query in an answer; a long answer (reasoning models write pages) is read off the event loop."""
    if isinstance(content, str) and len(content) > 20_000:
        return await asyncio.to_thread(prompts.extract_sql, content)
    return prompts.extract_sql(content)


def vote(candidates: list[tuple[str | None, ExecResult, bool]]) -> tuple[str | None, ExecResult, bool, int]:
    """Self-consistency: the answer whose result most samples share (ties: the earliest); with no
    sample that ran, the first sample."""
    runs = [(i, fingerprint(r)) for i, (_, r, _) in enumerate(candidates) if r.ok]
    if not runs:
        sql, result, corrected = candidates[0]
        return sql, result, corrected, 0
    counts = Counter(fp for _, fp in runs)
    best = max(runs, key=lambda x: (counts[x[1]], -x[0]))
    sql, result, corrected = candidates[best[0]]
    return sql, result, corrected, counts[best[1]]

