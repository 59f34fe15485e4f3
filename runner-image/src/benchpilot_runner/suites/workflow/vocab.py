"""The workflow suite's vocabulary and version. Pure."""

from __future__ import annotations

VERSION = "workflow-1"  # bumped whenever generation or scoring changes (it is in every case id)
SCORING_VERSION = "workflow-scoring-1"  # of the code that turns an answer into a verdict: the calls against the steps (scoring.py)
TOOL_SUCCESS_RATE = 0.8  # matrix.toolSuccessRate: the simulated tools' success rate
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


def tool_success_rate(spec) -> float:
    """The run's ``matrix.toolSuccessRate`` (parsed by the suite: :meth:`WorkflowSuite.parse_matrix`)."""
    return spec.matrix.suite_field("toolSuccessRate", TOOL_SUCCESS_RATE)
