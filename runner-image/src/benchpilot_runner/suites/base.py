"""The suite interface: what the parser, scheduler, cache builder, report and simulated models ask of a suite.

A suite is an object (found by name through the ``benchpilot.suites`` entry-point group, see
:mod:`benchpilot_runner.suites`) with:

- ``name`` and ``version``: the version is part of every case id; bump it whenever case building
  or scoring changes, so old results are never mixed with new ones;
- ``vocabulary``: its task types, difficulties and prompt types (the parser checks the matrix
  against them, with the usual field messages);
- ``config_fields`` and ``parse_config``: what ``spec.suiteConfig`` may hold, checked without I/O
  (the operator runs the same parser); the returned mapping is the resolved form, parsed again
  unchanged;
- ``result_basis``: what changes results but not case ids (a local run's uid hashes it);
- ``cache_texts``: the texts ``benchpilot cache build`` embeds, by group;
- ``summary_fields``: boolean keys of the ``details`` column the report averages (e.g. valid SQL);
- ``prepare``: the I/O step before any case runs (load or check a dataset; raise
  :class:`SuiteError` naming the file), returning a :class:`SuiteRunner`.

A :class:`SuiteRunner` builds a case deterministically from (task type, difficulty, instance),
simulates a ``sim/...`` model on it, and runs it against a :data:`Chat`; the core counts turns,
tokens and cost around the chat, applies timeouts and writes the row. This module is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol

from ..contract.outcomes import ConfigError
from ..llm.base import ChatResult

# messages, tools -> one assistant answer (an endpoint's or a simulated model's)
Chat = Callable[[list[dict], list[dict]], Awaitable[ChatResult]]
RESULT_FIELDS = ("status", "score", "error_type", "error_message", "details")


class SuiteError(ConfigError):
    """The suite cannot run this spec (a dataset missing or malformed); names the file and the field."""


@dataclass(frozen=True)
class Vocabulary:
    prompt_types: tuple[str, ...]
    task_types: tuple[str, ...]
    difficulties: tuple[str, ...]
    default_task_types: tuple[str, ...] | None = None  # None: all of them
    default_difficulties: tuple[str, ...] | None = None  # None: the first one


@dataclass
class CaseProgress:
    """What a case has done so far; kept outside the coroutine so a timed-out case still reports it."""

    turns: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Retrieval:
    """What the process offers a suite for retrieval: the shared read-only cache, or nothing."""

    cache: Any = None  # resources.Cache: search(group, text, k), embed(text), embed_async(text)

    @property
    def kind(self) -> str:
        return f"embedding:{self.cache.manifest['model']['name']}" if self.cache is not None else "lexical"


class SuiteRunner(Protocol):
    def exists(self, case) -> bool:
        """Whether the dataset has this case (a bring-your-own dataset may have fewer questions in a
        cell than ``matrix.instances``; such positions are not cases and get no row)."""

    def simulate(self, case, model: str, params) -> Chat:
        """The chat of simulated model ``model`` (``spec.SimModel`` params) on this case."""

    async def run(self, case, chat: Chat) -> dict:
        """The result fields of one case: status (success|partial|failure, or error for an LLM error),
        score, error_type, error_message, details (a JSON-able dict or None). Raises
        ``llm.base.EndpointUnavailable`` to leave the case unrun."""


class Suite(Protocol):
    name: str
    version: str
    vocabulary: Vocabulary
    config_fields: tuple[str, ...]
    summary_fields: tuple[str, ...]

    def parse_config(self, fields) -> Mapping[str, Any]:
        """``spec.suiteConfig`` (a ``spec.Fields`` reader; unknown keys are already refused), as the
        resolved mapping. Pure: raise ``spec.SpecError`` naming the field."""

    def result_basis(self, spec) -> Mapping[str, Any]: ...

    def cache_texts(self, config: Mapping[str, Any], *, instances: int) -> Mapping[str, list[tuple[str, str]]]:
        """Group -> [(key, text)] to embed (``benchpilot cache build``; ``instances`` per cell, for a
        suite that generates its cases)."""

    def prepare(self, spec, retrieval: Retrieval) -> SuiteRunner: ...


def result_fields(fields: Mapping[str, Any]) -> dict:
    """A suite's result checked for the core: known keys only, a known status."""
    extra = sorted(set(fields) - set(RESULT_FIELDS))
    if extra:
        raise ValueError(f"suite result has unknown fields {extra}; allowed: {', '.join(RESULT_FIELDS)}")
    if fields.get("status") not in ("success", "partial", "failure", "error"):
        raise ValueError(f"suite result status {fields.get('status')!r} is not success, partial, failure or error")
    return dict(fields)
