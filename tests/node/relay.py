"""A TCP relay from the node's bridge address to a server on 127.0.0.1.

Every server the tests start listens on 127.0.0.1; pods live in their own network namespaces on the
tier's bridge and reach the host only at the bridge's address. A relay listens there and copies
bytes both ways to the loopback server. ``freeze()`` makes it hang like a stuck endpoint: connections
are accepted and requests read, nothing is forwarded and nothing answers, until ``thaw()``.
"""

from __future__ import annotations

import socket
import threading


class Relay:
    def __init__(self, listen_host: str, target_port: int, listen_port: int = 0):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.create_server((listen_host, listen_port), reuse_port=False)
        self.host, self.port = self.sock.getsockname()[:2]
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True, name=f"relay-{self.port}")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def freeze(self) -> None:
        """From now on, new connections hang: nothing is forwarded or answered."""
        self._open.clear()

    def thaw(self) -> None:
        self._open.set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._track(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, s: socket.socket, add: bool = True) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(s)

    def _serve(self, client: socket.socket) -> None:
        if not self._open.is_set():  # a stuck endpoint: hold the connection until the peer gives up
            try:
                while client.recv(65536):
                    pass
            except OSError:
                pass
            self._close(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            self._close(client)
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src)
            self._close(dst)

    def _close(self, s: socket.socket) -> None:
        self._track(s, add=False)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            self._close(s)
