"""The text-to-SQL suite: retrieval through the shared encoder and cache, SQL generation, read-only
execution with limits, one correction round, self-consistency, execution accuracy."""

from .suite import SUITE  # noqa: F401 - the entry point benchpilot.suites:text2sql
