"""A fault-injecting HTTP proxy in front of a real S3 server (SeaweedFS, moto), on 127.0.0.1.

Every request is forwarded as it came (the Host header too, so SigV4 signatures stay valid), except
the ones ``refuse`` picks: those are answered ``503 SlowDown`` in S3's own words, as a busy bucket
does. The clients under test (s3fs, botocore) retry such answers inside each call, as they would
against AWS.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Callable

import aiohttp
from aiohttp import web

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def success_puts(method: str, path: str) -> bool:
    """PUTs of a ``_SUCCESS`` marker (a shard's or the run's)."""
    return method == "PUT" and path.rstrip("/").endswith("/_SUCCESS")


class S3FaultProxy:
    def __init__(self, upstream: str, refuse: Callable[[str, str], bool] = success_puts):
        self.upstream = upstream.rstrip("/")
        self.refuse = refuse
        self.enabled = True
        self.seen: Counter = Counter()  # (method, "refused" | "forwarded")
        self.refused_paths: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="s3-fault-proxy")

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.enabled and self.refuse(request.method, request.path):
            self.seen[(request.method, "refused")] += 1
            self.refused_paths.append(request.path)
            return web.Response(status=503, body=SLOW_DOWN, content_type="application/xml")
        self.seen[(request.method, "forwarded")] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body if body else None, allow_redirects=False) as resp:
            payload = await resp.read()
            # a HEAD answer's Content-Length is the object's size (s3fs reads it); otherwise it is the body's
            drop = HOP_BY_HOP if request.method == "HEAD" else HOP_BY_HOP | {"content-length"}
            out = {k: v for k, v in resp.headers.items() if k.lower() not in drop}
            return web.Response(status=resp.status, body=payload, headers=out)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def setup() -> web.AppRunner:
            self._session = aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("User-Agent",))
            app = web.Application(client_max_size=256 * 1024**2)
            app.router.add_route("*", "/{tail:.*}", self._forward)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            return runner

        runner = self.loop.run_until_complete(setup())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._session.close())
        self.loop.run_until_complete(runner.cleanup())

    def start(self) -> "S3FaultProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the S3 fault proxy did not start")
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
