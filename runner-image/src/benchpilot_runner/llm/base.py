"""Types shared by every model: what a chat turn returns and how it fails."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

# The monotonic time by which the current case must finish (set by the scheduler for each case):
# retries never wait past it.
CASE_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("case_deadline", default=None)


@dataclass
class QueueWait:
    """Whether the current case is waiting in benchpilot's own queue (an endpoint's limiter), and since
    when: set by the limiter, read by the scheduler when the case's deadline passes."""

    limiter: object | None = None  # the EndpointLimiter it waits for (its describe() says why)
    since: float | None = None  # monotonic; None while not waiting
    waited_s: float = 0.0  # in all, this case

    def waiting(self, limiter: object, now: float) -> None:
        self.limiter, self.since = limiter, now

    def done(self, now: float) -> None:
        if self.since is not None:
            self.waited_s += now - self.since
        self.since = None


# The current case's queue mark (set by the scheduler for each case).
LIMITER_WAIT: contextvars.ContextVar[QueueWait | None] = contextvars.ContextVar("limiter_wait", default=None)


@dataclass
class ChatResult:
    message: dict  # the assistant message: {"role", "content", "tool_calls"?}
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None  # as the provider sent it ("stop", "tool_calls", "length", ...)
    served_model: str | None = None  # the completion's "model": the model that actually answered
    fingerprint: str | None = None  # the completion's "system_fingerprint", when the provider sends one
    reused: bool = False  # taken from earlier results (answers/), not from the provider: tokens are 0
    saved_tokens: tuple[int, int] = (0, 0)  # a reused answer's original (prompt, completion) tokens

    @property
    def tool_calls(self) -> list[dict]:
        return list(self.message.get("tool_calls") or [])


class LLMError(Exception):
    """A model call that failed for good (after any retries)."""

    error_type = "llm_error"

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class LLMHTTPError(LLMError):
    error_type = "http_error"


class LLMTimeout(LLMError):
    error_type = "request_timeout"


class LLMConnectionError(LLMError):
    error_type = "connection_error"


class LLMBadResponse(LLMError):
    error_type = "bad_response"


class LLMAuthError(LLMHTTPError):
    """401/403: the endpoint refused the key. Not retried; a few in a row stop the endpoint."""

    error_type = "auth_error"


class EndpointUnavailable(LLMError):
    """The endpoint was taken out of this run (it refused the key, or never answered)."""

    error_type = "endpoint_unavailable"


@dataclass
class Usage:
    """Per-case counters a model session adds to."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    codes: dict = field(default_factory=dict)
