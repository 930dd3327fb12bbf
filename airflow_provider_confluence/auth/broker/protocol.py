"""The token broker's wire protocol, both sides: signing a token request, and verifying one.

A request is JSON ``{"conn_id", "request", "gate"}``. ``request`` and ``gate`` are JSON Web Tokens
(:mod:`airflow_provider_confluence.auth.signing`: HS256, with ``aud``, ``iat``, ``exp``, ``jti`` and ``sub``, the
connection id), checked in this order:

* ``gate`` (audience :data:`~airflow_provider_confluence.auth.signing.BROKER_GATE`), keyed by the deployment's
  key (the Variable :data:`GATE_VARIABLE`): the caller is a process of this Airflow deployment. It also holds the
  SHA-256 of ``request`` (claim ``request_sha256``), so it vouches for that request only. Checked before the
  broker looks up any connection, so that a request from outside costs no connection or secrets-backend lookup.
* ``request`` (audience :data:`~airflow_provider_confluence.auth.signing.BROKER_REQUEST`), keyed by the
  connection's own key (:func:`broker_key`): the caller may read THIS connection. It may hold
  ``rejected_token``, the :func:`token_fingerprint` of an access token Confluence refused, which makes the broker
  refresh unless it already holds a newer token (the token itself is never sent). The key is never the OAuth
  app's client secret alone, which every connection of one app shares: it is the random ``broker_secret`` extra
  that the provider writes into the connection on its first save, or, until then (and for a connection from an
  environment variable or a secrets backend, which the provider cannot write), an HMAC of the client secret over
  the connection id and the refresh token the connection holds.

:class:`RequestVerifier` also refuses a token issued more than :data:`MAX_AGE` seconds ago or more than
:data:`MAX_FUTURE` seconds ahead, and a ``jti`` it has seen (:class:`NonceCache` in this process; the API server
uses a ledger shared by all its workers and hosts). Workers and the API server run the same provider version:
this is protocol 2; protocol 1 (hex HMACs of a JSON array) is gone. This module imports nothing from Airflow.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_confluence.auth import signing
from airflow_provider_confluence.auth.fingerprint import FULL, fingerprint

if TYPE_CHECKING:
    from airflow_provider_confluence.config.connection import ConnectionSettings

__all__ = [
    "BROKER_SECRET",
    "GATE_VARIABLE",
    "HEX_SHA256_PATTERN",
    "JWT_PATTERN",
    "MAX_AGE",
    "MAX_FUTURE",
    "NONCE_PATTERN",
    "PROTOCOL",
    "BrokerRefusal",
    "NonceCache",
    "NonceLedger",
    "RequestVerifier",
    "VerifiedRequest",
    "broker_key",
    "new_broker_secret",
    "signed_request",
    "token_fingerprint",
]

PROTOCOL = "confluence-oauth-broker/2"
MAX_AGE = 120
MAX_FUTURE = 30
NONCE_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
HEX_SHA256_PATTERN = r"^[0-9a-f]{64}$"
#: A compact JWS: three base64url segments.
JWT_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
_NONCE = re.compile(NONCE_PATTERN)
_HEX_SHA256 = re.compile(HEX_SHA256_PATTERN)
#: The extra that holds a connection's random broker key (Airflow masks extras whose name holds "secret").
BROKER_SECRET = "broker_secret"
#: The Variable that holds the deployment's broker key: every task may read it, nobody outside Airflow can. A
#: request must carry its ``gate`` token before the broker looks any connection up. Airflow masks the name.
GATE_VARIABLE = "confluence_oauth_broker_secret"
_DERIVED_KEY = "confluence-oauth-broker-key/1"
_NO_KEY = "no such connection"


def new_broker_secret() -> str:
    """A fresh random broker key for a connection's ``broker_secret`` extra."""
    return secrets.token_urlsafe(32)


