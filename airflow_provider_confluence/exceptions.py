"""The one error tree of the provider.

Every exception carries the facts a caller needs (status code, method, URL, Confluence's own error code,
Atlassian's trace id) as attributes; callers test types and attributes, never ``str(exc)``. Messages say what
to do next and never contain a token, a client secret or a request body. Every exception pickles (Airflow moves
exceptions between processes) and turns into JSON for a trigger event (:meth:`ConfluenceError.to_event`,
:meth:`ConfluenceError.from_event`).

::

    ConfluenceError
    ├── ConfluenceConfigError          bad connection settings, found before any request is sent
    ├── ConfluenceTokenStoreError      token state could not be read or saved
    ├── ConfluenceConnectionError      no answer arrived (connection error, timeout) after the retries
    ├── ConfluenceBrokerError          the token broker in the Airflow 3 API server was unreachable or refused
    ├── ConfluenceAuthError            the token endpoint or accessible-resources refused or failed
    │   ├── ConfluenceInvalidGrant     the token endpoint answered ``invalid_grant``
    │   └── ConfluenceReauthorizationRequired   the grant is dead: a person must consent again
    ├── ConfluenceMissing              a lookup was answered, but found nothing (no HTTP error behind it)
    │   ├── ConfluencePageMissing      no current page with this title in this space
    │   ├── ConfluenceSpaceMissing     no space with this key
    │   └── ConfluenceAttachmentMissing   the page has no attachment with this file name
    ├── ConfluencePageExists           a page with this title exists and ``if_exists="fail"``: nothing was sent
    ├── ConfluenceDuplicateTitle       two folders under one parent have the title asked for: nothing was created
    └── ConfluenceApiError             a Confluence or gateway call answered with an error
        ├── ConfluenceNotFound         404
        ├── ConfluenceConflict         409 (stale page version)
        ├── ConfluenceGone             410 (a removed v1 endpoint)
        ├── ConfluenceRateLimited      429 after the client's retries ran out
        └── ConfluenceScopeError       401 "scope does not match"

This module imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_confluence._error_support import TRACE_HEADER, ErrorSupport, kept_headers, trace_id_of

__all__ = [
    "ConfluenceApiError",
    "ConfluenceAttachmentMissing",
    "ConfluenceAuthError",
    "ConfluenceBrokerError",
    "ConfluenceConfigError",
    "ConfluenceConflict",
    "ConfluenceConnectionError",
    "ConfluenceDuplicateTitle",
    "ConfluenceError",
    "ConfluenceGone",
    "ConfluenceInvalidGrant",
    "ConfluenceMissing",
    "ConfluenceNotFound",
    "ConfluencePageExists",
    "ConfluencePageMissing",
    "ConfluenceRateLimited",
    "ConfluenceReauthorizationRequired",
    "ConfluenceScopeError",
    "ConfluenceSpaceMissing",
    "ConfluenceTokenStoreError",
]


class ConfluenceError(ErrorSupport, Exception):
    """Base class of every error this provider raises.

    Pickles with its class, message and attributes; :meth:`to_event` and :meth:`from_event` carry it through a
    trigger event (JSON).

    :param message: what went wrong and what to do about it.
    :param status_code: the HTTP status behind the error, when there is one.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class ConfluenceConfigError(ConfluenceError, ValueError):
    """The connection's settings are unusable; raised before any request is sent."""


class ConfluenceTokenStoreError(ConfluenceError):
    """Token state could not be read or written.

    Raised, for example, when a refresh succeeded but the rotated refresh token could not be saved: the token
    is then not used, so that no process ever works with a refresh token that only it knows.
    """


class ConfluenceConnectionError(ConfluenceError):
    """No answer arrived from Confluence (connection refused or reset, timeout), after any retries.

    For a write, the request may or may not have been processed.
    """


