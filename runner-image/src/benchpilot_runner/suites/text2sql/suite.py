"""The text2sql suite as a :class:`..base.Suite` (entry point ``text2sql``).

``spec.suiteConfig`` (every field optional)::

    dataset: s3://bucket/bird-dev      # Spider/BIRD layout (a folder or any fsspec URI); default: built-in data
    questions: dev.json                # the questions file in it (default: dev.json, questions.json, ...)
    databases: dev_databases           # the database folder in it (default: database, dev_databases, databases)
    selfConsistency: 1                 # answers sampled per question, voted by result (1-16)
    correction: true                   # one correction round fed with the database's error
    statementTimeoutSeconds: 5         # per SQL statement of the model
    rowLimit: 10000                    # rows fetched at most; more is a failure ("row_limit")
    schemaTopK: 12                     # columns retrieved (their tables and neighbours are shown)
    valueTopK: 6                       # values retrieved
    fewShotExamples: 3                 # solved examples in a few_shot prompt
    scoring: spider                    # spider (Spider's official exec rule), bird (BIRD's EX) or strict
    keepDistinct: false                # spider: keep DISTINCT (Spider's --keep_distinct); removed by default

Every row's details hold the verdict under every mode (ex_spider, ex_bird, ex_strict) and whether
they disagree; the chosen mode makes the status and score (execution accuracy).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ...contract.fields import MAX_STRING, SpecError, show
from ..base import Retrieval, Vocabulary
from . import vocab
from .scoring import DEFAULT_MODE, MODES

_URI = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\x00-\x1f]+$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class Text2SqlSuite:
    name = "text2sql"
    version = vocab.VERSION
    scoring_version = vocab.SCORING_VERSION  # in every row; bump when scoring changes (rescore applies it)
    vocabulary = Vocabulary(prompt_types=vocab.PROMPT_TYPES, task_types=vocab.TASK_TYPES,
                            difficulties=vocab.DIFFICULTIES, default_difficulties=vocab.DIFFICULTIES)
    config_fields = ("dataset", "questions", "databases", "selfConsistency", "correction",
                     "statementTimeoutSeconds", "rowLimit", "schemaTopK", "valueTopK", "fewShotExamples", "scoring",
                     "keepDistinct")
    # boolean details the report averages: valid SQL, corrected, EX under each mode, modes disagreeing
    summary_fields = ("valid", "corrected", *(f"ex_{m}" for m in MODES), "modes_disagree")

    def parse_config(self, f) -> Mapping[str, Any]:
        out: dict[str, Any] = {}
        dataset = f.string("dataset", None, max_len=MAX_STRING)
        if dataset is not None:
            if not _URI.match(dataset):
                raise SpecError("spec.suiteConfig.dataset", f"{show(dataset)} is not a folder or URI")
            out["dataset"] = dataset
        for key in ("questions", "databases"):
            value = f.string(key, None, max_len=128)
            if value is not None:
                if not _NAME.match(value) or value in (".", ".."):
                    raise SpecError(f"spec.suiteConfig.{key}", f"{show(value)} is not a file or folder name inside "
                                                               "the dataset")
                if dataset is None:
                    raise SpecError(f"spec.suiteConfig.{key}", "needs spec.suiteConfig.dataset")
                out[key] = value
        out["selfConsistency"] = f.number("selfConsistency", 1, minimum=1, maximum=16, integer=True)
        out["correction"] = f.boolean("correction", True)
        out["scoring"] = f.string("scoring", DEFAULT_MODE, allowed=MODES)
        out["keepDistinct"] = f.boolean("keepDistinct", False)
        # BIRD's evaluator gives a pair of queries 30 s: so does bird scoring unless told otherwise
        out["statementTimeoutSeconds"] = f.number("statementTimeoutSeconds", 30.0 if out["scoring"] == "bird" else 5.0,
                                                  minimum=0.0, maximum=600.0, exclusive_min=True)
        out["rowLimit"] = f.number("rowLimit", 10000, minimum=1, maximum=1_000_000, integer=True)
        out["schemaTopK"] = f.number("schemaTopK", 12, minimum=1, maximum=500, integer=True)
        out["valueTopK"] = f.number("valueTopK", 6, minimum=0, maximum=500, integer=True)
        out["fewShotExamples"] = f.number("fewShotExamples", 3, minimum=0, maximum=16, integer=True)
        return out

    def result_basis(self, spec) -> Mapping[str, Any]:
        return {"text2sql": dict(spec.suite_config)}

    def cache_texts(self, config: Mapping[str, Any], *, instances: int = 100) -> dict[str, list[tuple[str, str]]]:
        """Every database's columns (with descriptions) and sampled values, and the questions."""
        from .dataset import open_dataset

        ds = open_dataset(dict(config))
        groups: dict[str, list[tuple[str, str]]] = {}
        for db_id in sorted(ds.db_paths):
            schema = ds.schema(db_id)
            groups[f"schema:{db_id}"] = schema.column_texts()
            groups[f"values:{db_id}"] = schema.value_texts()
        questions = {}
        for it in ds.all_questions(instances):
            questions.setdefault(f"{it.question} {it.evidence}".strip(), it.question_id)
        groups["questions"] = [(qid, text) for text, qid in questions.items()]
        return groups

    def prepare(self, spec, retrieval: Retrieval):
        from .dataset import open_dataset
        from .pipeline import Text2SqlRunner

        return Text2SqlRunner(spec, open_dataset(dict(spec.suite_config)), retrieval)


SUITE = Text2SqlSuite()
