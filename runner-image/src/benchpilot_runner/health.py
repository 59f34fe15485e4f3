"""Heartbeat and the HTTP endpoint that serves ``/metrics`` and ``/healthz``.

``/healthz`` fails (503) once no case has finished and no request has made progress for
``hang_timeout_s``: the liveness probe then restarts a hung pod. A process that is idle because
it has nothing left to do is healthy.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@dataclass
class Heartbeat:
    hang_timeout_s: float
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    last: float = field(default=0.0)
    busy: bool = False  # there is work left (cases to run or rows to write)
    on_beat: Callable[[float], None] = lambda ts: None

    def __post_init__(self) -> None:
        self.last = self.clock()

    def beat(self) -> None:
        self.last = self.clock()
        self.on_beat(self.wall())

    def stalled_for(self) -> float:
        return self.clock() - self.last

    def healthy(self) -> bool:
        return not self.busy or self.stalled_for() <= self.hang_timeout_s

    def report(self) -> dict:
        return {"healthy": self.healthy(), "busy": self.busy, "stalled_s": round(self.stalled_for(), 3),
                "hang_timeout_s": self.hang_timeout_s}


def make_app(heartbeat: Heartbeat, registry) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        body = heartbeat.report()
        return web.json_response(body, status=200 if body["healthy"] else 503)

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        resp.charset = "utf-8"
        return resp

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(heartbeat: Heartbeat, registry, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(heartbeat, registry), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def check(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """The exec-probe equivalent: GET /healthz; healthy only on a 200."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback URL
            return resp.status == 200, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode() or str(exc)
    except OSError as exc:
        return False, json.dumps({"healthy": False, "error": str(exc)})
