"""One case of the workflow suite, end to end: generate, prompt, converse with tools, score."""

from __future__ import annotations

from typing import Any, Mapping

from ...llm.base import EndpointUnavailable, LLMError
from ...contract.cases import Case
from ...contract.types import RunSpec
from ...llm.content_calls import read_calls
from ..base import Chat, Retrieval
from . import flaws, generator, prompts
from .generator import Retriever
from .registry import BY_NAME
from .scoring import score
from .sim import SimSession
from .vocab import tool_success_rate
from .tools import ToolEnv

MAX_EXTRA_TURNS = 6
TASK_CACHE = 4096  # tasks kept per runner (bounded: a shard's cells repeat across models and prompts)


class CacheRetriever:
    """Tools most similar to a text, by FAISS inner product over the cache's ``tools`` rows."""

    def __init__(self, cache: Any):
        self.cache = cache
        keys = cache.keys("tools")
        if keys != [t.name for t in generator.TOOLS]:
            from ...resources import CacheError

            raise CacheError("the cache's tools do not match this runner's tool registry; rebuild the cache")

    def retrieve(self, text: str, k: int) -> list[str]:
        return self.cache.search("tools", text, k)


class WorkflowRunner:
    """Runs workflow cases of one spec. Shared by every concurrent case of a process: no per-case state."""

    def __init__(self, spec: RunSpec, *, retriever: Retriever | None = None, sleep=None):
        self.spec = spec
        self.retriever = retriever or generator.LexicalRetriever()
        self._sleep = sleep
        self._tasks: dict[tuple, generator.Task] = {}

    @classmethod
    def from_retrieval(cls, spec: RunSpec, retrieval: Retrieval) -> "WorkflowRunner":
        return cls(spec, retriever=CacheRetriever(retrieval.cache) if retrieval.cache is not None else None)

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

    def _shown(self, case: Case, task: generator.Task) -> tuple:
        # the same defect for every model: seeded by the task, not by the case
        return flaws.inject(case.prompt_type, task.steps,
                            generator.task_seed(case.task_type, case.difficulty, case.instance))

    def exists(self, case: Case) -> bool:
        return True  # generated: every (task type, difficulty, instance) is a task

    def simulate(self, case: Case, model: str, params) -> Chat:
        task = self.task_for(case)
        kwargs = {"sleep": self._sleep} if self._sleep else {}
        return SimSession(model, params, task, case.prompt_type, self._shown(case, task), case.seed, **kwargs).chat

    async def run(self, case: Case, chat: Chat) -> Mapping[str, Any]:
        """The result fields of one case. LLM errors become an ``error`` result, except
        :class:`EndpointUnavailable`, which is raised: the case is left unrun (no row)."""
        task = self.task_for(case)
        messages = prompts.build_messages(task, case.prompt_type, self._shown(case, task))
        tools = [BY_NAME[name].openai_schema for name in task.offered]
        env = ToolEnv(task, tool_success_rate(self.spec), case.seed)
        model = self.spec.model(case.model)
        talk = Conversation(None if model.simulated else model.tool_calling, task.offered)
        error: LLMError | None = None
        for _ in range(len(task.steps) * 2 + MAX_EXTRA_TURNS):
            try:
                result = await chat(messages, tools)
            except EndpointUnavailable:
                raise
            except LLMError as exc:
                error = exc
                break
            messages.append(result.message)
            if not talk.calls(result):
                break
            for tc in result.tool_calls:
                fn = tc.get("function") or {}
                _, content = env.call(str(fn.get("name")), fn.get("arguments"))
                messages.append({"role": "tool", "tool_call_id": tc.get("id", ""), "content": content})
        verdict = score(task.steps, env.calls)
        row = {"status": verdict.status, "score": verdict.score, "error_type": None, "error_message": None,
               "details": talk.details()}
        if error is not None:
            row.update(status="error", error_type=error.error_type, error_message=str(error)[:500])
        elif talk.unreadable:
            # the model's own answer, not the infrastructure's: final, scored on the calls it made before
            row.update(error_type="bad_response", error_message=talk.unreadable)
        return row


class Conversation:
    """What one case's answers said about tool calling, for the row's ``details``.

    ``mode`` is the model's ``toolCalling`` (None for a simulated model: no details). In native mode
    an answer without ``tool_calls`` whose text holds a well-formed call is noted
    (``content_tool_call``): the model or its server writes calls as text, and ``toolCalling:
    prompt`` would read them. In prompt mode an answer that tried to call a tool but could not be
    read ends the case (``unreadable_call``), as the end of the conversation would in native mode.
    """

    def __init__(self, mode: str | None, offered: tuple[str, ...]):
        self.mode, self.offered = mode, offered
        self.content_tool_call = False
        self.unreadable: str | None = None
        self.sample: str | None = None

    def calls(self, result) -> bool:
        """Whether the answer calls tools (the conversation goes on); notes what an answer without calls held."""
        if result.tool_calls:
            return True
        text = result.message.get("content") or ""
        why = getattr(result, "unreadable", None)
        if why:
            self.unreadable = f"no tool call could be read from the answer: {why}; it began {text[:160]!r}"
            self.sample = text[:200]
        elif self.mode == "native" and read_calls(text, self.offered).calls:
            self.content_tool_call = True
            self.sample = text[:200]
        return False

    def details(self) -> dict | None:
        if self.mode is None:
            return None
        out: dict[str, Any] = {"tool_calling": self.mode}
        if self.mode == "native":
            out["content_tool_call"] = self.content_tool_call
        else:
            out["unreadable_call"] = self.unreadable is not None
        if self.sample is not None:
            out["answer_sample"] = self.sample
        return out
