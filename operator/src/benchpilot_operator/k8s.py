"""The ONLY module that talks to the Kubernetes API (and to runner pods' /metrics).

A small aiohttp client built from the same connection kopf logs in with. Children are selected
by label AND confirmed by the owner reference's uid by the callers; writes are patches and
creates, never replaces.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, AsyncIterator
from urllib.parse import quote

import aiohttp

from benchpilot_runner.redact import scrub

log = logging.getLogger("benchpilot.k8s")


class APIError(Exception):
    def __init__(self, status: int, message: str, causes: tuple[str, ...] = ()):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.causes = causes  # the Status body's details.causes[].reason, e.g. NamespaceTerminating

    @classmethod
    def from_body(cls, status: int, text: str) -> "APIError":
        causes: tuple[str, ...] = ()
        try:
            body = json.loads(text)
            causes = tuple(str(c.get("reason")) for c in (body.get("details") or {}).get("causes") or [])
        except (ValueError, AttributeError, TypeError):
            pass
        return cls(status, text[:300], causes)

    @property
    def namespace_terminating(self) -> bool:
        return self.status == 403 and "NamespaceTerminating" in self.causes


@dataclass(frozen=True)
class Connection:
    """Where and how to reach the API server: what kopf logged in with (service account or kubeconfig).

    ``*_data`` are a kubeconfig's embedded ``certificate-authority-data``, ``client-certificate-data``
    and ``client-key-data`` (base64 of PEM, as kind, EKS and GKE write them; PEM text is accepted too).
    """

    server: str
    token: str | None = None
    scheme: str | None = "Bearer"
    ca_path: str | None = None
    ca_data: str | bytes | None = None
    insecure: bool = False
    certificate_path: str | None = None
    certificate_data: str | bytes | None = None
    private_key_path: str | None = None
    private_key_data: str | bytes | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_kopf(cls, info: Any) -> "Connection":
        return cls(server=info.server, token=info.token, scheme=info.scheme or "Bearer", ca_path=info.ca_path,
                   ca_data=info.ca_data, insecure=bool(info.insecure), certificate_path=info.certificate_path,
                   certificate_data=info.certificate_data, private_key_path=info.private_key_path,
                   private_key_data=info.private_key_data, username=info.username, password=info.password)

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS for an https server: its CA (file or embedded) and the client certificate, if any."""
        if not self.server.startswith("https") or self.insecure:
            return False
        ctx = ssl.create_default_context(cafile=self.ca_path,
                                         cadata=pem(self.ca_data) if self.ca_data else None)
        with contextlib.ExitStack() as stack:
            cert = self.certificate_path or (stack.enter_context(_secret_file(pem(self.certificate_data)))
                                             if self.certificate_data else None)
            key = self.private_key_path or (stack.enter_context(_secret_file(pem(self.private_key_data)))
                                            if self.private_key_data else None)
            if cert:
                ctx.load_cert_chain(cert, key)
        return ctx

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"{self.scheme or 'Bearer'} {self.token}"}
        if self.username and self.password:
            return {"Authorization": aiohttp.BasicAuth(self.username, self.password).encode()}
        return {}


def pem(data: str | bytes) -> str:
    """A kubeconfig ``*-data`` field as PEM text: base64 of PEM (the usual form) or PEM as it is."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    if text.lstrip().startswith("-----BEGIN "):
        return text
    try:
        return base64.b64decode("".join(text.split()), validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("a kubeconfig certificate or key field (*-data) is neither PEM nor base64 of PEM") from None


@contextlib.contextmanager
def _secret_file(text: str):
    """A path Python's ssl can load a certificate or key from (it reads only files): an anonymous
    in-memory file where the OS has them, so a private key never touches a disk; else a private
    temporary file, removed at once."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("benchpilot-kubeconfig", 0)
        try:
            os.write(fd, text.encode("ascii"))
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as fh:  # mode 0600
        fh.write(text)
        fh.flush()
        yield fh.name


class KubeClient:
    def __init__(self, conn: Connection, *, concurrency: int = 32):
        self.conn = conn
        self._sem = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._plain: aiohttp.ClientSession | None = None
        self._closed = False
        self._ssl_context = conn.ssl_context()  # once: a kubeconfig that cannot be used fails at login

    def _new_session(self) -> aiohttp.ClientSession:
        headers = {"User-Agent": "benchpilot-operator", **self.conn.headers()}
        return aiohttp.ClientSession(base_url=self.conn.server.rstrip("/") + "/", headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=self._ssl_context, limit=64),
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
                            raise APIError.from_body(resp.status, await resp.text())
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
        """Create; False when it exists already (409), which is fine for deterministic names, or when its
        namespace is being deleted (the run goes with it: nothing to create, nothing refused)."""
        try:
            await self.request("POST", path, json=body)
            return True
        except APIError as exc:
            if exc.status == 409:
                return False
            if exc.namespace_terminating:
                log.debug("not created: its namespace is being deleted", extra={"path": path})
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
