"""``FakeAtlassian``: the emulator's public face (lifecycle, seeding, knobs, observation).

Every public method is thread-safe: all state sits behind one re-entrant lock shared with the models.
"""

from __future__ import annotations

import copy
import secrets
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from ..config.connection import RENAMED_EXTRAS as _RENAMED_EXTRAS
from ..get_provider_info import CONN_TYPE
from ._http import ReplyError
from .api_tokens import ApiTokenModel
from .auth import DEFAULT_SCOPES, AuthModel
from .canaries import new_secret
from .clock import Clock
from .confluence import ConfluenceModel
from .knobs import Injector
from .labels import check_name
from .quota import QuotaModel
from .server import EmulatorServer, Router
from .service_accounts import ServiceAccountModel
from .signin import SignInKnobs
from .v2 import ConfluenceApi

DEFAULT_SITE = "https://fake-site.atlassian.net"
_COUNTERS = (
    "token_requests",
    "token_requests_json",
    "token_requests_form",
    "refreshes",
    "code_exchanges",
    "invalid_grants",
    "stale_refresh_reuses",
    "grant_revocations",
    "refresh_with_extra_params",
    "client_auth_failures",
    "accessible_resources_calls",
    "api_calls",
    "throttled",
    "injected_failures",
    "client_credentials_grants",
    "client_credentials_with_scope",
    "api_token_failures",
    "api_token_expired_uses",
    "tenant_info_calls",
    "quota_points",
    "quota_rejections",
)


