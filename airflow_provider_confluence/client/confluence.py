"""Confluence Cloud REST v2 (and the few v1 endpoints v2 lacks) over ``requests``, through the OAuth gateway.

:class:`ConfluenceClient` sends every call to ``{api_url}/ex/confluence/{cloudId}/wiki/...`` with an
``Authorization`` header fetched from an :class:`~.authorization.AuthorizationSource` for EACH request (a bearer
token from an :class:`AccessTokenSource`, or HTTP Basic for a scoped API token), and owns the provider's retries:

* 401 (not "scope does not match"): the source refreshes, and the request is sent once more (a Basic source has
  nothing to refresh and raises its own error instead);
  403/404: the same, but only when the stored expiry has passed (the gateway answers 404 on v2 paths for an
  expired token; https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/). A real 404 costs no refresh.
* Redirects: a write never follows one; a read follows one on the gateway's own host only
  (:func:`~.endpoints.redirect_target`).
* 429 (any method; it means "not processed") and 503 honour ``Retry-After`` through :class:`RetryPolicy`;
  a 429 whose ``Retry-After`` is longer than what is left of the policy's ``max_total_wait`` (an exhausted hourly
  points quota) is not slept: :class:`ConfluenceRateLimited` is raised at once, with ``retry_at`` and ``reason``;
  502, 504, 503 without it, timeouts and connection errors back off exponentially, for idempotent methods only.
  A POST is never re-sent after a failure that may have landed; ``create_page`` checks instead. A call marked
  ``idempotent=False`` (the attachment upload, which makes a new version each time) is treated like a POST; a
  file object is rewound before every re-send.

The typed methods live in mixins (:mod:`.pages`, :mod:`.spaces`, :mod:`.labels`, :mod:`.attachments`,
:mod:`.search`, :mod:`.tree`, :mod:`.cleanup`) to keep this module small.
This module imports nothing from Airflow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from airflow_provider_confluence.client.attachments import AttachmentsMixin
from airflow_provider_confluence.client.authorization import (
    AccessTokenSource,
    AuthorizationSource,
    BearerAuthorization,
)
from airflow_provider_confluence.client.cleanup import CleanupMixin
from airflow_provider_confluence.client.comments import CommentsMixin
from airflow_provider_confluence.client.folders import FoldersMixin
from airflow_provider_confluence.client.labels import LabelsMixin
from airflow_provider_confluence.client.pages import PagesMixin
from airflow_provider_confluence.client.pagination import join_next_link, join_v1_next_link, next_link
from airflow_provider_confluence.client.rate_limits import RateLimitStatus, parse_rate_limit
from airflow_provider_confluence.client.responses import (
    error_from_response,
    parse_json_body,
    rate_limit_warnings,
    redact,
)
from airflow_provider_confluence.client.search import SearchMixin
from airflow_provider_confluence.client.spaces import SpacesMixin
from airflow_provider_confluence.client.tree import TreeMixin
from airflow_provider_confluence.config.endpoints import redirect_target
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceConnectionError,
    ConfluenceError,
    ConfluenceRateLimited,
    ConfluenceScopeError,
)
from airflow_provider_confluence.retry import RetryPolicy, RetryState, file_marks, parse_retry_after, rewind

__all__ = ["AccessTokenSource", "AuthorizationSource", "ConfluenceClient", "IDEMPOTENT_METHODS", "DEFAULT_PAGE_LIMIT"]

log = logging.getLogger(__name__)

#: Methods that may be sent again after a failure that may have landed.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: ``limit`` sent by :meth:`ConfluenceClient.paginate` unless the caller gives one (the v2 maximum).
DEFAULT_PAGE_LIMIT = 250
_RETRIED_STATUSES = frozenset({429, 502, 503, 504})
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,  # includes ConnectTimeout, SSLError, ProxyError
    requests.exceptions.Timeout,  # ReadTimeout
    requests.exceptions.ChunkedEncodingError,
)
_USER_AGENT = "airflow-provider-confluence"


def _sleep(seconds: float) -> None:
    """The default wait between retries, looked up at call time so tests can replace it."""
    time.sleep(seconds)


def _uncertain(exc: BaseException) -> bool:
    """True for a failure after which the server may have processed the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False  # no connection was made
    return isinstance(exc, _TRANSPORT_ERRORS)


