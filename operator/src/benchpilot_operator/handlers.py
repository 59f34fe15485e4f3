"""kopf handlers: each a few lines that delegate. Registered on import (``python -m benchpilot_operator``).

All state comes from ``memo.state`` (:class:`state.OperatorState`), built at startup unless the
caller passed one in (tests do: ``kopf.operator(memo=kopf.Memo(state=...))``).
"""

from __future__ import annotations

import logging

import kopf
from prometheus_client import start_http_server

from . import GROUP, PLURAL, VERSION
from .config import OperatorConfig
from .controller import reconcile_run
from .k8s import Connection, KubeClient
from .state import OperatorState
from .status import merge_patch

log = logging.getLogger("benchpilot.operator")
# How often runs are resynced; read once at import because kopf's timer decorator needs it then.
RESYNC_SECONDS = OperatorConfig.from_env().watching.resync_seconds


def _state(memo: kopf.Memo) -> OperatorState:
    state = getattr(memo, "state", None)
    if state is None:
        state = memo.state = OperatorState.build()
    return state


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    state = _state(memo)
    settings.persistence.finalizer = "benchpilot.io/operator"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    if state.config.serving.metrics_port:
        start_http_server(state.config.serving.metrics_port, registry=state.metrics.registry)
    log.info("benchpilot operator started", extra={"namespace": state.config.watching.namespace or "*",
                                                   "image": state.config.runner.image})


@kopf.on.login()
def login(memo: kopf.Memo, **kwargs) -> kopf.ConnectionInfo:
    """In a pod: the service account; elsewhere: kubeconfig; BENCHPILOT_API_SERVER for development and tests."""
    state = _state(memo)
    if state.config.api.server:
        info = kopf.ConnectionInfo(server=state.config.api.server, insecure=True)
    else:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: not in a pod and no kubeconfig")
    state.replace_client(KubeClient(Connection.from_kopf(info), concurrency=state.config.api.concurrency))
    return info


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_) -> None:
    await _state(memo).close()


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=0, backoff=RESYNC_SECONDS)
async def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_) -> None:
    """Reconcile every run on a fixed beat: shards, status and progress (also after a restart)."""
    await _reconcile(body, patch, _state(memo))


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", backoff=RESYNC_SECONDS)
async def spec_changed(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_) -> None:
    """React at once to suspend/resume and other spec edits instead of waiting for the beat."""
    await _reconcile(body, patch, _state(memo))


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def deleted(meta: kopf.Meta, memo: kopf.Memo, **_) -> None:
    """Children go through their owner references; only the metrics and the lock need forgetting."""
    state = _state(memo)
    state.metrics.forget(state.metrics.key(meta["namespace"], meta["name"]))
    state.forget(meta.get("uid") or meta["name"])


async def _reconcile(body: kopf.Body, patch: kopf.Patch, state: OperatorState) -> None:
    meta = body["metadata"]
    async with state.lock(meta.get("uid") or f"{meta['namespace']}/{meta['name']}"):
        status = await reconcile_run(dict(body), state.client, state.config, state.metrics)
    changed = merge_patch(dict(body.get("status") or {}), status)
    if changed:
        patch.status.update(changed)
