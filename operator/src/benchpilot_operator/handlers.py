"""kopf handlers: each a few lines that delegate. Registered on import (``python -m benchpilot_operator``)."""

from __future__ import annotations

import logging

import kopf
from prometheus_client import start_http_server

from . import GROUP, PLURAL, VERSION
from .config import OperatorConfig
from .controller import reconcile_run
from .k8s import Connection, KubeClient
from .metrics import OperatorMetrics
from .status import merge_patch

CONFIG = OperatorConfig.from_env()
METRICS = OperatorMetrics()
STATE: dict = {"client": None}
log = logging.getLogger("benchpilot.operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_) -> None:
    settings.persistence.finalizer = "benchpilot.io/operator"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    if CONFIG.metrics_port:
        start_http_server(CONFIG.metrics_port, registry=METRICS.registry)
    log.info("benchpilot operator started", extra={"namespace": CONFIG.namespace or "*", "image": CONFIG.image})


@kopf.on.login()
def login(**kwargs) -> kopf.ConnectionInfo:
    """In a pod: the service account; elsewhere: kubeconfig; BENCHPILOT_API_SERVER for development and tests."""
    if CONFIG.api_server:
        info = kopf.ConnectionInfo(server=CONFIG.api_server, insecure=True)
    else:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: not in a pod and no kubeconfig")
    old, STATE["client"] = STATE["client"], KubeClient(Connection.from_kopf(info), concurrency=CONFIG.api_concurrency)
    if old is not None:
        STATE.setdefault("old", []).append(old)
    return info


@kopf.on.cleanup()
async def cleanup(**_) -> None:
    for c in [STATE.get("client"), *STATE.pop("old", [])]:
        if c is not None:
            await c.close()
    STATE["client"] = None


@kopf.timer(GROUP, VERSION, PLURAL, interval=CONFIG.resync_seconds, initial_delay=0,
            backoff=CONFIG.resync_seconds)
async def resync(body: kopf.Body, patch: kopf.Patch, **_) -> None:
    """Reconcile every run on a fixed beat: shards, status and progress (also after a restart)."""
    await _reconcile(body, patch)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", backoff=CONFIG.resync_seconds)
async def spec_changed(body: kopf.Body, patch: kopf.Patch, **_) -> None:
    """React at once to suspend/resume and other spec edits instead of waiting for the beat."""
    await _reconcile(body, patch)


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True)
def deleted(meta: kopf.Meta, **_) -> None:
    """Children go through their owner references; only the metrics need forgetting."""
    METRICS.forget(OperatorMetrics.key(meta["namespace"], meta["name"]))


async def _reconcile(body: kopf.Body, patch: kopf.Patch) -> None:
    status = await reconcile_run(dict(body), STATE["client"], CONFIG, METRICS)
    changed = merge_patch(dict(body.get("status") or {}), status)
    if changed:
        patch.status.update(changed)
