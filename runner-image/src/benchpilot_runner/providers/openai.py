"""The ``openai`` provider: any OpenAI-compatible chat-completions endpoint (``openai/<id>`` uses
the endpoint named ``default``)."""

from __future__ import annotations

from typing import Mapping

from ..contract.types import DEFAULT_ENDPOINT, Endpoint, ModelSpec, SimModel


class OpenAIProvider:
    name = "openai"
    simulated = False

    def model(self, model_id: str, path: str, simulation: Mapping[str, SimModel]) -> ModelSpec:
        return ModelSpec(name=f"{self.name}/{model_id}", endpoint=DEFAULT_ENDPOINT, model=model_id, provider=self.name)

    def client(self, endpoint: Endpoint, key: str | None, *, transport, limiter, observer):
        from ..llm.client import OpenAIClient  # the HTTP client only where an endpoint is used

        return OpenAIClient(endpoint.base_url, key, transport=transport, limiter=limiter,
                            request_timeout_s=endpoint.request_timeout_s, max_retries=endpoint.max_retries,
                            headers=dict(endpoint.headers), name=endpoint.name, observer=observer)


PROVIDER = OpenAIProvider()