def broker_key(settings: ConnectionSettings) -> str | None:
    """The key that signs the token requests of this connection, None when it has none yet.

    Its ``broker_secret`` extra when there is one; else an HMAC of its client secret over its id and the refresh
    token it holds, which only a reader of this connection knows (another connection of the same OAuth app has
    the same client secret, but not this refresh token). None when there is neither.
    """
    if settings.broker_secret:
        return settings.broker_secret
    if not settings.refresh_token:
        return None
    message = json.dumps([_DERIVED_KEY, settings.conn_id, settings.refresh_token], separators=(",", ":")).encode()
    return hmac.new(settings.client_secret.encode(), message, hashlib.sha256).hexdigest()


#: The name of a rejected access token on the wire: its whole SHA-256 (``fingerprint(token, length=FULL)``).
token_fingerprint = partial(fingerprint, length=FULL)


class NonceLedger(Protocol):
    """Where seen ``jti`` are recorded: :meth:`add` is False for one recorded before (a replay)."""

    def add(self, key: str, keep_until: float, now: float) -> bool: ...


def signed_request(
    secret: str,
    conn_id: str,
    *,
    timestamp: int,
    rejected_token: str | None = None,
    nonce: str | None = None,
    gate_key: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one token request, with a fresh random ``jti`` unless ``nonce`` is given.

    :param secret: the connection's :func:`broker_key`.
    :param timestamp: the ``iat`` (epoch seconds); the tokens expire :data:`MAX_AGE` seconds later.
    :param gate_key: the deployment's key (the Variable :data:`GATE_VARIABLE`); None sends no ``gate``, which
        the broker refuses, creating the Variable first if there is none yet.
    """
    nonce = nonce or secrets.token_urlsafe(24)
    claims: dict[str, Any] = {"sub": conn_id}
    if rejected_token:
        claims["rejected_token"] = rejected_token
    request = signing.issue(
        signing.signing_key(secret), signing.BROKER_REQUEST, claims, now=timestamp, lifetime=MAX_AGE, jti=nonce
    )
    body: dict[str, Any] = {"conn_id": conn_id, "request": request}
    if gate_key:
        body["gate"] = signing.issue(
            signing.signing_key(gate_key),
            signing.BROKER_GATE,
            {"sub": conn_id, "request_sha256": token_fingerprint(request)},
            now=timestamp,
            lifetime=MAX_AGE,
            jti=nonce,
        )
    return body


@dataclass(frozen=True)
class VerifiedRequest:
    """A token request whose signature, age and ``jti`` were checked.

    :param conn_id: the connection it asks for.
    :param nonce: its ``jti`` (claimed).
    :param issued_at: its ``iat``.
    :param rejected_token: the fingerprint of an access token Confluence refused, if any.
    """

    conn_id: str
    nonce: str
    issued_at: float
    rejected_token: str | None = None


class BrokerRefusal(Exception):
    """Why the broker refuses a request; answered as ``401 {"error": error, "detail": detail}``."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


class NonceCache:
    """Nonces seen recently, each kept until its request's timestamp can no longer pass the age check.

    Thread-safe. Only requests with a valid signature reach it, so its size is bounded by real traffic.
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def add(self, key: str, keep_until: float, now: float) -> bool:
        """Record ``key``; False when it was already there (a replay)."""
        with self._lock:
            if now >= self._next_prune:
                self._seen = {k: until for k, until in self._seen.items() if until > now}
                self._next_prune = now + 10.0
            if key in self._seen:
                return False
            self._seen[key] = keep_until
            return True

    def __len__(self) -> int:
        return len(self._seen)


class RequestVerifier:
    """Checks a token request's gate, signature, age and ``jti``.

    :param clock: current epoch seconds.
    :param max_age: seconds a signed request stays acceptable.
    :param max_future: seconds an ``iat`` may be ahead of this clock (clock skew between hosts).
    :param nonces: where seen ``jti`` are recorded (default: this process's :class:`NonceCache`).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = MAX_AGE,
        max_future: float = MAX_FUTURE,
        nonces: NonceLedger | None = None,
    ) -> None:
        self._clock = clock
        self.max_age = max_age
        self.max_future = max_future
        self.nonces: NonceLedger = nonces if nonces is not None else NonceCache()

    def _time_refusal(self, refused: signing.SignatureRefused, now: float) -> BrokerRefusal:
        issued_at = refused.issued_at or 0.0
        if refused.reason == "future":
            return BrokerRefusal(
                "future_timestamp",
                f"The request's timestamp is {issued_at - now:.0f} s ahead of the API server's clock (at most "
                f"{self.max_future:.0f} s are tolerated). Synchronise the worker's clock (NTP).",
            )
        return BrokerRefusal(
            "stale_timestamp",
            f"The request was signed {now - issued_at:.0f} s ago; the broker accepts requests signed within "
            f"the last {self.max_age:.0f} s. Sign each request just before sending it, and check that the "
            "worker's clock is synchronised with the API server's (NTP).",
        )

    def _claims(self, token: Any, key: str, audience: str, require: tuple[str, ...]) -> dict[str, Any]:
        now = self._clock()
        try:
            return signing.verify(
                token,
                signing.signing_key(key),
                audience,
                now=now,
                max_age=self.max_age,
                max_future=self.max_future,
                require=require,
            )
        except signing.SignatureRefused as refused:
            if refused.reason in ("expired", "future"):
                raise self._time_refusal(refused, now) from None
            raise

    def check_gate(self, body: Mapping[str, Any], *, gate_key: str) -> None:
        """Refuse a request that lacks the deployment's ``gate`` token for exactly its ``request``: it does not
        come from a process of this Airflow deployment. Checked before any connection is looked up."""
        request = body.get("request")
        try:
            claims = self._claims(body.get("gate"), gate_key, signing.BROKER_GATE, ("sub", "request_sha256"))
            bound = (
                isinstance(request, str)
                and claims["sub"] == body.get("conn_id")
                and hmac.compare_digest(str(claims["request_sha256"]), token_fingerprint(request) or "")
            )
        except signing.SignatureRefused:
            bound = False
        if not bound:
            raise BrokerRefusal(
                "invalid_gate",
                "The request does not carry this deployment's broker signature (keyed by the Variable "
                f"{GATE_VARIABLE}, which the API server creates and every task may read): it does not come from "
                "a process of this Airflow deployment. Nothing was looked up.",
            )

    def verify(self, body: Mapping[str, Any], *, secret: str | None) -> VerifiedRequest:
        """The request, once it is signed with ``secret``, fresh, for its ``conn_id`` and not a replay.

        :param secret: the connection's :func:`broker_key`; None when there is no such usable connection, which
            is refused exactly like a bad signature, so that callers cannot learn which connections exist.
        :raises BrokerRefusal: why not; a refused request claims no ``jti``.
        """
        conn_id = body.get("conn_id")
        try:
            claims = self._claims(body.get("request"), secret or _NO_KEY, signing.BROKER_REQUEST, ("sub",))
            rejected = claims.get("rejected_token")
            valid = (
                secret is not None
                and claims["sub"] == conn_id
                and (rejected is None or (isinstance(rejected, str) and bool(_HEX_SHA256.match(rejected))))
            )
        except signing.SignatureRefused:
            valid = False
        if not valid:
            raise BrokerRefusal(
                "invalid_signature",
                "The signature does not match: there is no confluence_oauth connection with this id here, or the "
                "request was not signed with this connection's key (its broker_secret extra, else one derived "
                "from its client secret and refresh token). Check that the worker and the API server see the "
                "same connection (not an env var or secrets backend only one of them has).",
            )
        nonce, issued_at = str(claims["jti"]), float(claims["iat"])
        if not _NONCE.match(nonce):
            raise BrokerRefusal("invalid_nonce", f"The jti must match {NONCE_PATTERN}.")
        keep_until = issued_at + self.max_age + signing.LEEWAY + 1
        if not self.nonces.add(f"{conn_id}\n{nonce}", keep_until, self._clock()):
            raise BrokerRefusal(
                "replayed_nonce", "This nonce was used before: a replayed request is refused. Sign each request anew."
            )
        return VerifiedRequest(str(conn_id), nonce, issued_at, rejected)
