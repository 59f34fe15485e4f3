"""The tool-use workflow suite: generator, flaws, simulated tools, scoring and simulated models."""

from .suite import SUITE  # noqa: F401 - the entry point benchpilot.suites:workflow