class ConfluenceBrokerError(ConfluenceError):
    """The token broker (``POST /confluence-oauth/token`` in the Airflow 3 API server) gave no access token.

    :param url: the broker's URL.
    :param reason: the broker's machine-readable refusal (``invalid_signature``, ``stale_timestamp``, ...),
        ``unreachable`` when no broker answered (connection error, timeout, no plugin at that address), or
        ``store_error`` when the API server could not use its metadata database (503, a pool timeout under load).
    :param retry_after: the broker's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        reason: str,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.url = url
        self.reason = reason
        self.retry_after = retry_after

    @property
    def unreachable(self) -> bool:
        """True when no broker answered (refused connection, reset, 502/503/504): a task waits for it."""
        return self.reason == "unreachable"

    @property
    def retryable(self) -> bool:
        """True when a task waits and asks again: no broker answered, or its metadata database was busy."""
        return self.reason in ("unreachable", "store_error")


class ConfluenceAuthError(ConfluenceError):
    """The token endpoint (or accessible-resources) refused the request or failed.

    :param error: the OAuth ``error`` code (``invalid_grant``, ``invalid_client``, ...) when the server sent one.
    :param transient: True when the failure may pass (timeout, connection error, 5xx, malformed answer).
    :param trace_id: Atlassian's trace id of the answer (its ``Atl-Traceid`` header), when there was an answer;
        also at the end of the message.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        transient: bool = False,
        trace_id: str | None = None,
    ) -> None:
        trace_id = trace_id_of({TRACE_HEADER: trace_id} if trace_id else None)
        super().__init__(f"{message} (Atl-Traceid {trace_id})" if trace_id else message, status_code=status_code)
        self.error = error
        self.transient = transient
        self.trace_id = trace_id


class ConfluenceInvalidGrant(ConfluenceAuthError):
    """The token endpoint answered ``invalid_grant`` for the refresh token that was sent."""


class ConfluenceReauthorizationRequired(ConfluenceAuthError):
    """The OAuth grant can no longer be refreshed: a person must authorize the app again.

    :param conn_id: the Airflow connection whose grant is dead (None outside Airflow).
    :param trace_id: Atlassian's trace id of the token endpoint's ``invalid_grant`` answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        conn_id: str | None = None,
        status_code: int | None = None,
        trace_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, error="invalid_grant", trace_id=trace_id)
        self.conn_id = conn_id


class ConfluenceMissing(ConfluenceError):
    """A lookup was answered, but found nothing: no HTTP error is behind it, so ``status_code`` is None.

    (A 404 that Confluence itself answered is a :class:`ConfluenceNotFound`.) Catch both to handle "not there"
    whichever way it was found out.
    """


class ConfluencePageMissing(ConfluenceMissing):
    """No current page with this exact title in this space.

    :param title: the title that was looked up.
    :param space_key: the space's key, when the lookup named it.
    :param space_id: the space's numeric id, when the lookup named it.
    """

    def __init__(self, message: str, *, title: str, space_key: str | None = None, space_id: str | None = None) -> None:
        super().__init__(message)
        self.title = title
        self.space_key = space_key
        self.space_id = space_id


class ConfluenceSpaceMissing(ConfluenceMissing):
    """No space with this key (or the connection's user cannot see it).

    :param space_key: the key that was looked up.
    """

    def __init__(self, message: str, *, space_key: str) -> None:
        super().__init__(message)
        self.space_key = space_key


class ConfluenceAttachmentMissing(ConfluenceMissing):
    """The page has no attachment with this file name.

    :param page_id: the page whose attachments were listed.
    :param filename: the file name that was looked up.
    """

    def __init__(self, message: str, *, page_id: str, filename: str) -> None:
        super().__init__(message)
        self.page_id = page_id
        self.filename = filename


class ConfluencePageExists(ConfluenceError):
    """A page with this title already exists in the space and ``if_exists="fail"``: nothing was sent or changed.

    :param title: the title.
    :param space_id: the space's numeric id.
    :param page_id: the id of the existing page.
    :param page_url: the existing page's web address, when known.
    """

    def __init__(self, message: str, *, title: str, space_id: str, page_id: str, page_url: str | None = None) -> None:
        super().__init__(message)
        self.title = title
        self.space_id = space_id
        self.page_id = page_id
        self.page_url = page_url


class ConfluenceDuplicateTitle(ConfluenceError):
    """Two or more folders under one parent have the title asked for, so which one is meant is unclear: nothing
    was created or changed.

    :param title: the title.
    :param parent_id: the page or folder they are under.
    :param ids: the ids of the folders with that title.
    """

    def __init__(self, message: str, *, title: str, parent_id: str, ids: list[str]) -> None:
        super().__init__(message)
        self.title = title
        self.parent_id = parent_id
        self.ids = ids


class ConfluenceApiError(ConfluenceError):
    """A call to Confluence (or the Atlassian gateway in front of it) was answered with an error.

    :param status_code: the HTTP status code.
    :param method: the HTTP method of the failed request.
    :param url: the absolute URL of the failed request (it never holds a token).
    :param code: the error code from the body (``BAD_REQUEST``, ``invalid_grant``, ...), when there is one.
    :param message: Confluence's own title or detail, followed by what to do.
    :param trace_id: Atlassian's trace id of the answer (its ``Atl-Traceid`` header), which Atlassian support
        asks for; taken from ``headers`` when not given.
    :param headers: the answer's headers; only an allow-list of diagnostic ones is kept (``Retry-After``, the
        rate-limit headers, ``Atl-Traceid``, ``Content-Type``), never ``Authorization``, cookies or the like.
    """

    def __init__(
        self,
        status_code: int,
        method: str,
        url: str,
        code: str | None,
        message: str,
        *,
        trace_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        kept = kept_headers(headers)
        trace_id = trace_id_of({TRACE_HEADER: trace_id} if trace_id else kept)
        text = f"{method} {url} answered {status_code}: {message}"
        super().__init__(f"{text} (Atl-Traceid {trace_id})" if trace_id else text, status_code=status_code)
        self.method = method
        self.url = url
        self.code = code
        self.detail = message
        self.trace_id = trace_id
        self.headers = kept
        self._remember(trace_id=trace_id, headers=kept)  # never the headers that were not allow-listed


class ConfluenceNotFound(ConfluenceApiError):
    """404: the object does not exist, or the app's user may not see it."""


