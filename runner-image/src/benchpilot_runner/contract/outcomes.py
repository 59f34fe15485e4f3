"""What a case, a shard and a process end with, and how the runner tells the operator. Pure.

- A case's ``status``: the model's outcome (final: never run again) or the infrastructure's (a
  rerun retries it).
- A process's exit code (README: exit codes). Every configuration error is a :class:`ConfigError`
  (a bad manifest, flag or environment, an unusable output, dataset or cache, another writer), so
  the command line catches one class and exits 2.
- Why a shard ended (:class:`Reason`): the runner writes it as the container's termination message
  (:meth:`Reason.to_message`), the operator reads it back (:func:`parse_termination`).
"""

from __future__ import annotations

import json
from typing import Any
from dataclasses import dataclass
from enum import Enum, IntEnum

STATUSES = ("success", "partial", "failure", "error", "timeout")
FINAL_STATUSES = ("success", "partial", "failure")  # the model's outcome: never run again
RETRY_STATUSES = ("error", "timeout")  # the infrastructure's: a rerun or a new attempt retries them
TERMINATION_MESSAGE_BYTES = 4096  # the kubelet's cap on a termination message
MESSAGE_CHARS = 3500  # of which the free text may take this much


class ConfigError(Exception):
    """A configuration the run cannot start with: exit code 2 (the Job fails fast on it)."""


class ExitCode(IntEnum):
    """Exit codes of ``benchpilot run`` and ``benchpilot shard``."""

    COMPLETE = 0  # every case has a final outcome (or the budget stopped the run cleanly)
    WRITE_FAILED = 1  # result rows could not be written; those cases run again
    CONFIG_ERROR = 2  # see ConfigError
    INCOMPLETE = 3  # cases left without a final outcome; the same command again retries only those
    SIGINT = 130  # stopped by Ctrl-C after flushing what was done
    SIGTERM = 143  # stopped by SIGTERM after flushing what was done


class Reason(str, Enum):
    """Why a shard's process ended, in the runner's words (the termination message's ``reason``)."""

    COMPLETE = "Complete"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    CASES_UNFINISHED = "CasesUnfinished"
    AUTH_REFUSED = "AuthRefused"
    CONFIG_ERROR = "ConfigError"
    WRITE_FAILED = "WriteFailed"
    STOPPED = "Stopped"
    FAILED = "Failed"

    @classmethod
    def for_exit(cls, code: int, *, auth_refused: bool = False, budget_stopped: bool = False) -> "Reason":
        """The reason that goes with a shard's exit code."""
        if auth_refused:
            return cls.AUTH_REFUSED
        if code == ExitCode.COMPLETE:
            return cls.BUDGET_EXHAUSTED if budget_stopped else cls.COMPLETE
        return _BY_EXIT.get(code, cls.FAILED)

    def to_message(self, message: str, *, done: int | None = None, failed: int | None = None,
                   total: int | None = None, served: dict | None = None) -> str:
        """The termination message: one JSON object under the kubelet's 4 KiB cap. ``message`` must
        already be scrubbed of secrets (the runner scrubs every text that leaves it). ``served``: model ->
        the served models (and fingerprints) that answered it, bounded (the operator unions the shards')."""
        counts = {k: v for k, v in (("done", done), ("failed", failed), ("total", total)) if v is not None}
        extra = {"served": bounded_served(served)} if served else {}
        room = MESSAGE_CHARS - len(json.dumps(extra))  # the served models take their room from the free text
        return json.dumps({"reason": self.value, "message": message[:room], **counts, **extra})


SERVED_MODELS, SERVED_IDS, SERVED_CHARS = 6, 3, 60  # what a termination message carries of served models


def bounded_served(served: Any) -> dict[str, list[str]]:
    """model -> served ids, at most SERVED_MODELS models, SERVED_IDS ids, SERVED_CHARS characters each."""
    if not isinstance(served, dict):
        return {}
    return {str(m)[:SERVED_CHARS]: [str(x)[:SERVED_CHARS] for x in ids[:SERVED_IDS]]
            for m, ids in list(served.items())[:SERVED_MODELS] if isinstance(ids, list)}


_BY_EXIT = {ExitCode.WRITE_FAILED: Reason.WRITE_FAILED, ExitCode.INCOMPLETE: Reason.CASES_UNFINISHED,
            ExitCode.CONFIG_ERROR: Reason.CONFIG_ERROR, ExitCode.SIGTERM: Reason.STOPPED,
            ExitCode.SIGINT: Reason.STOPPED}


@dataclass(frozen=True)
class TerminationMessage:
    """A termination message read back; any field may be missing (an older runner, logs instead of JSON)."""

    reason: Reason | None = None
    message: str = ""
    done: int | None = None  # cases of the shard with a final outcome
    failed: int | None = None  # cases that ended in error/timeout in that attempt
    total: int | None = None  # the shard's cases: fewer than planned when the suite's dataset has fewer
    served: tuple = ()  # (model, (served id, ...)) pairs: what answered each endpoint model in that attempt


def parse_termination(text: str | None) -> TerminationMessage:
    """What :meth:`Reason.to_message` wrote, or an empty message for anything else."""
    try:
        info = json.loads(text or "")
    except ValueError:
        return TerminationMessage()
    if not isinstance(info, dict):
        return TerminationMessage()

    def count(key: str) -> int | None:
        value = info.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    try:
        reason = Reason(info.get("reason"))
    except ValueError:
        reason = None
    served = tuple((m, tuple(ids)) for m, ids in bounded_served(info.get("served")).items())
    return TerminationMessage(reason, str(info.get("message") or "")[:MESSAGE_CHARS], count("done"),
                              count("failed"), count("total"), served)
