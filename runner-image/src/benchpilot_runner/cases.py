"""The core's side of running one case: pick the model (an endpoint's or a simulated one), count what
the case uses around every chat, and hand the case to its suite. Nothing here knows a suite's content.

A model with ``toolCalling: prompt`` is offered a suite's tools in the prompt instead of the request,
and the calls in its answer's text come back to the suite as native ``tool_calls``
(:mod:`.llm.prompt_tools`): every suite that uses tools gets prompt mode without knowing of it."""

from __future__ import annotations

from typing import Callable, Protocol

from .llm import prompt_tools
from .llm.base import ChatResult
from .contract.cases import Case
from .contract.registry import find_suite
from .contract.types import RunSpec
from .suites.base import CaseProgress, Chat, Retrieval, SuiteRunner, result_fields

__all__ = ["CaseProgress", "CaseRunner", "make_runner"]


class ChatClient(Protocol):
    async def chat(self, model: str, messages: list[dict], tools: list[dict], *, label: str | None = None,
                   params: dict | None = None) -> ChatResult: ...


class EndpointClients(Protocol):
    def get(self, endpoint: str) -> ChatClient: ...


class CaseRunner:
    """Runs the cases of one spec through its suite; shared by every concurrent case of a process."""

    def __init__(self, spec: RunSpec, suite: SuiteRunner, *, endpoints: EndpointClients | None = None,
                 on_progress: Callable[[], None] | None = None, retrieval: Retrieval = Retrieval()):
        self.spec, self.suite, self.endpoints = spec, suite, endpoints
        self.on_progress = on_progress or (lambda: None)
        self.retrieval = retrieval

    def available(self, case: Case) -> str | None:
        """None when the case's model can run now; else why not (its endpoint was taken out of the run)."""
        model = self.spec.model(case.model)
        if model.simulated or self.endpoints is None:
            return None
        health = getattr(self.endpoints.get(model.endpoint), "health", None)
        return None if health is None or health.available else health.reason

    def exists(self, case: Case) -> bool:
        return self.suite.exists(case)

    def _chat(self, case: Case) -> Chat:
        model = self.spec.model(case.model)
        if model.simulated:
            return self.suite.simulate(case, case.model, self.spec.sim_model(case.model))
        if self.endpoints is None:
            raise RuntimeError(f"model {case.model} needs an endpoint client; none was configured")
        client = self.endpoints.get(model.endpoint)
        params = dict(model.params)

        async def chat(messages: list[dict], tools: list[dict]) -> ChatResult:
            if model.tool_calling != "prompt" or not tools:  # a suite that sends no tools is never translated
                return await client.chat(model.model, messages, tools, label=model.name, params=params)
            # prompt mode: the tools go in the prompt, the request has none, the calls are read from the text
            result = await client.chat(model.model, prompt_tools.to_prompt(messages, tools), [], label=model.name,
                                       params=params)
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            return prompt_tools.read_answer(result, tools, turn)
        return chat

    async def run(self, case: Case, progress: CaseProgress) -> dict:
        """The suite's result fields for one case; ``progress`` counts turns, tool calls and tokens as they happen."""
        inner = self._chat(case)

        async def counted(messages: list[dict], tools: list[dict]) -> ChatResult:
            result = await inner(messages, tools)
            progress.turns += 1
            progress.prompt_tokens += result.prompt_tokens
            progress.completion_tokens += result.completion_tokens
            progress.tool_calls += len(result.tool_calls or ())
            self.on_progress()
            return result
        return result_fields(await self.suite.run(case, counted))


def make_runner(spec: RunSpec, *, retrieval: Retrieval = Retrieval(), endpoints: EndpointClients | None = None,
                on_progress: Callable[[], None] | None = None) -> CaseRunner:
    """The spec's suite prepared (its dataset loaded and checked: ``SuiteError`` names the file) and wrapped."""
    suite = find_suite(spec.suite).prepare(spec, retrieval)
    return CaseRunner(spec, suite, endpoints=endpoints, on_progress=on_progress, retrieval=retrieval)
