"""The consent flow without Airflow: the signed ``state`` value, and the grant a finished consent yields.

``state`` (unguessable and bound to the person, as OAuth 2.0 asks: RFC 6749 section 10.12) is a JSON Web Token
(:mod:`.signing`: HS256, audience :data:`~.signing.CONSENT_STATE`) under a key derived from a server secret. It
names the connection, holds a keyed tag of the user who started the consent and a keyed tag of the
connection's settings (client id, site, redirect URI, token URL), and carries ``iat``, ``exp`` and ``jti``. A
state is accepted once (its ``jti`` is claimed in the single-use ledger), within 10 minutes, by the same user,
for the same, unchanged connection.

:func:`finish_consent` exchanges the authorization code (JSON body), insists on ``offline_access`` and a
refresh token, and finds the site's cloud id; :func:`save_grant` writes the result through a token store.
Nothing here logs or puts into a message a token, the client secret, the code or the state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import requests

from airflow_provider_confluence.auth import oauth, signing
from airflow_provider_confluence.auth.tokens import TokenState, TokenStore
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceConfigError, ConfluenceInvalidGrant

STATE_TTL = 600.0
_CLOCK_SKEW = 60.0

#: ``ConfluenceAuthError.error`` values of a refused state or consent, and the HTTP status each deserves.
STATE_ERRORS = {
    "malformed_state": 400,
    "forged_state": 400,
    "expired_state": 400,
    "reused_state": 400,
    "foreign_state": 403,
    "changed_connection": 409,
}


class NonceLedger(Protocol):
    """Remembers the ``jti`` of used states until they expire."""

    def claim(self, nonce: str, expires_at: float) -> bool:
        """Record ``nonce`` (a state's ``jti``); False when it was recorded before (the state is being reused)."""


class MemoryNonceLedger:
    """A nonce ledger in process memory, for the command line and tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def claim(self, nonce: str, expires_at: float) -> bool:
        with self._lock:
            now = self._clock()
            for old in [n for n, until in self._used.items() if until < now]:
                del self._used[old]
            if nonce in self._used:
                return False
            self._used[nonce] = expires_at
            return True


@dataclass(frozen=True)
class IssuedState:
    """A state whose signature, age and user were checked.

    :param conn_id: the connection the consent was started for.
    :param issued_at: when, in epoch seconds.
    :param nonce: its single-use id (the token's ``jti``).
    :param binding: the tag of the connection's settings when it was issued.
    """

    conn_id: str
    issued_at: float
    nonce: str
    binding: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _refused(reason: str, message: str) -> ConfluenceAuthError:
    return ConfluenceAuthError(message, status_code=STATE_ERRORS[reason], error=reason)


class ConsentStates:
    """Issues and checks ``state`` values.

    :param secret: the server secret the signing key is derived from (never used raw).
    :param ledger: where used nonces are remembered; in memory by default (one process only).
    :param ttl: seconds a state stays valid (10 minutes, like Atlassian's authorization codes).
    :param clock: current epoch seconds.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        ledger: NonceLedger | None = None,
        ttl: float = STATE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if not raw:
            raise ConfluenceConfigError("The consent state needs a non-empty server secret.")
        self._key = signing.signing_key(raw)
        self._ledger = ledger or MemoryNonceLedger(clock)
        self._ttl = ttl
        self._clock = clock

    def _tag(self, kind: str, value: str) -> str:
        return _b64(hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).digest()[:12])

    def binding(self, settings: ConnectionSettings) -> str:
        """A keyed tag of the settings a consent depends on; a state is refused once they change."""
        parts = (settings.client_id, settings.site_url, settings.redirect_uri or "", settings.token_url)
        return self._tag("connection", "\0".join(parts))

    def issue(self, *, conn_id: str, user: str, binding: str) -> str:
        """A new state for ``user`` starting a consent for ``conn_id`` (``binding`` from :meth:`binding`)."""
        claims = {"conn_id": conn_id, "user": self._tag("user", user), "binding": binding}
        return signing.issue(self._key, signing.CONSENT_STATE, claims, now=self._clock(), lifetime=self._ttl)

    def verify(self, state: str, *, user: str, conn_id: str | None = None) -> IssuedState:
        """Check the signature, the audience, the age and the user (and the connection, when given); consume
        nothing.

        :raises ConfluenceAuthError: ``error`` is one of :data:`STATE_ERRORS`.
        """
        if not state:
            raise _refused("malformed_state", "The state parameter is missing or malformed; start the consent again.")
        try:
            claims = signing.verify(
                state,
                self._key,
                signing.CONSENT_STATE,
                now=self._clock(),
                max_age=self._ttl,
                max_future=_CLOCK_SKEW,
                require=("conn_id", "user", "binding"),
            )
            issued = IssuedState(claims["conn_id"], float(claims["iat"]), claims["jti"], claims["binding"])
            user_tag = claims["user"]
            if not all(isinstance(value, str) for value in (issued.conn_id, issued.binding, user_tag)):
                raise signing.SignatureRefused("malformed")
        except signing.SignatureRefused as refused:
            if refused.reason == "forged":
                raise _refused(
                    "forged_state",
                    "The state parameter was not issued by this Airflow (forged, damaged, "
                    "or from another server or run); nothing was changed. Start the consent again.",
                ) from None
            if refused.reason in ("expired", "future"):
                raise _refused(
                    "expired_state",
                    f"This consent was started more than {self._ttl / 60:.0f} minutes "
                    "ago; nothing was changed. Start it again and approve it within 10 minutes.",
                ) from None
            raise _refused("malformed_state", "The state parameter is malformed; start the consent again.") from None
        if not hmac.compare_digest(user_tag, self._tag("user", user)):
            raise _refused(
                "foreign_state",
                "This consent was started by another Airflow user; nothing was changed. "
                "Start it yourself from the Connect button.",
            )
        if conn_id is not None and issued.conn_id != conn_id:
            raise _refused(
                "foreign_state",
                f"This consent was started for connection {issued.conn_id!r}, not {conn_id!r}; nothing was changed.",
            )
        return issued

    def consume(self, issued: IssuedState, *, binding: str) -> None:
        """Check that the connection is unchanged, then use the state up.

        :raises ConfluenceAuthError: ``changed_connection`` or ``reused_state``.
        """
        if not hmac.compare_digest(issued.binding, binding):
            raise _refused(
                "changed_connection",
                f"Connection {issued.conn_id!r} was edited (client id, site, "
                "callback URL or token URL) after this consent started; nothing was changed. Start again.",
            )
        if not self._ledger.claim(issued.nonce, issued.issued_at + self._ttl + signing.LEEWAY + 1):
            raise _refused(
                "reused_state",
                "This consent answer was already used once; nothing was changed. Start "
                "the consent again if the connection still needs it.",
            )


@dataclass(frozen=True)
class NewGrant:
    """What a finished consent leaves in the connection.

    :param refresh_token: the grant's first refresh token.
    :param scope: the scopes Atlassian granted, space-separated.
    :param cloud_id: the cloud id of the connection's site.
    :param site_url: the connection's site.
    :param issued_at: when the code was exchanged (the 365-day count starts here).
    """

    refresh_token: str = field(repr=False)
    scope: str
    cloud_id: str
    site_url: str
    issued_at: float

    @property
    def scopes(self) -> list[str]:
        """The granted scopes, in Atlassian's order."""
        return self.scope.split()

    def token_state(self) -> TokenState:
        """The token state to store: the new refresh token, and no access token of the old grant."""
        return TokenState(
            refresh_token=self.refresh_token, scope=self.scope, cloud_id=self.cloud_id, grant_issued_at=self.issued_at
        )


def finish_consent(
    settings: ConnectionSettings,
    code: str,
    *,
    session: requests.Session,
    clock: Callable[[], float] = time.time,
    on_secret: Callable[[str], None] = lambda secret: None,
) -> NewGrant:
    """Exchange the authorization code and check what came back; store nothing.

    :param on_secret: called with every token received (``mask_secret`` in Airflow).
    :raises ConfluenceAuthError: the exchange failed (``error`` says why: ``invalid_grant``,
        ``no_offline_access``, ``no_refresh_token``, ...), or the grant does not cover the site.
    """
    if not settings.redirect_uri:
        raise ConfluenceConfigError(f"Connection {settings.conn_id!r} has no redirect_uri (Callback URL).")
    try:
        tokens = oauth.exchange_code(
            session,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            code=code,
            redirect_uri=settings.redirect_uri,
            timeout=settings.timeout,
        )
    except ConfluenceInvalidGrant as exc:
        raise ConfluenceAuthError(
            "Atlassian refused the authorization code (invalid_grant): it was already used, is older than 10 "
            f"minutes, or was issued for another callback URL than {settings.redirect_uri}. Check that this URL is "
            "the app's Callback URL in the developer console, then start the consent again.",
            status_code=exc.status_code,
            error="invalid_grant",
        ) from None
    on_secret(tokens.access_token)
    if tokens.refresh_token:
        on_secret(tokens.refresh_token)
    granted = (tokens.scope or "").split()
    if "offline_access" not in granted:
        raise ConfluenceAuthError(
            f"Atlassian granted {' '.join(granted) or 'no scopes'} without offline_access, so there is no refresh "
            f"token to keep. Add offline_access to the scopes of connection {settings.conn_id!r} and consent again.",
            error="no_offline_access",
        )
    if not tokens.refresh_token:
        raise ConfluenceAuthError(
            "Atlassian's answer had no refresh token although offline_access was granted; consent again.",
            error="no_refresh_token",
        )
    resources = oauth.accessible_resources(
        session, api_url=settings.api_url, access_token=tokens.access_token, timeout=settings.timeout
    )
    cloud_id = oauth.find_cloud_id(resources, settings.site_host)
    return NewGrant(
        refresh_token=tokens.refresh_token,
        scope=" ".join(granted),
        cloud_id=cloud_id,
        site_url=settings.site_url,
        issued_at=clock(),
    )


def save_grant(store: TokenStore, grant: NewGrant) -> None:
    """Replace the token state in ``store`` by the new grant's, under the store's lock.

    The lock matters: a refresh of the old grant that is in flight finishes first, and cannot overwrite the
    new refresh token afterwards.
    """
    with store.transaction() as tx:
        tx.save(grant.token_state())
