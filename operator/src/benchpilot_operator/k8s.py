"""The ONLY module that talks to the Kubernetes API (and to runner pods' /metrics).

A small aiohttp client built from the same connection kopf logs in with. Children are selected
by label AND confirmed by the owner reference's uid by the callers; writes are patches and
creates, never replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator
from urllib.parse import quote

import aiohttp

from benchpilot_runner.redact import scrub

log = logging.getLogger("benchpilot.k8s")


class APIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = None
    scheme: str | None = "Bearer"
    ca_path: str | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None

    @classmethod
    def from_kopf(cls, info: Any) -> "Connection":
        return cls(server=info.server, token=info.token, scheme=info.scheme or "Bearer", ca_path=info.ca_path,
                   ca_data=info.ca_data, insecure=bool(info.insecure), certificate_path=info.certificate_path,
                   private_key_path=info.private_key_path)


class KubeClient:
    def __init__(self, conn: Connection, *, concurrency: int = 32):
        self.conn = conn
        self._sem = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._plain: aiohttp.ClientSession | None = None
        self._closed = False

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.conn.server.startswith("https"):
            return False
        if self.conn.insecure:
            return False
        ctx = ssl.create_default_context(cafile=self.conn.ca_path,
                                         cadata=self.conn.ca_data.decode() if self.conn.ca_data else None)
        if self.conn.certificate_path:
            ctx.load_cert_chain(self.conn.certificate_path, self.conn.private_key_path)
        return ctx

    def _new_session(self) -> aiohttp.ClientSession:
        headers = {"User-Agent": "benchpilot-operator"}
        if self.conn.token:
            headers["Authorization"] = f"{self.conn.scheme or 'Bearer'} {self.conn.token}"
        return aiohttp.ClientSession(base_url=self.conn.server.rstrip("/") + "/", headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=self._ssl(), limit=64),
                                     timeout=aiohttp.ClientTimeout(total=30))

    @contextlib.asynccontextmanager
    async def _session_for_call(self) -> AsyncIterator[aiohttp.ClientSession]:
        if not self._closed:
            if self._session is None or self._session.closed:
                self._session = self._new_session()
            yield self._session
        else:  # a call still in flight when the operator stops: a session of its own, closed after it
            async with self._new_session() as s:
                yield s

    async def close(self) -> None:
        self._closed = True
        for s in (self._session, self._plain):
            if s is not None:
                await s.close()

    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                      content_type: str | None = None) -> Any:
        headers = {"Content-Type": content_type} if content_type else None
        for attempt in range(3):  # every call here is idempotent (creates tolerate 409, deletes 404)
            try:
                async with self._sem, self._session_for_call() as s:
                    async with s.request(method, path.lstrip("/"), json=json, params=params,
                                         headers=headers) as resp:
                        if resp.status >= 400:
                            text = await resp.text()
                            raise APIError(resp.status, text[:300])
                        if resp.content_type == "application/json":
                            return await resp.json()
                        return await resp.text()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientConnectionError) as exc:
                if attempt == 2:
                    raise
                log.debug("API connection dropped; retrying", extra={"error": str(exc), "path": path})
                await asyncio.sleep(0.1 * (attempt + 1))

    # ------------------------------------------------------------------ typed helpers
    async def list(self, path: str, label_selector: str | None = None) -> list[dict]:
        params = {"labelSelector": label_selector} if label_selector else None
        data = await self.request("GET", path, params=params)
        return list(data.get("items") or [])

    async def create(self, path: str, body: dict) -> bool:
        """Create; False when it exists already (409), which is fine for deterministic names."""
        try:
            await self.request("POST", path, json=body)
            return True
        except APIError as exc:
            if exc.status == 409:
                return False
            raise

    async def merge_patch(self, path: str, body: dict) -> Any:
        return await self.request("PATCH", path, json=body, content_type="application/merge-patch+json")

    async def delete(self, path: str) -> bool:
        try:
            await self.request("DELETE", path, json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                     "propagationPolicy": "Background"})
            return True
        except APIError as exc:
            if exc.status == 404:
                return False
            raise

    async def get_text(self, url: str, timeout: float) -> str:
        """GET an absolute URL (a runner pod's /metrics); no API credentials are sent."""
        if self._closed:  # in flight at shutdown: a session of its own, closed after it
            async with aiohttp.ClientSession() as s:
                return await self._get_text(s, url, timeout)
        if self._plain is None or self._plain.closed:
            self._plain = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        return await self._get_text(self._plain, url, timeout)

    @staticmethod
    async def _get_text(s: aiohttp.ClientSession, url: str, timeout: float) -> str:
        async with s.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            r.raise_for_status()
            return await r.text()


def build_event(obj: dict, type_: str, reason: str, message: str, now: str) -> dict:
    """A core/v1 Event about ``obj`` with a unique name (no generateName: every server accepts it)."""
    import uuid

    md = obj["metadata"]
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{md['name']}.{uuid.uuid4().hex[:16]}", "namespace": md["namespace"]},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": md["name"],
                               "namespace": md["namespace"], "uid": md.get("uid")},
            "type": type_, "reason": reason, "message": scrub(message)[:1024], "count": 1,
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": None,
            "source": {"component": "benchpilot-operator"}, "reportingComponent": "benchpilot-operator"}


def events_path(ns: str) -> str:
    return f"/api/v1/namespaces/{quote(ns)}/events"


def jobs_path(ns: str) -> str:
    return f"/apis/batch/v1/namespaces/{quote(ns)}/jobs"


def pods_path(ns: str) -> str:
    return f"/api/v1/namespaces/{quote(ns)}/pods"


def configmaps_path(ns: str) -> str:
    return f"/api/v1/namespaces/{quote(ns)}/configmaps"


def runs_path(ns: str) -> str:
    return f"/apis/benchpilot.io/v1alpha1/namespaces/{quote(ns)}/benchmarkruns"
