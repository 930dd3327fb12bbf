"""The token broker's wire protocol, both sides: signing a token request, and verifying one.

The request is JSON ``{"conn_id", "timestamp", "nonce", "gate", "signature"}`` (and optionally
``"rejected_token"``, the :func:`token_fingerprint` of an access token Confluence refused, which makes the broker
refresh unless it already holds a newer token; the token itself is never sent). Two hex HMAC-SHA256 of
:func:`canonical_message` authenticate it, checked in this order:

* ``gate``, keyed by the deployment's key (the Variable :data:`GATE_VARIABLE`): the caller is a process of this
  Airflow deployment. Checked before the broker looks up any connection, so that a request from outside costs
  no connection or secrets-backend lookup.
* ``signature``, keyed by the connection's own key (:func:`broker_key`): the caller may read THIS connection.
  The key is never the OAuth app's client secret alone, which every connection of one app shares: it is the
  random ``broker_secret`` extra that the provider writes into the connection on its first save, or, until then
  (and for a connection from an environment variable or a secrets backend, which the provider cannot write), an
  HMAC of the client secret over the connection id and the refresh token the connection holds.

:class:`RequestVerifier` also refuses a timestamp older than :data:`MAX_AGE` seconds or more than
:data:`MAX_FUTURE` seconds ahead, and a nonce it has seen (:class:`NonceCache` in this process; the API server
uses a ledger shared by all its workers and hosts). This module imports nothing from Airflow.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_confluence.auth.fingerprint import FULL, fingerprint

if TYPE_CHECKING:
    from airflow_provider_confluence.config.connection import ConnectionSettings

__all__ = [
    "HEX_SHA256_PATTERN", "MAX_AGE", "MAX_FUTURE", "NONCE_PATTERN", "PROTOCOL", "BrokerRefusal", "NonceCache",
    "BROKER_SECRET", "GATE", "GATE_VARIABLE", "NonceLedger", "RequestVerifier", "broker_key", "canonical_message",
    "new_broker_secret", "sign",
    "signed_request", "token_fingerprint",
]

PROTOCOL = "confluence-oauth-broker/1"
MAX_AGE = 120
MAX_FUTURE = 30
NONCE_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
HEX_SHA256_PATTERN = r"^[0-9a-f]{64}$"
_NONCE = re.compile(NONCE_PATTERN)
#: The extra that holds a connection's random broker key (Airflow masks extras whose name holds "secret").
BROKER_SECRET = "broker_secret"
#: The Variable that holds the deployment's broker key: every task may read it, nobody outside Airflow can. A
#: request must carry its ``gate`` signature before the broker looks any connection up. Airflow masks the name.
GATE_VARIABLE = "confluence_oauth_broker_secret"
GATE = PROTOCOL + "#gate"
_DERIVED_KEY = "confluence-oauth-broker-key/1"


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
    """Where seen nonces are recorded: :meth:`add` is False for a nonce recorded before (a replay)."""

    def add(self, key: str, keep_until: float, now: float) -> bool: ...


def canonical_message(
    conn_id: str, timestamp: int, nonce: str, rejected_token: str | None = None, *, purpose: str = PROTOCOL
) -> bytes:
    """The bytes that are signed: a compact JSON array, so that no field can bleed into another.

    :param purpose: :data:`PROTOCOL` for the connection's signature, :data:`GATE` for the deployment's.
    """
    fields = [purpose, conn_id, int(timestamp), nonce, rejected_token or ""]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


def sign(
    secret: str, conn_id: str, timestamp: int, nonce: str, rejected_token: str | None = None, *,
    purpose: str = PROTOCOL,
) -> str:
    """The hex HMAC-SHA256 of :func:`canonical_message`, keyed by the connection's :func:`broker_key` (or, for
    the :data:`GATE` purpose, by the deployment's key)."""
    message = canonical_message(conn_id, timestamp, nonce, rejected_token, purpose=purpose)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_request(
    secret: str, conn_id: str, *, timestamp: int, rejected_token: str | None = None, nonce: str | None = None,
    gate_key: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one token request, with a fresh random nonce unless one is given.

    :param gate_key: the deployment's key (the Variable :data:`GATE_VARIABLE`); None sends no ``gate``, which
        the broker refuses, creating the Variable first if there is none yet.
    """
    nonce = nonce or secrets.token_urlsafe(24)
    body: dict[str, Any] = {
        "conn_id": conn_id,
        "timestamp": int(timestamp),
        "nonce": nonce,
        "signature": sign(secret, conn_id, timestamp, nonce, rejected_token),
    }
    if rejected_token:
        body["rejected_token"] = rejected_token
    if gate_key:
        body["gate"] = sign(gate_key, conn_id, timestamp, nonce, rejected_token, purpose=GATE)
    return body


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
    """Checks a token request's timestamp, signature and nonce, in that order.

    :param clock: current epoch seconds.
    :param max_age: seconds a signed request stays acceptable.
    :param max_future: seconds a timestamp may be ahead of this clock (clock skew between hosts).
    :param nonces: where seen nonces are recorded (default: this process's :class:`NonceCache`).
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

    def check_fresh(self, timestamp: int) -> None:
        """Refuse a timestamp outside ``[now - max_age, now + max_future]``."""
        now = self._clock()
        if timestamp < now - self.max_age:
            raise BrokerRefusal(
                "stale_timestamp",
                f"The request was signed {now - timestamp:.0f} s ago; the broker accepts requests signed within "
                f"the last {self.max_age:.0f} s. Sign each request just before sending it, and check that the "
                "worker's clock is synchronised with the API server's (NTP).",
            )
        if timestamp > now + self.max_future:
            raise BrokerRefusal(
                "future_timestamp",
                f"The request's timestamp is {timestamp - now:.0f} s ahead of the API server's clock (at most "
                f"{self.max_future:.0f} s are tolerated). Synchronise the worker's clock (NTP).",
            )

    def check_gate(
        self, *, conn_id: str, timestamp: int, nonce: str, gate: str | None, gate_key: str,
        rejected_token: str | None = None,
    ) -> None:
        """Refuse a request that lacks the deployment's signature: it does not come from a process of this
        Airflow deployment. Checked before any connection is looked up."""
        expected = sign(gate_key, conn_id, timestamp, nonce, rejected_token, purpose=GATE)
        if gate is None or not hmac.compare_digest(expected, gate.lower()):
            raise BrokerRefusal(
                "invalid_gate",
                "The request does not carry this deployment's broker signature (keyed by the Variable "
                f"{GATE_VARIABLE}, which the API server creates and every task may read): it does not come from "
                "a process of this Airflow deployment. Nothing was looked up.",
            )

    def verify(
        self,
        *,
        conn_id: str,
        timestamp: int,
        nonce: str,
        signature: str,
        secret: str | None,
        rejected_token: str | None = None,
    ) -> None:
        """Raise :class:`BrokerRefusal` unless the request is fresh, signed with ``secret`` and not a replay.

        :param secret: the connection's :func:`broker_key`; None when there is no such usable connection, which
            is refused exactly like a bad signature, so that callers cannot learn which connections exist.
        """
        self.check_fresh(timestamp)
        if not _NONCE.match(nonce):
            raise BrokerRefusal("invalid_nonce", f"The nonce must match {NONCE_PATTERN}.")
        expected = sign(secret or "no such connection", conn_id, timestamp, nonce, rejected_token)
        if not hmac.compare_digest(expected, signature.lower()) or secret is None:
            raise BrokerRefusal(
                "invalid_signature",
                "The signature does not match: there is no confluence_oauth connection with this id here, or the "
                "request was not signed with this connection's key (its broker_secret extra, else one derived "
                "from its client secret and refresh token). Check that the worker and the API server see the "
                "same connection (not an env var or secrets backend only one of them has).",
            )
        if not self.nonces.add(f"{conn_id}\n{nonce}", timestamp + self.max_age + 1, self._clock()):
            raise BrokerRefusal(
                "replayed_nonce", "This nonce was used before: a replayed request is refused. Sign each request anew."
            )
