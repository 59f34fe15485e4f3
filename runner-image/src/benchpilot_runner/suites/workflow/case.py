"""One case of the workflow suite, end to end: generate, prompt, converse with tools, score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from ...llm.base import ChatResult, EndpointUnavailable, LLMError
from ...spec import Case, RunSpec
from . import flaws, generator, prompts
from .generator import Retriever
from .registry import BY_NAME
from .scoring import score
from .sim import SimSession
from .tools import ToolEnv

MAX_EXTRA_TURNS = 6
TASK_CACHE = 4096  # tasks kept per runner (bounded: a shard's cells repeat across models and prompts)
TIMEOUT_ROW_FIELDS = ("turns", "tool_calls", "prompt_tokens", "completion_tokens")


class ChatClient(Protocol):
    async def chat(self, model: str, messages: list[dict], tools: list[dict], *, label: str | None = None,
                   params: dict | None = None) -> ChatResult: ...


class EndpointClients(Protocol):
    def get(self, endpoint: str) -> ChatClient: ...


@dataclass
class CaseProgress:
    """What a case has done so far; kept outside the coroutine so a timed-out case still reports it."""

    turns: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)


class CaseRunner:
    """Runs cases of one spec. Shared by every concurrent case of a process: holds no per-case state."""

    def __init__(self, spec: RunSpec, *, retriever: Retriever | None = None,
                 endpoints: EndpointClients | None = None,
                 on_progress: Callable[[], None] | None = None, sleep=None):
        self.spec = spec
        self.retriever = retriever or generator.LexicalRetriever()
        self.endpoints = endpoints
        self.on_progress = on_progress or (lambda: None)
        self._sleep = sleep
        self._tasks: dict[tuple, generator.Task] = {}

    def task_for(self, case: Case) -> generator.Task:
        """The cell's task; generated once and shared by every model and prompt type of the cell."""
        key = (case.task_type, case.difficulty, case.instance, id(self.retriever))
        task = self._tasks.get(key)
        if task is None:
            if len(self._tasks) >= TASK_CACHE:
                self._tasks.pop(next(iter(self._tasks)))
            task = self._tasks[key] = generator.generate(case.task_type, case.difficulty, case.instance,
                                                         retriever=self.retriever)
        return task

    def available(self, case: Case) -> str | None:
        """None when the case's model can run now; else why not (its endpoint was taken out of the run)."""
        model = self.spec.model(case.model)
        if model.simulated or self.endpoints is None:
            return None
        health = getattr(self.endpoints.get(model.endpoint), "health", None)
        return None if health is None or health.available else health.reason

    async def run(self, case: Case, progress: CaseProgress) -> dict:
        """The result fields of one case (status, score, errors, counters).

        LLM errors become an ``error`` row, except :class:`EndpointUnavailable`, which is raised: the
        case is left unrun (no row), to run once its endpoint works again.
        """
        task = self.task_for(case)
        # the same defect for every model: seeded by the task, not by the case
        shown = flaws.inject(case.prompt_type, task.steps,
                             generator.task_seed(case.task_type, case.difficulty, case.instance))
        messages = prompts.build_messages(task, case.prompt_type, shown)
        tools = [BY_NAME[name].openai_schema for name in task.offered]
        env = ToolEnv(task, self.spec.matrix.tool_success_rate, case.seed)
        chat = self._session(case, task, shown)
        error: LLMError | None = None
        for _ in range(len(task.steps) * 2 + MAX_EXTRA_TURNS):
            try:
                result = await chat(messages, tools)
            except EndpointUnavailable:
                raise
            except LLMError as exc:
                error = exc
                break
            progress.turns += 1
            progress.prompt_tokens += result.prompt_tokens
            progress.completion_tokens += result.completion_tokens
            self.on_progress()
            messages.append(result.message)
            if not result.tool_calls:
                break
            for tc in result.tool_calls:
                fn = tc.get("function") or {}
                _, content = env.call(str(fn.get("name")), fn.get("arguments"))
                progress.tool_calls += 1
                messages.append({"role": "tool", "tool_call_id": tc.get("id", ""), "content": content})
        verdict = score(task.steps, env.calls)
        row = {"status": verdict.status, "score": verdict.score, "error_type": None, "error_message": None}
        if error is not None:
            row.update(status="error", error_type=error.error_type, error_message=str(error)[:500])
        return row

    def _session(self, case: Case, task: generator.Task, shown: tuple) -> Callable:
        model = self.spec.model(case.model)
        if model.simulated:
            kwargs = {"sleep": self._sleep} if self._sleep else {}
            session = SimSession(case.model, self.spec.sim_model(case.model), task, case.prompt_type, shown,
                                 case.seed, **kwargs)
            return session.chat
        if self.endpoints is None:
            raise RuntimeError(f"model {case.model} needs an endpoint client; none was configured")
        client = self.endpoints.get(model.endpoint)
        params = dict(model.params)

        async def chat(messages: list[dict], tools: list[dict]) -> ChatResult:
            return await client.chat(model.model, messages, tools, label=model.name, params=params)
        return chat
