"""An attacker's host on loopback: a server that records whatever reaches it, and a DNS of the test's own.

``CaptureServer`` plays the host a connection editor (or a redirect) would send the provider's requests to. It
records each request, and counts TCP connections even when nothing is sent on them (a TLS handshake to a site
URL counts). What it keeps never shows in a test report: the repr of a captured request has the method, the
path and the names of the JSON fields, never their values.

``reroute`` makes urllib3 connect to the capture server when it is asked for another host name, as DNS would
for a real attacker's host, and records every address urllib3 asked for.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Captured:
    """One request that reached the capture server (values are kept out of the repr)."""

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def fields(self) -> list[str]:
        """The names of the JSON body's fields (``client_secret``, ``refresh_token``, ...), never their values."""
        try:
            data = json.loads(self.body or b"null")
        except ValueError:
            return []
        return sorted(data) if isinstance(data, dict) else []

    def __repr__(self) -> str:
        return f"<{self.method} {self.path.split('?')[0]} fields={self.fields} authorization={'authorization' in self.headers}>"


def _self_signed_context() -> Any:
    """A server TLS context with a new self-signed certificate for 127.0.0.1 (which no client trusts)."""
    import datetime
    import ipaddress
    import ssl
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
        pem.write(cert.public_bytes(serialization.Encoding.PEM))
        pem.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        pem.flush()
        context.load_cert_chain(pem.name)
    return context


class CaptureServer:
    """A loopback HTTP server that records every request and answers ``status`` with ``body`` (JSON).

    :param status: the status of every answer.
    :param body: the JSON body of every answer.
    :param tls: serve https with a self-signed certificate (a host on the network that is not who it claims).
    """

    def __init__(self, status: int = 400, body: Any = None, *, tls: bool = False) -> None:
        self.requests: list[Captured] = []
        self.connections = 0
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                with capture._lock:
                    capture.requests.append(
                        Captured(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, payload)
                    )
                answer = json.dumps(body if body is not None else {"error": "captured"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _record

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with capture._lock:
                    capture.connections += 1
                super().process_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a TLS handshake or a half-closed socket: counted, not printed

        self._server = Server(("127.0.0.1", 0), Handler)
        self.scheme = "https" if tls else "http"
        if tls:
            self._server.socket = _self_signed_context().wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def reroute(monkeypatch: pytest.MonkeyPatch, host: str, port: int, to: tuple[str, int]) -> list[tuple[str, int]]:
    """Make urllib3 connect to ``to`` when asked for ``(host, port)``; return every address it was asked for."""
    import urllib3.util.connection as connection

    asked: list[tuple[str, int]] = []
    real = connection.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        asked.append((address[0], int(address[1])))
        if (address[0].lower(), int(address[1])) == (host.lower(), port):
            address = to
        return real(address, *args, **kwargs)

    monkeypatch.setattr(connection, "create_connection", create_connection)
    return asked
