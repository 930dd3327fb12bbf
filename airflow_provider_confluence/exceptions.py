"""The one error tree of the provider.

Every exception carries the facts a caller needs (status code, method, URL, Confluence's own error code) as
attributes; callers test types and attributes, never ``str(exc)``. Messages say what to do next and never
contain a token, a client secret or a request body.

::

    ConfluenceError
    ├── ConfluenceConfigError          bad connection settings, found before any request is sent
    ├── ConfluenceTokenStoreError      token state could not be read or saved
    ├── ConfluenceConnectionError      no answer arrived (connection error, timeout) after the retries
    ├── ConfluenceBrokerError          the token broker in the Airflow 3 API server was unreachable or refused
    ├── ConfluenceAuthError            the token endpoint or accessible-resources refused or failed
    │   ├── ConfluenceInvalidGrant     the token endpoint answered ``invalid_grant``
    │   └── ConfluenceReauthorizationRequired   the grant is dead: a person must consent again
    └── ConfluenceApiError             a Confluence or gateway call failed
        ├── ConfluenceNotFound         404
        ├── ConfluenceConflict         409 (stale page version) or an existing page with ``if_exists="fail"``
        ├── ConfluenceGone             410 (a removed v1 endpoint)
        ├── ConfluenceRateLimited      429 after the client's retries ran out
        └── ConfluenceScopeError       401 "scope does not match"

This module imports nothing from Airflow.
"""

from __future__ import annotations


class ConfluenceError(Exception):
    """Base class of every error this provider raises.

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
    :param reason: the broker's machine-readable refusal (``invalid_signature``, ``stale_timestamp``, ...), or
        ``unreachable`` when no broker answered (connection error, timeout, no plugin at that address).
    """

    def __init__(self, message: str, *, url: str, reason: str, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.url = url
        self.reason = reason

    @property
    def unreachable(self) -> bool:
        """True when no broker answered (refused connection, reset, 502/503/504): a task waits for it."""
        return self.reason == "unreachable"


class ConfluenceAuthError(ConfluenceError):
    """The token endpoint (or accessible-resources) refused the request or failed.

    :param error: the OAuth ``error`` code (``invalid_grant``, ``invalid_client``, ...) when the server sent one.
    :param transient: True when the failure may pass (timeout, connection error, 5xx, malformed answer).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.error = error
        self.transient = transient


class ConfluenceInvalidGrant(ConfluenceAuthError):
    """The token endpoint answered ``invalid_grant`` for the refresh token that was sent."""


class ConfluenceReauthorizationRequired(ConfluenceAuthError):
    """The OAuth grant can no longer be refreshed: a person must authorize the app again.

    :param conn_id: the Airflow connection whose grant is dead (None outside Airflow).
    """

    def __init__(self, message: str, *, conn_id: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code, error="invalid_grant")
        self.conn_id = conn_id


class ConfluenceApiError(ConfluenceError):
    """A call to Confluence (or the Atlassian gateway in front of it) failed.

    :param status_code: the HTTP status code.
    :param method: the HTTP method of the failed request.
    :param url: the URL of the failed request (it never holds a token).
    :param code: the error code from the body (``BAD_REQUEST``, ``invalid_grant``, ...), when there is one.
    :param message: Confluence's own title or detail, followed by what to do.
    """

    def __init__(
        self,
        status_code: int,
        method: str,
        url: str,
        code: str | None,
        message: str,
    ) -> None:
        super().__init__(f"{method} {url} answered {status_code}: {message}", status_code=status_code)
        self.method = method
        self.url = url
        self.code = code
        self.detail = message


class ConfluenceNotFound(ConfluenceApiError):
    """404: the object does not exist, or the app's user may not see it."""


class ConfluenceConflict(ConfluenceApiError):
    """409: the page changed under us (stale version), or a page that must not exist already does."""


class ConfluenceGone(ConfluenceApiError):
    """410: the endpoint was removed (Confluence's v1 REST API behind the OAuth gateway)."""


class ConfluenceRateLimited(ConfluenceApiError):
    """429 after every retry allowed by ``Retry-After`` was spent.

    :param retry_after: the server's last ``Retry-After`` in seconds, when it sent one.
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
    ) -> None:
        super().__init__(status_code, method, url, code, message)
        self.retry_after = retry_after


class ConfluenceScopeError(ConfluenceApiError):
    """401 "scope does not match": the grant lacks a scope this operation needs."""