class ConfluenceConflict(ConfluenceApiError):
    """409: the page changed under us (stale version)."""


class ConfluenceGone(ConfluenceApiError):
    """410: the endpoint was removed (Confluence's v1 REST API behind the OAuth gateway)."""


class ConfluenceRateLimited(ConfluenceApiError):
    """429 after every retry allowed by ``Retry-After`` was spent, or at once when the wait it asks for is longer
    than the client may sleep in a task (an exhausted hourly points quota: up to an hour).

    :param retry_after: the server's last ``Retry-After`` in seconds, when it sent one.
    :param retry_at: when to come back, in epoch seconds (from ``Retry-After``, else the quota's reset), when
        known: a deferrable operator defers until then, a sensor reschedules to then.
    :param reason: ``X-Beta-RateLimit-Reason`` (``confluence-quota-tenant-based``, ...), when sent.
    :param progress: what the interrupted work had already done, for a resumed task (a listing's ``cursor``,
        the ``page_id`` of a page already created); set with :meth:`with_progress`.
    """

    def __init__(
        self,
        status_code: int,
        method: str,
        url: str,
        code: str | None,
        message: str,
        *,
        retry_after: float | None = None,
        retry_at: float | None = None,
        reason: str | None = None,
        progress: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, method, url, code, message, trace_id=trace_id, headers=headers)
        self.retry_after = retry_after
        self.retry_at = retry_at
        self.reason = reason
        self.progress: dict[str, Any] = dict(progress or {})

    def with_retry_at(self, retry_at: float | None, reason: str | None) -> ConfluenceRateLimited:
        """Record when to come back (epoch seconds) and the quota's reason; returns self."""
        self.retry_at, self.reason = retry_at, reason
        self._remember(retry_at=retry_at, reason=reason)
        return self

    def with_progress(self, **facts: Any) -> ConfluenceRateLimited:
        """Record what the interrupted work had already done (JSON-able facts, never a secret); returns self."""
        self.progress.update(facts)
        self._remember(progress=dict(self.progress))
        return self


class ConfluenceScopeError(ConfluenceApiError):
    """401 "scope does not match": the grant lacks a scope this operation needs."""