class FakeAtlassian(SignInKnobs):
    """An offline auth.atlassian.com + api.atlassian.com + Confluence Cloud REST (v2, and what v1 keeps), on loopback.

    Besides the 3LO app (:attr:`client_id`), it takes service accounts (:meth:`add_service_account`) and scoped
    API tokens (:meth:`add_api_token`), and can enforce the points-based hourly quota (:meth:`enable_quota`); see
    ``signin.py``. Time is the emulator's :attr:`clock` (``now()``, ``advance(seconds)``).

    :param site_url: the emulated site (``host`` of the connection; ``url`` of accessible-resources).
    :param access_token_lifetime: seconds an access token lives (``expires_in``).
    :param rotation_leeway: seconds a superseded refresh token keeps working (Atlassian: 600).
    :param host: the interface to listen on.
    :param port: the port; 0 picks a free one (read :attr:`url` after :meth:`start`).
    """

    def __init__(
        self,
        site_url: str = DEFAULT_SITE,
        access_token_lifetime: float = 3600.0,
        rotation_leeway: float = 600.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._lock = threading.RLock()
        self.clock = Clock()
        self.site_url = site_url.rstrip("/")
        self.client_id = secrets.token_urlsafe(24)
        self.client_secret = new_secret(48)
        self.cloud_id = str(uuid.uuid4())
        self.latency = 0.0
        self.extra_sites: list[tuple[str, str]] = []
        self._counters: dict[str, Any] = {**dict.fromkeys(_COUNTERS, 0), "api_calls_by_route": {}}
        self._requests: list[dict[str, Any]] = []
        self._injector = Injector(self._lock, self._counters, self.clock.now)
        self._auth = AuthModel(
            clock=self.clock,
            lock=self._lock,
            counters=self._counters,
            client_id=self.client_id,
            client_secret=self.client_secret,
            access_token_lifetime=access_token_lifetime,
            rotation_leeway=rotation_leeway,
        )
        self._service = ServiceAccountModel(
            clock=self.clock, lock=self._lock, counters=self._counters, app_client_id=self.client_id
        )
        self._api_tokens = ApiTokenModel(clock=self.clock, lock=self._lock, counters=self._counters)
        self._quota = QuotaModel(self._lock, self._counters, self.clock.now)
        author = f"557058:{uuid.uuid4()}"
        self._model = ConfluenceModel(clock=self.clock, lock=self._lock, site_url=self.site_url, author_id=author)
        self._api = ConfluenceApi(self._model, secrets.token_bytes(16))
        self._address = (host, port)
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeAtlassian:
        """Start serving in a daemon thread; return self."""
        if self._server is None:
            self._server = EmulatorServer(self._address, Router(self).dispatch)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeAtlassian", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeAtlassian:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running emulator."""
        if self._server is None:
            raise RuntimeError("FakeAtlassian is not started; call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        return f"http://{host}:{port}"

    @property
    def allowed_endpoint_hosts(self) -> str:
        """``HOST:PORT`` of the running emulator: the value of ``[confluence] allowed_endpoint_hosts``
        (``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS``) that lets the provider send credentials to it.

        Set it for every Airflow process that uses the emulator; the ``fake_atlassian`` fixture does it for the
        test's own process and the processes it starts.
        """
        return self.url.split("//", 1)[1]

    @property
    def token_url(self) -> str:
        """The token endpoint (``auth.atlassian.com/oauth/token``)."""
        return self.url + "/oauth/token"

    @property
    def auth_url(self) -> str:
        """The consent endpoint (``auth.atlassian.com/authorize``)."""
        return self.url + "/authorize"

    @property
    def api_url(self) -> str:
        """The API host (``api.atlassian.com``): gateway and accessible-resources."""
        return self.url

    # ----------------------------------------------------------------- clock and auth knobs
    def now(self) -> float:
        """The emulated time (epoch seconds)."""
        return self.clock.now()

    def advance(self, seconds: float) -> float:
        """Move the emulated time forward; return the new time."""
        return self.clock.advance(seconds)

    access_token_lifetime = property(
        lambda self: self._auth.access_token_lifetime,
        lambda self, value: setattr(self._auth, "access_token_lifetime", value),
        doc="Seconds an access token lives; settable.",
    )
    rotation_leeway = property(
        lambda self: self._auth.rotation_leeway,
        lambda self, value: setattr(self._auth, "rotation_leeway", value),
        doc="Seconds a superseded refresh token keeps working; settable.",
    )
    deny_consent = property(
        lambda self: self._auth.deny_consent,
        lambda self, value: setattr(self._auth, "deny_consent", bool(value)),
        doc="When True, /authorize redirects with error=access_denied.",
    )
    registered_redirect_uris = property(
        lambda self: self._auth.registered_redirect_uris,
        lambda self, value: setattr(self._auth, "registered_redirect_uris", value),
        doc="None (default) accepts any http(s) redirect_uri; a list restricts /authorize to these.",
    )

    def issue_grant(self, scopes: str = DEFAULT_SCOPES, *, label: str = "") -> str:
        """Simulate a completed consent: a new grant family; return its first refresh token."""
        return self._auth.issue_grant(scopes, label)

    def issue_access_token(self, scopes: str = DEFAULT_SCOPES) -> str:
        """A new grant family and one access token of it (handy for scope tests)."""
        return self._auth.issue_access_token(scopes)

    @property
    def latest_refresh_token(self) -> str | None:
        """The refresh token issued last, of any grant."""
        with self._lock:
            return self._auth.latest_refresh_token

    def omit_refresh_token_once(self) -> None:
        """The next successful refresh answers without ``refresh_token``; the one sent stays valid."""
        with self._lock:
            self._auth.omit_refresh_token_pending = True

    def connection(
        self, conn_id: str = "confluence_default", refresh_token: str | None = None, **extra_overrides: Any
    ) -> dict[str, Any]:
        """An Airflow connection dict for this emulator (``Connection(conn_id=..., **d)`` or ``json.dumps(d)``).

        :param conn_id: labels the grant in :attr:`refresh_log` (not part of the dict: ``from_json`` rejects it).
        :param refresh_token: the token to use; None issues a grant (with ``extra_overrides["scopes"]`` if given).
        :param extra_overrides: extra fields to set; a None value removes the field. The old names ``token_store``
            and ``token_url`` set ``state_store`` and ``grant_url``.
        """
        scopes = str(extra_overrides.get("scopes") or DEFAULT_SCOPES)
        extra: dict[str, Any] = {
            "refresh_token": refresh_token or self._auth.issue_grant(scopes, conn_id),
            "scopes": scopes,
            "auth_url": self.auth_url,
            "grant_url": self.token_url,
            "api_url": self.api_url,
            "redirect_uri": self.url + "/callback-not-used",
            "state_store": "auto",
        }
        for name, value in extra_overrides.items():
            name = _RENAMED_EXTRAS.get(name, name)  # token_store= and token_url= still work, as in a connection
            if value is None:
                extra.pop(name, None)
            else:
                extra[name] = value
        return {
            "conn_type": CONN_TYPE,
            "host": self.site_url,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": extra,
        }

    # ----------------------------------------------------------------- content
    def add_space(
        self,
        key: str,
        name: str | None = None,
        *,
        type: str = "global",
        status: str = "current",
        labels: tuple[str, ...] | list[str] = (),
        homepage: bool = True,
    ) -> dict[str, Any]:
        """Create a space (with a homepage unless ``homepage=False``); return it as the API shows it."""
        with self._lock:
            return self._model.space_json(
                self._model.add_space(key, name, type=type, status=status, labels=labels, homepage=homepage)
            )

    def add_spaces(self, n: int, prefix: str = "S") -> list[dict[str, Any]]:
        """Create ``n`` spaces keyed ``<prefix>1``, ``<prefix>2``, ... (skipping keys in use)."""
        with self._lock:
            taken = {space.key for space in self._model.all_spaces()}
            keys = (f"{prefix}{index}" for index in range(1, n + len(taken) + 1) if f"{prefix}{index}" not in taken)
            return [self.add_space(key, f"Space {key}") for _, key in zip(range(n), keys, strict=False)]

    def add_page(
        self,
        space_key_or_id: str | int,
        title: str,
        body: str = "<p>x</p>",
        parent_id: str | int | None = None,
        *,
        labels: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Create a current page (same checks as POST /pages), with ``labels``; return it with its storage body.

        Raise ValueError when Confluence would refuse the page or a label name.
        """
        with self._lock:
            try:
                pairs = [("global", check_name(name)) for name in labels]
            except ReplyError as exc:
                raise ValueError(f"label refused: {exc.reply.body}") from None
            page = self._model.add_page(space_key_or_id, title, body, parent_id)
            self._model.labels.add(page.id, pairs)
            return self._model.page_json(page, body_format=page.representation, single=True)

    def page_labels(self, page_id: str | int) -> list[str]:
        """The label names of a page, in the order they were added."""
        return self._model.labels.names(int(page_id))

    def footer_comments(self, page_id: str | int) -> list[dict[str, Any]]:
        """The footer comments of a page, oldest first, with their storage bodies."""
        from .comments import comment_json

        with self._lock:
            page = self._model.page(int(page_id))
            title = page.title if page is not None else ""
            return [
                comment_json(c, title=title, author_id=self._model.author_id, body_format="storage")
                for c in self._model.comments.of(int(page_id))
            ]

    def attachments(self, page_id: str | int) -> list[dict[str, Any]]:
        """The attachments of a page, oldest first, as ``GET /pages/{id}/attachments`` shows them."""
        with self._lock:
            store = self._model.attachments
            return [store.v2_json(att, self._model.author_id) for att in store.of(int(page_id))]

    def attachment_data(self, page_id: str | int, filename: str) -> bytes:
        """The bytes of the latest version of a page's attachment; KeyError when the page has none of that name."""
        found = self._model.attachments.find(int(page_id), filename)
        if found is None:
            raise KeyError(f"page {page_id} has no attachment named {filename!r}")
        return found.data

    @property
    def spaces(self) -> list[dict[str, Any]]:
        """Every space, as the API shows it, by id."""
        with self._lock:
            return [self._model.space_json(space) for space in self._model.all_spaces()]

    @property
    def pages(self) -> list[dict[str, Any]]:
        """Every page (homepages and trashed ones included), with its stored body, by id."""
        with self._lock:
            return [
                self._model.page_json(page, body_format=page.representation, single=True)
                for page in self._model.all_pages()
            ]

    # ----------------------------------------------------------------- failure knobs
    def throttle(self, times: int = 1, retry_after: str | int | float | None = "2", status: int = 429) -> None:
        """Answer the next ``times`` Confluence API calls with 429 (or 503) and ``Retry-After`` (None: omitted).

        429s also carry ``X-RateLimit-NearLimit: true``, ``Beta-Retry-After`` and ``X-RateLimit-Reset``. The token
        endpoint and accessible-resources are never throttled. Replaces any pending throttling.
        """
        self._injector.throttle(times, retry_after, status)

    def rate_limit(
        self, per_second: float | None, burst: float | None = None, retry_after: str | int | float | None = None
    ) -> None:
        """Enforce at most ``per_second`` Confluence API calls per second (a token bucket on the emulated clock).

        A call over the limit answers 429 like :meth:`throttle` (counted in ``throttled``), is not processed and
        spends nothing. The token endpoint and accessible-resources are never limited; pending :meth:`throttle`
        answers come first.

        :param per_second: the sustained rate; None or 0 removes the limit.
        :param burst: calls allowed at once (the bucket's size, which starts full); default one second's worth.
        :param retry_after: the ``Retry-After`` sent; default: the seconds until a call is allowed, rounded up
            (at least 1).
        """
        self._injector.rate_limit(per_second, burst, retry_after)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        route: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        landed: bool = False,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` matching calls with ``status`` (after letting ``after`` of them through).

        :param route: ``"POST /oauth/token"``, ``"GET /oauth/token/accessible-resources"``, a route template
            (``"GET /wiki/api/v2/pages/{id}"``) or a concrete ``"METHOD /wiki/..."``; None matches any Confluence
            API call (never the token endpoint).
        :param body: JSON-able or text; default: the error form of that layer.
        :param headers: extra response headers.
        :param landed: process the request first (its effects happen: a refresh rotates), then answer with the
            failure: an answer lost on the way back. Not applied to accessible-resources.
        """
        self._injector.fail_next(status, times, route, body, headers, landed=landed, after=after)

    # ----------------------------------------------------------------- observation
    @property
    def counters(self) -> dict[str, Any]:
        """A snapshot of the counters (see the package docstring)."""
        with self._lock:
            return copy.deepcopy(self._counters)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the recorded requests (never an Authorization header nor a token).

        Each has ``method``, ``path``, ``route``, ``query``, ``json``, ``form``, ``content_type``, ``status``, ``at``
        and ``trace_id``, the ``Atl-Traceid`` header the emulator answered with (a new one on every answer). A gateway
        call also has ``auth_kind``, how its caller signed in (``"oauth2_3lo"``, ``"client_credentials"`` or
        ``"api_token"``; None when the credential was not recognised), and ``auth_app``, the client id of the 3LO
        app or service-account credential (None for an API token).
        """
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def refresh_log(self) -> list[dict[str, Any]]:
        """One entry per refresh attempt (never a token)."""
        with self._lock:
            return copy.deepcopy(self._auth.refresh_log)

    def reset_counters(self) -> None:
        """Zero the counters and clear the recorded requests and the refresh log."""
        with self._lock:
            self._counters.clear()
            self._counters.update(dict.fromkeys(_COUNTERS, 0), api_calls_by_route={})
            self._requests.clear()
            self._auth.refresh_log.clear()

    # ----------------------------------------------------------------- used by the router
    def _bump(self, name: str) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + 1

    def _count_api(self, route: str) -> None:
        with self._lock:
            self._counters["api_calls"] += 1
            by_route = self._counters["api_calls_by_route"]
            by_route[route] = by_route.get(route, 0) + 1

    def _record(self, entry: dict[str, Any], status: int) -> None:
        with self._lock:
            self._requests.append({**entry, "status": status, "at": self.clock.now()})
