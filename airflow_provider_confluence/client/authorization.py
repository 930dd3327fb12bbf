"""What the client puts in the ``Authorization`` header, whatever the connection's way of signing in.

The client asks an :class:`AuthorizationSource` for the header value of EACH request. A bearer-token source (3LO
rotation, service-account tokens, the token broker) is wrapped by :class:`BearerAuthorization`; a scoped API token
is :class:`BasicAuthorization`. This module imports nothing from ``auth/``: the sources are handed in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Protocol

__all__ = ["AccessTokenSource", "AuthorizationSource", "BasicAuthorization", "BearerAuthorization"]


class AccessTokenSource(Protocol):
    """Where the client gets bearer tokens; implemented by :class:`~.tokens.TokenManager` and others."""

    def get_access_token(self) -> str:
        """Return a valid access token, refreshing it first if needed."""

    def refresh_rejected(self, rejected_token: str) -> str:
        """The token was refused with 401: refresh (or adopt a newer stored one) and return it."""

    def access_token_expired(self) -> bool:
        """Return True when the STORED expiry of the access token has passed."""


class AuthorizationSource(Protocol):
    """The ``Authorization`` header of every request, and what to do when Confluence refuses it."""

    def authorization(self) -> str:
        """The header value to send now (``Bearer ...`` or ``Basic ...``)."""

    def rejected(self, sent: str) -> str:
        """``sent`` was refused (401, or 403/404 while :meth:`expired`): a new header value to try once more.

        :raises ConfluenceAuthError: when nothing new can be tried (the message says what to fix).
        """

    def expired(self) -> bool:
        """True when the credential last handed out may have expired, so that a 403/404 is worth one retry."""

    def secret_of(self, header: str) -> str:
        """The part of a header value that must never appear in an error message or a log."""


class BearerAuthorization:
    """``Authorization: Bearer <token>`` from an :class:`AccessTokenSource`.

    :param tokens: the source of access tokens.
    """

    def __init__(self, tokens: AccessTokenSource) -> None:
        self.tokens = tokens

    def authorization(self) -> str:
        return f"Bearer {self.tokens.get_access_token()}"

    def rejected(self, sent: str) -> str:
        return f"Bearer {self.tokens.refresh_rejected(self.secret_of(sent))}"

    def expired(self) -> bool:
        return self.tokens.access_token_expired()

    def secret_of(self, header: str) -> str:
        return header.partition(" ")[2]


class BasicAuthorization:
    """``Authorization: Basic base64(email:token)``: a scoped API token, sent as it is; nothing to refresh.

    :param email: the Atlassian account's e-mail.
    :param token: the API token.
    :param on_rejected: builds the error raised when Confluence refuses the pair (a wrong e-mail or token, a
        revoked or expired token: Atlassian answers all of them with the same 401).
    :param on_use: called before every request (the expiry warning); may be None.
    """

    def __init__(
        self,
        email: str,
        token: str,
        *,
        on_rejected: Callable[[], Exception],
        on_use: Callable[[], None] | None = None,
    ) -> None:
        self._header = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode("ascii")
        self._token = token
        self._on_rejected = on_rejected
        self._on_use = on_use

    def __repr__(self) -> str:
        return "BasicAuthorization(<redacted>)"

    def authorization(self) -> str:
        if self._on_use is not None:
            self._on_use()
        return self._header

    def rejected(self, sent: str) -> str:
        raise self._on_rejected()

    def expired(self) -> bool:
        return False  # a 403/404 with a valid API token is a real answer; an expired one gets 401

    def secret_of(self, header: str) -> str:
        return header.partition(" ")[2]

    @property
    def secrets(self) -> tuple[str, str]:
        """The encoded credentials and the token itself, to mask in logs."""
        return self.secret_of(self._header), self._token
