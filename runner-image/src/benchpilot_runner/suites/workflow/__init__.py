"""The tool-use workflow suite: generator, flaws, simulated tools, scoring and simulated models."""

from .case import CaseRunner, TIMEOUT_ROW_FIELDS  # noqa: F401
