"""The OAuth 2.0 (3LO) side of the emulator: grants, rotating refresh tokens, access tokens, codes.

Pure logic, no HTTP: :class:`AuthModel` takes the parsed parameters of a request and returns a
:class:`~airflow_provider_confluence.testing._http.Reply`. Every method takes the emulator's one lock, so the
model is safe to call from the server's threads and from the test at once.

The rules follow https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/ and https://developer.atlassian.com/cloud/oauth/getting-started/refresh-tokens/:

* a refresh returns a new refresh token and supersedes the one sent; a superseded token still works for
  ``rotation_leeway`` seconds after it was superseded (and yields yet another pair);
* a superseded token used after the leeway revokes the whole grant family (every refresh and access token);
* after a refresh, the grant's earlier access tokens die at ``min(their exp, now + rotation_leeway)``;
* refresh tokens expire after 90 days without a refresh, and every token of a grant 365 days after its first;
* a refresh token is only issued when the grant's scopes contain ``offline_access``.

Wrong client credentials answer ``401 {"error": "access_denied", "error_description": "Unauthorized"}``
(what auth.atlassian.com sends, rather than RFC 6749's ``invalid_client``); a dead, unknown or stale refresh
token answers ``403 {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}``.
"""

from __future__ import annotations

import hmac
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from ._http import Reply, oauth_error
from .canaries import new_secret
from .clock import Clock

#: the scopes of a grant the emulator issues by default: the provider's own defaults plus what the DAG-author
#: toolkit needs (labels, attachments, CQL search); never ``delete:page:confluence``
DEFAULT_SCOPES = (
    "offline_access read:space:confluence read:page:confluence write:page:confluence "
    "read:label:confluence write:label:confluence read:attachment:confluence read:content-details:confluence "
    "write:attachment:confluence search:confluence"
)
DAY = 86400.0
INACTIVITY_LIFETIME = 90 * DAY
ABSOLUTE_LIFETIME = 365 * DAY
CODE_LIFETIME = 600.0


def split_scopes(text: str, *, strict: bool = False) -> tuple[str, ...]:
    """Split a scope string into scopes.

    :param text: the scopes, space-separated (or comma-separated unless ``strict``).
    :param strict: only accept whitespace as separator, like auth.atlassian.com.
    """
    parts = text.split() if strict else text.replace(",", " ").split()
    return tuple(dict.fromkeys(parts))


@dataclass
class _Grant:
    grant_id: str
    scopes: tuple[str, ...]
    created_at: float
    label: str
    revoked: bool = False
    latest_refresh: str | None = None
    access_tokens: list[str] = field(default_factory=list)
    graced_upto: int = 0  # access_tokens[:graced_upto] already have their grace deadline


@dataclass
class _RefreshToken:
    grant_id: str
    issued_at: float
    active_from: float  # the last refresh that kept this token (inactivity expiry counts from here)
    superseded_at: float | None = None


@dataclass
class _AccessToken:
    grant_id: str
    expires_at: float


@dataclass
class _Code:
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False


@dataclass(frozen=True)
class AccessCheck:
    """The verdict on a bearer token.

    :param state: ``"ok"``; ``"expired"`` (past its exp, cut short by a refresh's grace period, or its grant
        revoked); or ``"unknown"``.
    :param scopes: the scopes of the token's grant when ``state`` is ``"ok"``.
    :param kind: how the caller signed in: ``"oauth2_3lo"``, ``"client_credentials"`` or ``"api_token"``.
    :param app: the OAuth app or service-account credential (client id) the points quota charges; None for
        API-token traffic, which the quota does not count.
    :param cloud_ids: the sites the credential reaches; None: any (a 3LO grant covers the emulated site).
    """

    state: str
    scopes: tuple[str, ...] = ()
    kind: str = "oauth2_3lo"
    app: str | None = None
    cloud_ids: tuple[str, ...] | None = None

    def reaches(self, cloud_id: str) -> bool:
        """Whether the credential may call the site with this cloud id."""
        return self.cloud_ids is None or cloud_id in self.cloud_ids


