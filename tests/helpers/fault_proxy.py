"""A tiny HTTP proxy in front of the emulator that breaks chosen requests the way networks do.

Faults are queued with :meth:`FaultProxy.add` and matched by method, path prefix and a query substring:

* ``reset``: the request is NOT forwarded; the connection is reset (RST) before any answer.
* ``reset_mid_body``: the request IS forwarded (it takes effect); the status line, headers and half the body
  are sent, then the connection is reset: an answer lost half-way.
* ``hang``: the request is NOT forwarded; nothing is answered until the client gives up (its timeout).
* ``hang_after_forward``: the request IS forwarded (it takes effect), then nothing is answered: a lost answer.

Every wait is bounded (``max_hang`` seconds, and :meth:`stop` releases them at once). Nothing is logged: the
bodies that pass through hold tokens.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

KINDS = ("reset", "reset_mid_body", "hang", "hang_after_forward")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


@dataclass
class Fault:
    kind: str
    method: str | None
    path_prefix: str
    query_contains: str | None
    remaining: int
    hits: int = field(default=0)

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method == method)
            and path.startswith(self.path_prefix)
            and (self.query_contains is None or self.query_contains in query)
        )


class FaultProxy:
    """Forward to ``upstream`` (``http://host:port``), breaking the requests that match a queued fault."""

    def __init__(self, upstream: str, max_hang: float = 15.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.max_hang = max_hang
        self.release = threading.Event()
        self.faults: list[Fault] = []
        self.injected: list[tuple[str, str, str]] = []  # (kind, method, path) of every fault applied
        self.forwarded = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add(
        self,
        kind: str,
        *,
        method: str | None = None,
        path_prefix: str = "/",
        query_contains: str | None = None,
        times: int = 1,
    ) -> None:
        """Break the next ``times`` matching requests with ``kind`` (see the module docstring)."""
        assert kind in KINDS, kind
        with self._lock:
            self.faults.append(Fault(kind, method, path_prefix, query_contains, times))

    def take(self, method: str, path: str, query: str) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, query):
                    fault.remaining -= 1
                    fault.hits += 1
                    self.injected.append((fault.kind, method, path))
                    return fault.kind
        return None

    def pending(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self.faults)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Broken connections are the point here: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: FaultProxy

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: request lines may carry cursors, bodies carry tokens."""

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            with self.owner._lock:
                self.owner.forwarded += 1
            return answer.status, answer.reason, answer.getheaders(), payload
        finally:
            conn.close()

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _hang(self) -> None:
        self.owner.release.wait(self.owner.max_hang)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        kind = self.owner.take(self.command, parts.path, parts.query)
        if kind == "reset":
            self._reset()
            return
        if kind == "hang":
            self._hang()
            return
        status, reason, headers, payload = self._forward(body)
        if kind == "hang_after_forward":
            self._hang()
            return
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if kind == "reset_mid_body":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle
