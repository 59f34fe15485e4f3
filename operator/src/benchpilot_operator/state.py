"""The operator's one state holder: built at startup, handed to every handler through kopf's memo.

Configuration, the Kubernetes API client, metrics and the per-run locks live here, not in module
globals: a test builds its own :class:`OperatorState` and passes it in (``kopf.operator(memo=...)``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from .config import OperatorConfig
from .k8s import KubeClient
from .metrics import OperatorMetrics

log = logging.getLogger("benchpilot.operator")
RETIRE_GRACE_S = 60.0  # a superseded API client is closed this long after its replacement (requests in flight finish)


@dataclass
class OperatorState:
    config: OperatorConfig
    metrics: OperatorMetrics
    client: KubeClient | None = None
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _retiring: set = field(default_factory=set)

    @classmethod
    def build(cls, config: OperatorConfig | None = None) -> "OperatorState":
        return cls(config=config or OperatorConfig.from_env(), metrics=OperatorMetrics(CollectorRegistry()))

    def lock(self, run_uid: str) -> asyncio.Lock:
        """One lock per run: the resync timer and the spec-change handler never reconcile a run at once."""
        lock = self._locks.get(run_uid)
        if lock is None:
            lock = self._locks[run_uid] = asyncio.Lock()
        return lock

    def forget(self, run_uid: str) -> None:
        self._locks.pop(run_uid, None)

    def replace_client(self, client: KubeClient, grace_s: float = RETIRE_GRACE_S) -> None:
        """Use ``client`` from now on; close the one it replaces after ``grace_s`` (new credentials)."""
        old, self.client = self.client, client
        if old is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._retiring.add(old)
            return

        async def close_later() -> None:
            await asyncio.sleep(grace_s)
            await old.close()
            self._retiring.discard(task)
        task = loop.create_task(close_later())
        self._retiring.add(task)

    async def close(self) -> None:
        for item in list(self._retiring):
            if isinstance(item, asyncio.Task):
                item.cancel()
        for item in list(self._retiring):
            if isinstance(item, KubeClient):
                await item.close()
        self._retiring.clear()
        if self.client is not None:
            await self.client.close()
            self.client = None
