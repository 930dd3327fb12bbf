"""Scoped API tokens: HTTP Basic with the account's e-mail and the token, through the gateway.

https://support.atlassian.com/confluence/kb/scoped-api-tokens-in-confluence-cloud/ : a scoped token is sent as
``Authorization: Basic base64(email:token)`` to ``https://api.atlassian.com/ex/confluence/{cloudId}/...``; v2 calls
need its granular scopes (a missing one answers ``401 "Unauthorized; scope does not match"``, as for OAuth). The
cloud id comes from ``https://<site>/_edge/tenant_info`` (no credentials), which the emulator serves on its own
origin (see :attr:`FakeAtlassian.tenant_info_url`). Tokens created after 15 December 2024 expire within a year
(https://support.atlassian.com/atlassian-account/docs/manage-api-tokens-for-your-atlassian-account/): the emulator
refuses to register one that lives longer.

A wrong e-mail or token, and an expired token, answer ``401 {"code": 401, "message": "Unauthorized"}``: Atlassian
documents no distinct answer for an expired token, so a client cannot tell them apart (the counters can:
``api_token_failures`` and ``api_token_expired_uses``). API-token traffic is not charged to the points quota
(see ``quota.py``). ``accessible-resources`` does not take Basic credentials.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import threading
from dataclasses import dataclass, field
from typing import Any

from .auth import AccessCheck, same
from .canaries import new_secret
from .clock import Clock

MAX_LIFETIME = 365 * 86400.0
Expiry = datetime.date | datetime.datetime | float | int | None


@dataclass(frozen=True)
class ApiTokenCredential:
    """A scoped API token, as registered on the emulator.

    :param email: the account's e-mail (the connection's Login), matched case-insensitively.
    :param token: the API token (the connection's Password); never in ``repr``.
    :param scopes: its granular scopes.
    :param expires_at: when it stops working (emulator epoch seconds).
    :param cloud_ids: the sites it reaches.
    """

    email: str
    token: str = field(repr=False)
    scopes: tuple[str, ...]
    expires_at: float
    cloud_ids: tuple[str, ...]

    @property
    def expires_on(self) -> datetime.date:
        """The expiry date (UTC): the value of the provider's ``credential_expires`` extra."""
        return datetime.datetime.fromtimestamp(self.expires_at, tz=datetime.UTC).date()

    def basic(self) -> str:
        """The ``Authorization`` header value for this token."""
        return "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode("ascii")


def expiry_epoch(expires: Expiry, now: float) -> float:
    """Epoch seconds of an expiry: a date means 00:00 UTC that day; a naive datetime is UTC; a number is epoch
    seconds; None is one year from ``now``."""
    if expires is None:
        return now + MAX_LIFETIME
    if isinstance(expires, datetime.datetime):
        moment = expires if expires.tzinfo else expires.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if isinstance(expires, datetime.date):
        return datetime.datetime(expires.year, expires.month, expires.day, tzinfo=datetime.UTC).timestamp()
    return float(expires)


class ApiTokenModel:
    """The scoped API tokens of one emulator.

    :param clock: the emulator's clock; :param lock: its one lock; :param counters: its counters.
    """

    def __init__(self, *, clock: Clock, lock: threading.RLock, counters: dict[str, Any]) -> None:
        self._clock = clock
        self._lock = lock
        self._counters = counters
        self._tokens: list[ApiTokenCredential] = []

    def register(
        self,
        email: str,
        scopes: tuple[str, ...],
        cloud_ids: tuple[str, ...],
        *,
        token: str | None = None,
        expires: Expiry = None,
    ) -> ApiTokenCredential:
        """Create a token; ValueError when the e-mail is empty or the expiry is more than a year away."""
        if "@" not in email:
            raise ValueError("an API token belongs to an account: give its e-mail address")
        now = self._clock.now()
        expires_at = expiry_epoch(expires, now)
        if expires_at > now + MAX_LIFETIME + 86400:  # a date one year ahead is fine, whatever the hour
            raise ValueError("Atlassian API tokens expire within one year of their creation")
        credential = ApiTokenCredential(email, token or new_secret(32), tuple(scopes), expires_at, tuple(cloud_ids))
        with self._lock:
            self._tokens.append(credential)
        return credential

    def revoke(self, token: str) -> None:
        """Delete a token (it answers 401 from now on)."""
        with self._lock:
            self._tokens = [known for known in self._tokens if known.token != token]

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    def check_basic(self, header: str) -> AccessCheck:
        """Judge an ``Authorization: Basic ...`` value: ``ok``, ``expired`` or ``unknown`` (wrong e-mail or token)."""
        try:
            decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        email, _, token = decoded.partition(":")
        with self._lock:
            found = next(
                (known for known in self._tokens if known.email.lower() == email.lower() and same(token, known.token)),
                None,
            )
            if found is None:
                self._count("api_token_failures")
                return AccessCheck("unknown", kind="api_token")
            if self._clock.now() >= found.expires_at:
                self._count("api_token_expired_uses")
                return AccessCheck("expired", kind="api_token")
            return AccessCheck("ok", found.scopes, kind="api_token", cloud_ids=found.cloud_ids)
