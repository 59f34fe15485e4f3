"""The workflow suite as a :class:`..base.Suite` (entry point ``workflow``)."""

from __future__ import annotations

from typing import Any, Mapping

from ..base import Retrieval, Vocabulary
from . import vocab


class WorkflowSuite:
    name = "workflow"
    version = vocab.VERSION
    scoring_version = vocab.SCORING_VERSION  # in every row; bump when scoring changes (rescore applies it)
    vocabulary = Vocabulary(prompt_types=vocab.PROMPT_TYPES, task_types=vocab.TASK_TYPES,
                            difficulties=vocab.DIFFICULTIES, default_difficulties=("easy",))
    config_fields: tuple[str, ...] = ()  # the workflow suite takes no configuration
    matrix_fields = {"toolSuccessRate": vocab.TOOL_SUCCESS_RATE}  # its own field of spec.matrix, with its default
    summary_fields: tuple[str, ...] = ()

    def parse_config(self, fields) -> Mapping[str, Any]:
        return {}

    def parse_matrix(self, fields) -> Mapping[str, Any]:
        return {"toolSuccessRate": fields.number("toolSuccessRate", vocab.TOOL_SUCCESS_RATE, minimum=0.0, maximum=1.0)}

    def result_basis(self, spec) -> Mapping[str, Any]:
        basis: dict[str, Any] = {"tsr": vocab.tool_success_rate(spec)}
        prompt = sorted(m.name for m in spec.models if m.tool_calling == "prompt")
        if prompt:  # switching a model's mode changes its results, not its case ids (absent: uids as before)
            basis["toolCalling"] = prompt
        return basis

    def cache_texts(self, config: Mapping[str, Any], *, instances: int = 100) -> dict[str, list[tuple[str, str]]]:
        """The tool texts, and the task descriptions of every (task type, difficulty, instance < instances)."""
        from . import generator
        from .registry import TOOLS

        lexical = generator.LexicalRetriever()
        tasks = {}
        for task_type in vocab.TASK_TYPES:
            for difficulty in vocab.DIFFICULTIES:
                for i in range(instances):
                    d = generator.generate(task_type, difficulty, i, retriever=lexical).description
                    tasks.setdefault(d, None)
        return {"tools": [(t.name, t.text()) for t in TOOLS], "tasks": [("", d) for d in tasks]}

    def prepare(self, spec, retrieval: Retrieval):
        from .case import WorkflowRunner

        return WorkflowRunner.from_retrieval(spec, retrieval)


SUITE = WorkflowSuite()
