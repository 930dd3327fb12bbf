"""Atlassian service accounts with OAuth 2.0 client credentials: ``grant_type=client_credentials``.

An organisation admin creates a service account and an OAuth 2.0 credential for it, choosing its scopes (and the
apps, hence the sites, it reaches) once, at creation
(https://support.atlassian.com/user-management/docs/create-oauth-2-0-credential-for-service-accounts/;
announced on https://community.atlassian.com/forums/Trust-Security-articles/OAuth-Support-for-Service-Accounts/ba-p/3126134).
The rules the emulator follows:

* ``POST /oauth/token`` with ``grant_type=client_credentials``, ``client_id`` and ``client_secret`` (JSON, as
  Atlassian documents; form encoding is accepted too, like the 3LO grants) answers
  ``{"access_token", "expires_in": 3600, "scope", "token_type": "Bearer"}``: the credential's fixed scopes, and
  **no** ``refresh_token`` (nothing rotates: a new token is simply fetched again);
* a ``scope`` parameter, whatever its value, answers ``400 {"error": "invalid_scope", ...}``: scopes are fixed on
  the credential, and Atlassian rejects the parameter with ``invalid_scope``
  (https://github.com/n8n-io/n8n/pull/37513, whose client therefore sends none);
* an unknown client id or a wrong secret answers ``401 {"error": "invalid_client", ...}`` (RFC 6749 section 5.2;
  Atlassian documents no body for it; the 3LO grants of the same endpoint answer ``access_denied``, see
  ``auth.py``; the emulator's ``client_credentials_auth_error`` knob picks either);
* the 3LO app's own client id is not a service-account credential: ``403 {"error": "unauthorized_client"}``;
* the token works on ``accessible-resources`` (listing the sites the credential reaches) and through the gateway
  ``/ex/confluence/{cloudId}/...`` with the same scope checks as 3LO tokens; expired, it gets the same answers.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from ._http import Reply, oauth_error
from .auth import AccessCheck, same
from .canaries import new_secret
from .clock import Clock

DEFAULT_TOKEN_LIFETIME = 3600.0


@dataclass(frozen=True)
class ServiceAccountCredential:
    """A service account's OAuth 2.0 credential, as registered on the emulator.

    :param client_id: the credential's client ID (the connection's Login).
    :param client_secret: its secret (the connection's Password); never in ``repr``.
    :param scopes: the scopes fixed at creation, in order.
    :param cloud_ids: the sites (cloud ids) its tokens reach.
    :param token_lifetime: seconds an access token lives (``expires_in``).
    :param label: a name for messages and :attr:`FakeAtlassian.requests`.
    """

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    cloud_ids: tuple[str, ...]
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME
    label: str = ""

    @property
    def scope(self) -> str:
        """The scopes, space-separated (the ``scope`` of a token answer)."""
        return " ".join(self.scopes)


@dataclass
class _Token:
    client_id: str
    expires_at: float


class ServiceAccountModel:
    """The service-account credentials of one emulator and the access tokens they got.

    :param clock: the emulator's clock.
    :param lock: the emulator's one lock.
    :param counters: the emulator's counters (``token_requests*``, ``client_credentials_grants``,
        ``client_auth_failures``, ``client_credentials_with_scope``).
    :param app_client_id: the client id of the emulator's 3LO app (refused here with ``unauthorized_client``).
    """

    def __init__(self, *, clock: Clock, lock: threading.RLock, counters: dict[str, Any], app_client_id: str) -> None:
        self._clock = clock
        self._lock = lock
        self._counters = counters
        self._app_client_id = app_client_id
        self.auth_error = "invalid_client"
        self._credentials: dict[str, ServiceAccountCredential] = {}
        self._tokens: dict[str, _Token] = {}

    def register(
        self,
        scopes: tuple[str, ...],
        cloud_ids: tuple[str, ...],
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        label: str = "",
    ) -> ServiceAccountCredential:
        """Create a credential (random id and secret unless given); raise ValueError on a taken id."""
        if not scopes:
            raise ValueError("a service-account credential needs at least one scope")
        if token_lifetime <= 0:
            raise ValueError("token_lifetime must be positive")
        credential = ServiceAccountCredential(
            client_id or secrets.token_urlsafe(24),
            client_secret or new_secret(48),
            tuple(scopes),
            tuple(cloud_ids),
            float(token_lifetime),
            label,
        )
        with self._lock:
            if credential.client_id in self._credentials or credential.client_id == self._app_client_id:
                raise ValueError("a credential or app with this client id already exists")
            self._credentials[credential.client_id] = credential
        return credential

    def revoke(self, client_id: str) -> None:
        """Delete a credential: its tokens stop working at once (KeyError when unknown)."""
        with self._lock:
            del self._credentials[client_id]

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    def token_request(self, params: dict[str, str], *, form: bool) -> Reply:
        """Answer ``POST /oauth/token`` with ``grant_type=client_credentials`` (see the module docstring)."""
        with self._lock:
            self._count("token_requests")
            self._count("token_requests_form" if form else "token_requests_json")
            client_id = params.get("client_id") or ""
            if same(client_id, self._app_client_id):
                return oauth_error(
                    403, "unauthorized_client", "Grant type 'client_credentials' not allowed for the client."
                )
            credential = self._credentials.get(client_id)
            if credential is None or not same(params.get("client_secret"), credential.client_secret):
                self._count("client_auth_failures")
                description = "Unauthorized" if self.auth_error == "access_denied" else "Client authentication failed"
                return oauth_error(401, self.auth_error, description)
            if "scope" in params:
                self._count("client_credentials_with_scope")
                return oauth_error(
                    400, "invalid_scope", "The scope parameter is not allowed: a service account's scopes are fixed."
                )
            token = new_secret(48)
            lifetime = int(credential.token_lifetime)
            self._tokens[token] = _Token(credential.client_id, self._clock.now() + lifetime)
            self._count("client_credentials_grants")
        body = {"access_token": token, "expires_in": lifetime, "scope": credential.scope, "token_type": "Bearer"}
        return Reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def check_access(self, token: str | None) -> AccessCheck:
        """Judge a bearer token: ``unknown`` when it is not a service-account token."""
        with self._lock:
            record = self._tokens.get(token or "")
            if record is None:
                return AccessCheck("unknown")
            credential = self._credentials.get(record.client_id)
            if credential is None or self._clock.now() >= record.expires_at:
                return AccessCheck("expired", kind="client_credentials")
            return AccessCheck(
                "ok",
                credential.scopes,
                kind="client_credentials",
                app=credential.client_id,
                cloud_ids=credential.cloud_ids,
            )
