"""The text2sql suite's vocabulary and version. Pure."""

from __future__ import annotations

VERSION = "text2sql-1"  # in every case id: bump when data generation, prompts or scoring change
SCORING_VERSION = "text2sql-scoring-2"  # of the code that turns an answer into a verdict: spider, bird and strict rules (issue 17)
PROMPT_TYPES = (
    "zero_shot",  # the schema (retrieved part), relevant values and the question
    "few_shot",  # plus solved examples from the same database
    "cot",  # asked to reason about tables, joins and filters before the SQL
    "misleading_column_hint",  # a hint that names a wrong column; the model must see through it
    "misleading_join_hint",  # a hint that names a wrong join; likewise
)
MISLEADING = ("misleading_column_hint", "misleading_join_hint")
# the shape of the gold SQL (a bring-your-own dataset's questions are classified by their gold SQL)
TASK_TYPES = ("filter", "join", "aggregate", "nested", "set_operation")
DIFFICULTIES = ("simple", "moderate", "challenging")  # BIRD's; Spider's questions are rated by their SQL
