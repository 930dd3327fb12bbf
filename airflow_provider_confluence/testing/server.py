"""The HTTP face of the emulator: a threaded server on loopback and the router behind it.

One port serves what Atlassian spreads over three hosts: ``auth.atlassian.com`` (``GET /authorize``,
``POST /oauth/token``), ``api.atlassian.com`` (``GET /oauth/token/accessible-resources`` and the gateway
``/ex/confluence/{cloudId}/...``), the site's ``GET /_edge/tenant_info`` (the emulator's origin stands in for the
site's, as it does for the site's ``/wiki/...`` paths, which refuse OAuth tokens), plus the admin endpoints
``/_emulator/...`` for other processes.

The gateway takes a bearer token (3LO or service account) or HTTP Basic with a scoped API token (``signin.py``).

Gateway checks run in this order: cloud id (404 gateway body), credentials (unknown bearer token, wrong API token or
e-mail, expired API token, or a credential that does not reach this site: 401; an expired, cut short or revoked
bearer token: 404 with a v2 body on v2 paths, 403 with a v1 body on v1 paths, https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/), injected failures and
throttling, the points quota when enabled (429, ``quota.py``), the route (404 when unknown), the OAuth scopes (401
"scope does not match"; a route may need several, or accept a classic scope instead), then the handler; a call that
passed the quota check is charged its points and its answer gets the quota headers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ._http import ApiRequest, Reply, ReplyError, gateway_error, oauth_error, v1_error, v2_error
from .consent import accessible_resources, authorize
from .signin import identify

if TYPE_CHECKING:
    from .auth import AccessCheck
    from .emulator import FakeAtlassian

log = logging.getLogger(__name__)
_GATEWAY = re.compile(r"^/ex/confluence/([^/]+)(/.*)?$")
_SECRET_FIELDS = ("client_secret", "refresh_token", "code", "access_token")


@dataclass
class Incoming:
    """A raw request as the handler read it."""

    method: str
    path: str
    pairs: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


def _masked(params: dict[str, Any]) -> dict[str, Any]:
    return {name: ("***" if name in _SECRET_FIELDS and value else value) for name, value in params.items()}


class Router:
    """Turns an :class:`Incoming` request into a :class:`Reply`, recording it on the emulator."""

    def __init__(self, fake: FakeAtlassian) -> None:
        self._fake = fake

    def dispatch(self, req: Incoming) -> Reply:
        """Answer one request."""
        if req.path.startswith("/_emulator/"):
            return self._admin(req)
        query: dict[str, list[str]] = {}
        for name, value in req.pairs:
            query.setdefault(name, []).append("***" if name in _SECRET_FIELDS else value)
        if req.path.startswith("/ex/confluence/"):
            return self._gateway(req)
        route = f"{req.method} {req.path}"
        entry: dict[str, Any] = {
            "method": req.method,
            "path": req.path,
            "route": route,
            "query": query,
            "json": None,
            "form": None,
            "content_type": req.headers.get("content-type"),
        }
        if route == "POST /oauth/token":
            reply = self._token(req, entry)
        elif route == "GET /authorize":
            reply = authorize(self._fake._auth, query)
        elif route == "GET /oauth/token/accessible-resources":
            reply = self._injected(route, api=False) or self._resources(req)
        elif route == "GET /_edge/tenant_info":
            self._fake._bump("tenant_info_calls")
            reply = self._injected(route, api=False) or Reply(200, {"cloudId": self._fake.cloud_id})
        elif req.path.startswith("/wiki/"):
            # The site itself refuses OAuth tokens: https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/
            reply = gateway_error(401, "Unauthorized")
        else:
            reply = gateway_error(404, "Not Found")
        return self._traced(entry, reply)

    def _traced(self, entry: dict[str, Any], reply: Reply) -> Reply:
        """Record the request, and answer with a fresh ``Atl-Traceid`` as Atlassian does (kept in the record)."""
        trace_id = uuid.uuid4().hex
        self._fake._record({**entry, "trace_id": trace_id}, reply.status)
        return dataclasses.replace(reply, headers={**reply.headers, "Atl-Traceid": trace_id})

    def _resources(self, req: Incoming) -> Reply:
        fake = self._fake
        fake._bump("accessible_resources_calls")
        check = self._caller(req.headers)
        return accessible_resources(check, fake.site_url, fake.cloud_id, list(fake.extra_sites))

    def _caller(self, headers: dict[str, str]) -> Any:
        fake = self._fake
        return identify(fake._auth, fake._service, fake._api_tokens, headers)

    def _injected(self, route: str, *, api: bool) -> Reply | None:
        failure = self._fake._injector.take_failure(route, route, api=api)
        return failure.reply if failure is not None else None

    def _admin(self, req: Incoming) -> Reply:
        fake = self._fake
        try:
            payload = json.loads(req.body or b"{}")
            if (req.method, req.path) == ("GET", "/_emulator/state"):
                latest = fake.latest_refresh_token
                digest = hashlib.sha256(latest.encode()).hexdigest()[:12] if latest else None
                quota = [vars(use) for use in fake._quota.usage(fake.client_id, fake.cloud_id)]
                return Reply(
                    200,
                    {
                        "counters": fake.counters,
                        "latest_refresh_token_sha256": digest,
                        "refresh_log": fake.refresh_log,
                        "now": fake.now(),
                        "quota": quota,
                    },
                )
            if (req.method, req.path) == ("POST", "/_emulator/advance"):
                return Reply(200, {"now": fake.advance(float(payload.get("seconds", 0)))})
            actions: dict[str, Callable[..., None]] = {
                "/_emulator/throttle": fake.throttle,
                "/_emulator/fail_next": fake.fail_next,
                "/_emulator/reset_counters": fake.reset_counters,
                "/_emulator/quota": fake.enable_quota,
            }
            if req.method == "POST" and req.path in actions:
                actions[req.path](**payload)
                return Reply(200, {"ok": True})
        except (ValueError, TypeError, AttributeError) as exc:
            return gateway_error(400, f"Bad admin request: {exc}")
        return gateway_error(404, "Not Found")

    def _token(self, req: Incoming, entry: dict[str, Any]) -> Reply:
        form = (entry["content_type"] or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded"
        try:
            parsed: Any = dict(parse_qsl(req.body.decode("utf-8"))) if form else json.loads(req.body or b"null")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            self._fake._bump("token_requests")
            return oauth_error(400, "invalid_request", "The body must be a JSON object (or form-encoded).")
        params = {name: value if isinstance(value, str) else json.dumps(value) for name, value in parsed.items()}
        entry["form" if form else "json"] = _masked(parsed)
        failure = self._fake._injector.take_failure("POST /oauth/token", "POST /oauth/token", api=False)
        if failure is not None and not failure.landed:
            self._fake._bump("token_requests")
            return failure.reply
        if params.get("grant_type") == "client_credentials":
            reply = self._fake._service.token_request(params, form=form)
        else:
            reply = self._fake._auth.token_request(params, form=form)
        return failure.reply if failure is not None else reply

    def _gateway(self, req: Incoming) -> Reply:
        fake = self._fake
        found = _GATEWAY.match(req.path)
        cloud_id, path = (found.group(1), found.group(2) or "/") if found else ("", req.path)
        api_req = ApiRequest(req.method, path, req.pairs, req.body, req.headers)
        matched = fake._api.match(req.method, path)
        concrete = f"{req.method} {path}"
        route = matched[0].template if matched else concrete
        try:
            parsed_json = json.loads(req.body) if req.body else None
        except ValueError:
            parsed_json = None
        query = {
            name: ["***"] * len(values) if name in _SECRET_FIELDS else list(values)
            for name, values in api_req.query.items()
        }
        check = self._caller(req.headers)  # judged once: a wrong API token is counted once
        entry: dict[str, Any] = {
            "method": req.method,
            "path": path,
            "route": route,
            "query": query,
            "json": parsed_json,
            "form": None,
            "content_type": req.headers.get("content-type"),
            # how the caller signed in (never what it sent): None when the credential was not recognised
            "auth_kind": None if check.state == "unknown" else check.kind,
            "auth_app": check.app,
        }
        fake._count_api(route)
        if fake.latency > 0:
            time.sleep(fake.latency)
        reply = self._gateway_reply(check, api_req, matched, route, concrete, cloud_id)
        return self._traced(entry, reply)

    def _gateway_reply(
        self, check: AccessCheck, api_req: ApiRequest, matched: Any, route: str, concrete: str, cloud_id: str
    ) -> Reply:
        fake = self._fake
        v1 = api_req.path.startswith("/wiki/rest/")
        if cloud_id != fake.cloud_id:
            return gateway_error(404, f"Not Found: no site with cloud id {cloud_id}")
        if (
            check.state == "unknown"
            or not check.reaches(cloud_id)
            or (check.state == "expired" and check.kind == "api_token")
        ):
            return gateway_error(401, "Unauthorized")
        if check.state == "expired":
            return v1_error(403, "Current user not permitted to use Confluence") if v1 else v2_error(404)
        failure = fake._injector.take_failure(route, concrete, api=True)
        if failure is not None and not failure.landed:
            return failure.reply
        throttled = fake._injector.take_throttle()
        if throttled is not None:
            return throttled
        refused = fake._quota.refuse(check.app, cloud_id)
        if refused is not None:
            return refused
        reply = self._route_reply(api_req, matched, check.scopes, v1)
        reply = failure.reply if failure is not None else reply
        headers = fake._quota.charge(check.app, cloud_id, api_req.method, reply)
        return Reply(reply.status, reply.body, {**reply.headers, **headers}, reply.content_type) if headers else reply

    @staticmethod
    def _route_reply(api_req: ApiRequest, matched: Any, scopes: tuple[str, ...], v1: bool) -> Reply:
        if matched is None:
            if v1:
                return v1_error(404, f"No service found for {api_req.path}")
            return v2_error(404) if api_req.path.startswith("/wiki/api/v2/") else gateway_error(404, "Not Found")
        route_obj, args = matched
        if not route_obj.allows(scopes):
            return gateway_error(401, "Unauthorized; scope does not match")
        try:
            reply: Reply = route_obj.handler(api_req, args)
        except ReplyError as exc:
            reply = exc.reply
        return reply


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeAtlassian/1.0"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Stay quiet: the emulator records requests itself, without secrets."""

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(Reply(400, {"code": 400, "message": "Bad Request"}))
            return
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        incoming = Incoming(self.command, parts.path, parse_qsl(parts.query, keep_blank_values=True), headers, body)
        try:
            reply = self.server.dispatch(incoming)
        except Exception:  # an emulator bug must answer, not hang the client
            log.exception("FakeAtlassian failed on %s %s", self.command, parts.path)
            reply = v2_error(500, "INTERNAL_SERVER_ERROR", "The emulator failed; see its log")
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.encode()
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class EmulatorServer(ThreadingHTTPServer):
    """A threaded HTTP server that can also close its open keep-alive connections on stop.

    :param address: ``(host, port)``; port 0 picks a free one.
    :param dispatch: the function answering each request.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dispatch: Callable[[Incoming], Reply]) -> None:
        super().__init__(address, _Handler)
        self.dispatch = dispatch
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, sock: socket.socket, *, add: bool) -> None:
        """Remember (or forget) an open connection."""
        with self._open_lock:
            (self._open.add if add else self._open.discard)(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a broken connection quietly (a client gone, or ``stop()`` closing it) instead of printing it."""
        log.debug("FakeAtlassian: connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection, so no keep-alive client is served after stop."""
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._open.clear()