class ConfluenceClient(
    PagesMixin,
    SpacesMixin,
    LabelsMixin,
    AttachmentsMixin,
    CommentsMixin,
    SearchMixin,
    TreeMixin,
    FoldersMixin,
    CleanupMixin,
):
    """A Confluence Cloud v2 client over the Atlassian OAuth 2.0 gateway.

    No network in ``__init__``: the cloud id (when given as a callable) is resolved on first use, once.

    :param api_url: the Atlassian API URL, ``https://api.atlassian.com`` in production.
    :param cloud_id: the site's cloud id, or a callable that finds it (called once, lazily).
    :param tokens: the source of bearer tokens; give it or ``authorization``.
    :param authorization: the source of ``Authorization`` headers (any way of signing in).
    :param site_url: the Confluence site (``https://x.atlassian.net``); used for ``_links.base`` when Confluence
        omits it. Requests are never sent there (an OAuth token is refused by the site itself).
    :param session: a ``requests.Session`` to use (default: a new one).
    :param timeout: connect and read timeout of every request, in seconds.
    :param retry: the retry policy.
    :param sleep: how to sleep between retries (default :func:`time.sleep`; inject a recorder in tests).
    """

    def __init__(
        self,
        *,
        api_url: str,
        cloud_id: str | Callable[[], str],
        tokens: AccessTokenSource | None = None,
        authorization: AuthorizationSource | None = None,
        site_url: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not api_url or not api_url.strip().lower().startswith(("https://", "http://")):
            raise ConfluenceConfigError(
                f"api_url must be an http(s) URL such as https://api.atlassian.com, not {api_url!r}."
            )
        self._api_url = api_url.strip().rstrip("/")
        self._cloud_id_source = cloud_id
        self._cloud_id: str | None = None
        self._cloud_id_lock = threading.Lock()
        if (tokens is None) == (authorization is None):
            raise ConfluenceConfigError("Give the client exactly one of tokens and authorization.")
        self._auth: AuthorizationSource = (
            authorization
            if authorization is not None
            else BearerAuthorization(
                tokens  # type: ignore[arg-type]
            )
        )
        self._site_url = site_url.strip().rstrip("/") if site_url else None
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep or _sleep
        #: HTTP requests sent to Confluence so far (retries included), for progress logs and benchmarks.
        self.request_count = 0
        #: The points quota as the last answer that carried its headers said (None before any).
        self.rate_limit: RateLimitStatus | None = None
        self._warned_windows: set[tuple[str | None, int | None]] = set()

    @property
    def cloud_id(self) -> str:
        """The site's cloud id (resolved on first use, once)."""
        if self._cloud_id is None:
            with self._cloud_id_lock:
                if self._cloud_id is None:
                    source = self._cloud_id_source
                    value = source if isinstance(source, str) else source()
                    value = (value or "").strip()
                    if not value or "/" in value:
                        raise ConfluenceConfigError(
                            f"The cloud id {value!r} is not usable; check the connection's cloud_id."
                        )
                    self._cloud_id = value
        return self._cloud_id

    @property
    def gateway_base(self) -> str:
        """``{api_url}/ex/confluence/{cloudId}``: the root that ``/wiki/...`` paths are joined onto."""
        return f"{self._api_url}/ex/confluence/{quote(self.cloud_id, safe='')}"

    def url(self, path: str) -> str:
        """The full gateway URL of ``path`` (``/wiki/api/v2/...`` or an absolute gateway URL).

        :param path: a path starting with ``/wiki`` or an absolute URL on the gateway's host.
        :raises ConfluenceError: for an absolute URL on another host.
        """
        if not path.lower().startswith(("http://", "https://", "/")):
            path = "/" + path
        return join_next_link(self.gateway_base, path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one call with the client's auth handling and retries; return the parsed JSON (None for 204).

        :param method: the HTTP method.
        :param path: ``/wiki/api/v2/...`` (or ``/wiki/rest/api/...``), or an absolute gateway URL.
        :param params: query parameters.
        :param json: a JSON-able request body.
        :param files: multipart parts, as ``requests`` takes them (``[("file", (name, data, type)), ...]``); a
            file object is rewound to where it stood before every re-send.
        :param headers: extra request headers (``X-Atlassian-Token: no-check``); they cannot replace
            ``Authorization``.
        :param idempotent: whether the call may be re-sent after a failure that may have landed (default: by
            method; GET/PUT/DELETE yes, POST no). ``False`` still waits out a 429 ("not processed") and re-sends.
        :raises ConfluenceApiError: (or a subclass) for a non-2xx answer after retries.
        :raises ConfluenceError: when no answer arrived (connection error, timeout).
        """
        url = self.url(path)
        return self._send(
            method, url, params=params, json_body=json, files=files, headers=headers, idempotent=idempotent
        )[0]

    def download(self, link: str) -> bytes:
        """The bytes behind a download link (an attachment's ``downloadLink``, relative to the site's ``/wiki``).

        The link is joined onto the gateway's ``/wiki`` (``{api_url}/ex/confluence/{cloudId}/wiki/download/...``),
        never onto the site's host, and sent with the OAuth token like every call.

        :raises ConfluenceError: for a link to another host, or one that is not a path.
        """
        url = join_v1_next_link(self.gateway_base, link)
        return bytes(self._send("GET", url, raw=True)[0])

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, api: str = "v2", cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the ``results`` of a cursor-paginated listing one by one, following ``next`` links.

        Sends ``limit=250`` unless ``params`` has a limit. Memory stays constant (only the visited page URLs are
        remembered, to refuse a looping cursor).

        :param path: the listing's path, such as ``/wiki/api/v2/spaces``.
        :param params: query parameters of the first request (next links carry their own).
        :param api: ``v2`` (next links relative to the site root) or ``v1`` (relative to ``/wiki``).
        :param cursor: resume at this page (see :meth:`iter_pages`).
        :raises ConfluenceError: when a next link repeats an earlier one, or points to another host.
        :raises ConfluenceRateLimited: with ``progress["cursor"]``, where to resume.
        """
        for results, _ in self.iter_pages(path, params, api=api, cursor=cursor):
            yield from results

    def iter_pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, api: str = "v2", cursor: str | None = None
    ) -> Iterator[tuple[list[Any], dict[str, Any]]]:
        """Yield ``(results, body)`` for each page of a listing; see :meth:`paginate`.

        :param cursor: resume at this page of the listing (the gateway URL a :class:`ConfluenceRateLimited` put in
            its ``progress["cursor"]``) instead of the first; ``path`` and ``params`` are then not used.
        :raises ConfluenceRateLimited: with ``progress["cursor"]``: the URL of the page that was refused.
        """
        join = join_v1_next_link if api == "v1" else join_next_link
        if cursor:
            url = self.url(cursor)  # refuses a URL on another host
        else:
            query: dict[str, Any] = dict(params or {})
            query.setdefault("limit", DEFAULT_PAGE_LIMIT)
            prepared = requests.PreparedRequest()
            prepared.prepare_url(self.url(path), query)
            url = str(prepared.url)
        seen = {url}
        while True:
            try:
                body, headers = self._send("GET", url)
            except ConfluenceRateLimited as exc:
                exc.with_progress(cursor=url)
                raise
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise ConfluenceApiError(200, "GET", url, None, "The answer has no 'results' list; is this a listing?")
            yield results, body
            link = next_link(body, headers)
            if link is None:
                return
            url = join(self.gateway_base, link)
            if url in seen:
                raise ConfluenceError(
                    f"Confluence sent a next link that was already followed ({url}); stopping instead of looping."
                )
            seen.add(url)

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        state: RetryState | None = None,
        raw: bool = False,
    ) -> tuple[Any, Mapping[str, str]]:
        """The retry loop; returns (parsed JSON, or with ``raw`` the body's bytes; response headers)."""
        method = method.upper()
        idempotent = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        if files is not None and json_body is not None:
            raise ConfluenceConfigError("A request has either a JSON body or multipart files, not both.")
        marks = file_marks(files)
        extra = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
        state = state if state is not None else RetryState()
        auth_retried = False
        header: str | None = None
        used: list[str] = []  # every credential sent during this call: none may appear in an error message
        tries = 0
        redirects = 0
        while True:
            if tries and not rewind(marks):
                raise ConfluenceError(
                    f"{method} {url} had to be sent again, but its file cannot be rewound and was not re-sent; "
                    "pass bytes or a seekable file."
                )
            tries += 1
            sent = header if header is not None else self._auth.authorization()
            header = None
            secret = self._auth.secret_of(sent)
            if secret not in used:
                used.append(secret)
            request_headers = {
                **extra,
                "Authorization": sent,
                "Accept": "*/*" if raw else "application/json",
                "User-Agent": _USER_AGENT,
            }
            self.request_count += 1
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    files=files,
                    headers=request_headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except _TRANSPORT_ERRORS as exc:
                state.failures += 1
                delay = self._retry.next_delay(state.failures, state.waited) if idempotent else None
                reason = redact(f"{type(exc).__name__}: {exc}", used)[:300]
                if delay is None:
                    log.warning("%s %s failed with no answer (%s); not retrying", method, url, type(exc).__name__)
                    what = (
                        f"failed after {state.failures} tries"
                        if idempotent
                        else "failed before an answer "
                        "arrived; it may or may not have been processed, and was not re-sent"
                    )
                    raise ConfluenceConnectionError(f"{method} {url} {what} ({reason}).") from exc
                self._wait(method, url, type(exc).__name__, delay, state)
                state.resent_after_uncertain |= _uncertain(exc)
                continue
            status = response.status_code
            if response.is_redirect:
                url = redirect_target(
                    method,
                    response.url or url,
                    status,
                    response.headers.get("Location"),
                    redirects,
                    headers=response.headers,
                )
                params, redirects, header = None, redirects + 1, sent  # the target carries its own query
                continue
            self._note_rate_limit(response.headers)
            if log.isEnabledFor(logging.DEBUG) and any(warnings := rate_limit_warnings(response.headers)):
                log.debug("Atlassian rate-limit warning on %s: near limit=%s, beta headers=%s", url, *warnings)
            if 200 <= status < 300 and raw:
                return response.content, response.headers
            if 200 <= status < 300:
                return parse_json_body(method, url, status, response.content, response.headers), response.headers
            error = error_from_response(method, url, status, response.content, response.headers, secrets=used)
            if isinstance(error, ConfluenceScopeError):
                raise error
            if not auth_retried and (status == 401 or (status in (403, 404) and self._auth.expired())):
                auth_retried = True
                log.info("%s %s answered %s; renewing the credentials and retrying once", method, url, status)
                try:
                    header = self._auth.rejected(sent)
                except ConfluenceError as refused:
                    raise refused from error
                continue
            if status in _RETRIED_STATUSES and (idempotent or status == 429):
                state.failures += 1
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if status == 429 and self._retry.outlasts_budget(state.waited, retry_after):
                    log.warning(
                        "%s %s: 429 asks to wait %.0f s, longer than the %.0f s this task may sleep; giving up "
                        "for now (a deferrable task defers until then)",
                        method,
                        url,
                        retry_after,
                        self._retry.max_total_wait - state.waited,
                    )
                    raise _come_back_at(error, response.headers, self._retry)
                delay = self._retry.next_delay(state.failures, state.waited, retry_after)
                if delay is not None:
                    self._wait(method, url, str(status), delay, state)
                    state.resent_after_uncertain |= status != 429
                    continue
            raise _come_back_at(error, response.headers, self._retry)

    def _note_rate_limit(self, headers: Mapping[str, str]) -> None:
        """Keep the quota status of an answer; warn once per window (and pool) when it is nearly spent."""
        status = parse_rate_limit(headers)
        if not status.known:
            return
        self.rate_limit = status
        if not status.near_limit:
            return
        resets = status.resets_at(time.time())
        window = (status.policy, None if resets is None else round(resets / 60))
        if window in self._warned_windows:
            return
        self._warned_windows.add(window)
        log.warning(
            "Atlassian says the app's points quota is nearly spent (%s%s); calls will be refused with 429 until "
            "it resets. Spread the DAGs' calls over the hour, or ask for fewer objects per call.",
            status.describe(),
            f", {status.reason}" if status.reason else "",
        )

    def _wait(self, method: str, url: str, reason: str, delay: float, state: RetryState) -> None:
        log.warning(
            "%s %s: %s; retrying in %.1f s (try %d of %d)",
            method,
            url,
            reason,
            delay,
            state.failures + 1,
            self._retry.max_attempts,
        )
        self._sleep(delay)
        state.waited += delay


def _come_back_at(error: ConfluenceApiError, headers: Mapping[str, str], policy: RetryPolicy) -> ConfluenceApiError:
    """A 429's error, with when to come back (``retry_at``, epoch seconds) and the quota's ``reason``."""
    if not isinstance(error, ConfluenceRateLimited):
        return error
    now = time.time()
    status = parse_rate_limit(headers)
    retry_after = error.retry_after
    if retry_after is not None and retry_after <= policy.max_retry_after:
        retry_at: float | None = now + retry_after
    else:
        retry_at = status.resets_at(now)
    return error.with_retry_at(retry_at, status.reason)
