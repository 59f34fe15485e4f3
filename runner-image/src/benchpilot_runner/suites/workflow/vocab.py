"""The workflow suite's vocabulary and version. Pure."""

from __future__ import annotations

from ...spec import WORKFLOW_VERSION

VERSION = WORKFLOW_VERSION  # bumped whenever generation or scoring changes (it is in every case id)
PROMPT_TYPES = (
    "baseline",
    "optimal",
    "cot",
    "flawed_sequence_disorder",
    "flawed_tool_misuse",
    "flawed_parameter_error",
    "flawed_missing_step",
    "flawed_redundant_operations",
    "flawed_logical_inconsistency",
    "flawed_semantic_drift",
)
TASK_TYPES = ("simple_task", "basic_task", "data_pipeline", "api_integration", "multi_stage_pipeline")
DIFFICULTIES = ("easy", "medium", "hard")
