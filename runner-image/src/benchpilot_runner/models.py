"""Building the endpoint client a spec needs (none when every model is simulated)."""

from __future__ import annotations

import os
from typing import Awaitable, Callable

from .health import Heartbeat
from .llm.client import AiohttpTransport, OpenAIClient, Transport
from .llm.limits import TokenBucket
from .metrics import RunnerMetrics
from .spec import RunSpec, SpecError


def build_client(spec: RunSpec, metrics: RunnerMetrics, heartbeat: Heartbeat, *,
                 transport: Transport | None = None, concurrency: int | None = None,
                 ) -> tuple[OpenAIClient | None, Callable[[], Awaitable[None]] | None]:
    """The shared client for ``openai/...`` models, with the shard's rate limit and metrics."""
    if not spec.needs_endpoint():
        return None, None
    key = os.environ.get(spec.endpoint.api_key_env)
    if spec.endpoint.api_key_secret and not key:
        raise SpecError("spec.endpoint.apiKeySecretRef",
                        f"the API key is expected in environment variable {spec.endpoint.api_key_env}, "
                        "which is not set")
    own = transport is None
    if own:
        transport = AiohttpTransport(limit=concurrency or spec.sharding.concurrency_per_shard)

    def observe(api_model: str, code: str, seconds: float) -> None:
        model = f"openai/{api_model}"  # the matrix's name, as in benchpilot_cases_total
        metrics.llm_requests.labels(spec.name, model, code).inc()
        metrics.llm_request_seconds.labels(spec.name, model).observe(seconds)
        if code.startswith("2"):
            heartbeat.beat()  # only an answer is progress; a failed request is not

    client = OpenAIClient(spec.endpoint.base_url, key, transport=transport,
                          limiter=TokenBucket(spec.endpoint.qps),
                          request_timeout_s=spec.endpoint.request_timeout_s,
                          max_retries=spec.endpoint.max_retries, observer=observe)
    return client, (transport.close if own else None)