class AuthModel:
    """Grants, tokens and authorization codes of one emulated OAuth app.

    :param clock: the emulator's clock.
    :param lock: the emulator's one lock.
    :param counters: the emulator's counters, updated in place.
    :param client_id: the app's client id.
    :param client_secret: the app's client secret.
    :param access_token_lifetime: seconds an access token lives (``expires_in``).
    :param rotation_leeway: seconds a superseded refresh token (and earlier access tokens) keep working.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        lock: threading.RLock,
        counters: dict[str, Any],
        client_id: str,
        client_secret: str,
        access_token_lifetime: float,
        rotation_leeway: float,
    ) -> None:
        self._clock = clock
        self._lock = lock
        self._counters = counters
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_token_lifetime = access_token_lifetime
        self.rotation_leeway = rotation_leeway
        self.deny_consent = False
        self.registered_redirect_uris: list[str] | None = None
        self.omit_refresh_token_pending = False
        self.latest_refresh_token: str | None = None
        self.refresh_log: list[dict[str, Any]] = []
        self._grants: dict[str, _Grant] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._access: dict[str, _AccessToken] = {}
        self._codes: dict[str, _Code] = {}

    # ----------------------------------------------------------------- grants made by the test
    def issue_grant(self, scopes: str = DEFAULT_SCOPES, label: str = "") -> str:
        """Simulate a completed consent: create a grant family and return its first refresh token."""
        scope_tuple = split_scopes(scopes)
        if "offline_access" not in scope_tuple:
            raise ValueError("a grant without offline_access has no refresh token; use issue_access_token()")
        with self._lock:
            return self._new_refresh_token(self._new_grant(scope_tuple, label))

    def issue_access_token(self, scopes: str = DEFAULT_SCOPES, label: str = "") -> str:
        """Create a grant family and return one access token of it (no refresh token)."""
        with self._lock:
            return self._new_access_token(self._new_grant(split_scopes(scopes), label))[0]

    def _new_grant(self, scopes: tuple[str, ...], label: str) -> _Grant:
        grant = _Grant(str(uuid.uuid4()), scopes, self._clock.now(), label)
        self._grants[grant.grant_id] = grant
        return grant

    def _new_refresh_token(self, grant: _Grant) -> str:
        now = self._clock.now()
        token = new_secret(48)
        if grant.latest_refresh is not None:
            self._refresh[grant.latest_refresh].superseded_at = now
        self._refresh[token] = _RefreshToken(grant.grant_id, now, now)
        grant.latest_refresh = token
        self.latest_refresh_token = token
        return token

    def _new_access_token(self, grant: _Grant) -> tuple[str, int]:
        now = self._clock.now()
        grace_end = now + self.rotation_leeway
        for old in grant.access_tokens[grant.graced_upto :]:
            record = self._access[old]
            record.expires_at = min(record.expires_at, grace_end)
        grant.graced_upto = len(grant.access_tokens)
        lifetime = int(self.access_token_lifetime)
        token = new_secret(48)
        self._access[token] = _AccessToken(grant.grant_id, now + lifetime)
        grant.access_tokens.append(token)
        return token, lifetime

    def _token_reply(self, grant: _Grant, *, rotate: bool) -> Reply:
        access, lifetime = self._new_access_token(grant)
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": lifetime,
            "scope": " ".join(grant.scopes),
            "token_type": "Bearer",
        }
        if rotate and "offline_access" in grant.scopes:
            body["refresh_token"] = self._new_refresh_token(grant)
        return Reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    def _invalid_grant(self, description: str = "Unknown or invalid refresh token.") -> Reply:
        self._count("invalid_grants")
        return oauth_error(403, "invalid_grant", description)

    # ----------------------------------------------------------------- POST /oauth/token
    def token_request(self, params: dict[str, str], *, form: bool) -> Reply:
        """Answer ``POST /oauth/token``.

        :param params: the body's parameters (from JSON or form encoding), values as strings.
        :param form: True when the body was form-encoded (counted in ``token_requests_form``).
        """
        with self._lock:
            self._count("token_requests")
            self._count("token_requests_form" if form else "token_requests_json")
            grant_type = params.get("grant_type")
            if not grant_type:
                return oauth_error(400, "invalid_request", "Missing grant_type.")
            if grant_type not in ("authorization_code", "refresh_token"):
                return oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
            client_ok = same(params.get("client_id"), self.client_id)
            if not (client_ok and same(params.get("client_secret"), self.client_secret)):
                self._count("client_auth_failures")
                return oauth_error(401, "access_denied", "Unauthorized")
            needed = "code" if grant_type == "authorization_code" else "refresh_token"
            if not params.get(needed):
                return oauth_error(400, "invalid_request", f"Missing {needed}.")
            if grant_type == "authorization_code":
                return self._exchange_code(params)
            return self._refresh_grant(params)

    def _exchange_code(self, params: dict[str, str]) -> Reply:
        record = self._codes.get(params.get("code") or "")
        if record is None or record.used or self._clock.now() >= record.expires_at:
            return self._invalid_grant("Invalid authorization code")
        record.used = True
        if params.get("redirect_uri") != record.redirect_uri:
            return self._invalid_grant("Invalid authorization code: redirect_uri does not match")
        self._count("code_exchanges")
        return self._token_reply(self._new_grant(record.scopes, "consent"), rotate=True)

    def _refresh_grant(self, params: dict[str, str]) -> Reply:
        if "scope" in params or "redirect_uri" in params:
            self._count("refresh_with_extra_params")
        now = self._clock.now()
        token = params.get("refresh_token") or ""
        record = self._refresh.get(token)
        if record is None:
            self._log(now, None, was_latest=False, within=False, reason="unknown")
            return self._invalid_grant()
        grant = self._grants[record.grant_id]
        was_latest = grant.latest_refresh == token
        superseded = record.superseded_at
        within = was_latest or (superseded is not None and now - superseded <= self.rotation_leeway)
        if not was_latest:
            self._count("stale_refresh_reuses")
        reason = "ok"
        if grant.revoked:
            reason = "revoked"
        elif now >= grant.created_at + ABSOLUTE_LIFETIME:
            reason = "absolute_expiry"
        elif not within:
            reason = "reuse_outside_leeway"
            grant.revoked = True
            self._count("grant_revocations")
        elif now >= record.active_from + INACTIVITY_LIFETIME:
            reason = "inactivity_expiry"
        self._log(now, grant, was_latest=was_latest, within=within, reason=reason)
        if reason != "ok":
            return self._invalid_grant()
        self._count("refreshes")
        if self.omit_refresh_token_pending:
            self.omit_refresh_token_pending = False
            record.active_from = now
            return self._token_reply(grant, rotate=False)
        return self._token_reply(grant, rotate=True)

    def _log(self, now: float, grant: _Grant | None, *, was_latest: bool, within: bool, reason: str) -> None:
        remaining: float | None = None
        if grant is not None and grant.access_tokens:
            remaining = max(0.0, self._access[grant.access_tokens[-1]].expires_at - now)
        entry = {
            "at": now,
            "grant": (grant.label or grant.grant_id) if grant else None,
            "was_latest": was_latest,
            "within_leeway": within,
            "ok": reason == "ok",
            "reason": reason,
            "latest_access_remaining": remaining,
        }
        self.refresh_log.append(entry)

    # ----------------------------------------------------------------- authorization codes
    def new_code(self, redirect_uri: str, scopes: tuple[str, ...]) -> str:
        """Record a single-use authorization code, valid 10 minutes, for this redirect URI and these scopes."""
        code = new_secret(32)
        with self._lock:
            self._codes[code] = _Code(redirect_uri, scopes, self._clock.now() + CODE_LIFETIME)
        return code

    # ----------------------------------------------------------------- bearer tokens
    def check_access(self, token: str | None) -> AccessCheck:
        """Judge a bearer token (see :class:`AccessCheck`)."""
        with self._lock:
            record = self._access.get(token or "")
            if record is None:
                return AccessCheck("unknown")
            grant = self._grants[record.grant_id]
            if grant.revoked or self._clock.now() >= record.expires_at:
                return AccessCheck("expired")
            return AccessCheck("ok", grant.scopes, app=self.client_id)


def same(given: object, expected: str) -> bool:
    """Compare a secret in constant time; False when ``given`` is not a string."""
    # surrogatepass: a JSON body may carry a lone surrogate (\ud800), to be refused rather than crash on
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())
