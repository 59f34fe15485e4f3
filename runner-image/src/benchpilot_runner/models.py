"""Building the endpoint clients a spec needs: one client, pool and limiter per endpoint.

Every shard of a process shares them, so an endpoint's limits hold for the whole process; a pod
is given its share of the run's limit (``shares``). Keys come from the environment only, are
registered with :mod:`.redact` so no output carries them, and a missing key is an error where the
spec asked for one (a Secret reference or a named variable) and a warning otherwise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Mapping

from . import redact
from .health import Heartbeat
from .llm.client import AiohttpTransport, OpenAIClient, Transport
from .llm.limits import EndpointLimiter
from .metrics import RunnerMetrics
from .contract.fields import SpecError
from .contract.registry import find_provider
from .contract.shares import share_of
from .contract.types import RunSpec

log = logging.getLogger("benchpilot.models")


@dataclass
class Endpoints:
    """The clients of a run's endpoints, by endpoint name."""

    clients: dict[str, OpenAIClient] = field(default_factory=dict)
    limiters: dict[str, EndpointLimiter] = field(default_factory=dict)
    _own: list[AiohttpTransport] = field(default_factory=list)

    def get(self, endpoint: str) -> OpenAIClient:
        return self.clients[endpoint]

    def unavailable(self) -> dict[str, tuple[str, str]]:
        """Endpoints taken out of the run: name -> (state, reason)."""
        return {n: (c.health.state, c.health.reason) for n, c in self.clients.items() if not c.health.available}

    async def close(self) -> None:
        for t in self._own:
            await t.close()


def _field_of(spec: RunSpec, name: str) -> str:
    idx = [e.name for e in spec.endpoints].index(name)
    return f"spec.endpoints[{idx}]"


def build_clients(spec: RunSpec, metrics: RunnerMetrics, heartbeat: Heartbeat, *,
                  transport: Transport | None = None, concurrency: int | None = None,
                  fraction: float = 1.0, env: Mapping[str, str] | None = None) -> Endpoints:
    """Clients for every endpoint a model of the matrix uses, each limited to ``fraction`` of the
    endpoint's run-wide limits (1 locally, where every shard shares one limiter; a pod's share on a cluster).
    The client is made by the provider of the models using the endpoint (``contract.registry``)."""
    env = os.environ if env is None else env
    out = Endpoints()
    providers: dict[str, str] = {}
    for m in spec.models:
        if not m.simulated and providers.setdefault(m.endpoint, m.provider) != m.provider:
            raise SpecError("spec.matrix.models", f"endpoint {m.endpoint!r} is used by models of two providers "
                                                  f"({providers[m.endpoint]}, {m.provider}); one endpoint speaks "
                                                  "one provider's protocol")
    for ep in spec.endpoints:
        if ep.name not in providers:
            continue
        key = _key(spec, ep, env)
        share = share_of(ep.limits, fraction)
        limiter = EndpointLimiter(share.requests_per_minute, share.tokens_per_minute, share.max_concurrency,
                                  fraction=max(0.0, min(1.0, fraction)), name=ep.name)
        tr = transport
        if tr is None:
            tr = AiohttpTransport(limit=min(share.max_concurrency or 10**6, concurrency or
                                            spec.sharding.concurrency_per_shard * spec.sharding.shards, 1000))
            out._own.append(tr)
        out.limiters[ep.name] = limiter
        out.clients[ep.name] = find_provider(providers[ep.name]).client(
            ep, key, transport=tr, limiter=limiter, observer=_observer(spec, metrics, heartbeat))
    return out


def _key(spec: RunSpec, ep, env: Mapping[str, str]) -> str | None:
    """The endpoint's API key from the environment, registered with :mod:`.redact`; an error where the spec asked for one."""
    key = env.get(ep.key_env) or None
    if not key and ep.key_required:
        what = "apiKeySecretRef" if ep.api_key_secret else "apiKeyEnv"
        raise SpecError(f"{_field_of(spec, ep.name)}.{what}",
                        f"the API key of endpoint {ep.name!r} is expected in environment variable "
                        f"{ep.key_env}, which is not set")
    if not key:
        log.warning("no API key for endpoint; requests go without Authorization",
                    extra={"endpoint": ep.name, "variable": ep.key_env})
    redact.register(key)
    return key


def apply_fraction(spec: RunSpec, endpoints: Endpoints, fraction: float) -> None:
    """A larger share arrived: raise every endpoint's rates (concurrency stays as started)."""
    for ep in spec.endpoints:
        if ep.name in endpoints.limiters:
            share = share_of(ep.limits, fraction)
            endpoints.limiters[ep.name].set_share(share.requests_per_minute, share.tokens_per_minute,
                                                  fraction=max(0.0, min(1.0, fraction)))


def _observer(spec: RunSpec, metrics: RunnerMetrics, heartbeat: Heartbeat):
    def observe(label: str, code: str, seconds: float, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        metrics.llm_requests.labels(spec.name, label, code).inc()
        metrics.llm_request_seconds.labels(spec.name, label).observe(seconds)
        if prompt_tokens:
            metrics.tokens.labels(spec.name, label, "prompt").inc(prompt_tokens)
        if completion_tokens:
            metrics.tokens.labels(spec.name, label, "completion").inc(completion_tokens)
        if code.startswith("2"):
            heartbeat.beat()  # only an answer is progress; a failed request is not
    return observe
