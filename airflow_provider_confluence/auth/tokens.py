"""Token state and the rotation protocol (docs/token-stores.md).

:class:`TokenManager` hands out access tokens and refreshes them through a :class:`TokenStore`, which owns
where the state lives and how it is locked. It imports nothing from Airflow. The protocol, in short:

1. A cached access token valid for longer than the leeway is returned at once: no lock, no I/O.
2. Otherwise the store's lock is taken and the state re-read under it; a sibling's fresh token is adopted.
3. A refresh is made, and the new state is saved BEFORE the token is returned; a failed save raises.
4. ``invalid_grant`` re-reads the store: a changed refresh token means a sibling rotated it (adopt it);
   an unchanged one means the grant is dead (:class:`ConfluenceReauthorizationRequired`, nothing deleted).
5. A refresh whose answer was lost (timeout, 5xx) is retried with the same token, well within Atlassian's
   10-minute reuse leeway, and never after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from airflow_provider_confluence.auth.oauth import TokenResponse
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceInvalidGrant,
    ConfluenceReauthorizationRequired,
)
from airflow_provider_confluence.retry import RetryPolicy

log = logging.getLogger(__name__)

MAX_LEEWAY = 60.0
ROTATION_LEEWAY = 600.0
GRANT_LIFETIME = 365 * 86400.0
GRANT_WARNING = 30 * 86400.0
STATE_KEYS = ("refresh_token", "access_token", "expires_at", "scope", "cloud_id", "grant_issued_at", "rotated_at")


@dataclass(frozen=True)
class TokenState:
    """What a store keeps for one connection; times are absolute epoch seconds."""

    refresh_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scope: str | None = None
    cloud_id: str | None = None
    grant_issued_at: float | None = None
    rotated_at: float | None = None

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> TokenState:
        """Read the state keys from a stored mapping (a connection extra, a Variable's JSON); ignore the rest.

        Where each place keeps the state is :mod:`airflow_provider_confluence.auth.token_codec`.
        """

        def number(key: str) -> float | None:
            try:
                return float(data[key]) if data.get(key) not in (None, "") else None
            except (TypeError, ValueError):
                return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value not in (None, "") else None

        return cls(
            refresh_token=text("refresh_token"),
            access_token=text("access_token"),
            expires_at=number("expires_at"),
            scope=text("scope"),
            cloud_id=text("cloud_id"),
            grant_issued_at=number("grant_issued_at"),
            rotated_at=number("rotated_at"),
        )

    def to_stored(self) -> dict[str, Any]:
        """The state as a JSON-able dict with the documented key names (None values left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    #: Older names of :meth:`from_stored` and :meth:`to_stored`.
    from_mapping = from_stored
    to_dict = to_stored

    def leeway(self) -> float:
        """Seconds before expiry at which the access token is refreshed: 60, or a quarter of its lifetime."""
        if self.expires_at is None or self.rotated_at is None:
            return MAX_LEEWAY
        return min(MAX_LEEWAY, max(0.0, self.expires_at - self.rotated_at) / 4)

    def access_token_valid(self, now: float) -> bool:
        """True when the access token may be used without a refresh."""
        return bool(self.access_token) and self.expires_at is not None and now < self.expires_at - self.leeway()


class StoreTransaction(Protocol):
    """The state read under a store's lock, and the way to save a new one before the lock is released."""

    @property
    def state(self) -> TokenState:
        """The state read under the lock (or the last one saved)."""

    def save(self, state: TokenState) -> None:
        """Persist ``state`` durably; raise :class:`ConfluenceTokenStoreError` when that fails."""


class TokenStore(Protocol):
    """Where a connection's token state lives (see :mod:`airflow_provider_confluence.auth.stores.choice`)."""

    name: str

    def load(self) -> TokenState:
        """Read the current state, bypassing every cache."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """Take the store's exclusive lock and read the state under it."""


class _MemoryTransaction:
    def __init__(self, store: MemoryTokenStore) -> None:
        self._store = store
        self.state = store.state

    def save(self, state: TokenState) -> None:
        self._store.state = state
        self.state = state


class MemoryTokenStore:
    """Token state in a dict-like attribute with a threading lock; for tests and single-process scripts."""

    name = "memory"

    def __init__(self, state: TokenState | None = None) -> None:
        self.state = state or TokenState()
        self._lock = threading.Lock()

    def load(self) -> TokenState:
        return self.state

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        with self._lock:
            yield _MemoryTransaction(self)


RefreshCall = Callable[[str], TokenResponse]


def wall_clock() -> float:
    """The default clock of every :class:`TokenManager`: ``time.time()`` (tests may replace this function)."""
    return time.time()


class TokenManager:
    """Hands out valid access tokens for one connection and keeps its rotated refresh token safe.

    :param store: where the state lives.
    :param refresh: redeems a refresh token (``oauth.refresh`` with the connection's settings bound).
    :param conn_id: the connection's id, named in re-authorization errors.
    :param on_secret: called once per process with every token this manager returns or stores
        (``mask_secret`` in Airflow), so that logs never show them.
    :param clock: current epoch seconds (default :func:`wall_clock`, looked up at call time).
    :param sleep: used between retries of a refresh whose answer was lost.
    :param retry: the backoff policy for those retries; its total wait is kept well under the reuse leeway.
    """

    def __init__(
        self,
        *,
        store: TokenStore,
        refresh: RefreshCall,
        conn_id: str | None = None,
        on_secret: Callable[[str], None] = lambda secret: None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self._refresh = refresh
        self.conn_id = conn_id
        self._on_secret = on_secret
        self._clock = clock or (lambda: wall_clock())
        self._sleep = sleep
        self._retry = retry or RetryPolicy(max_attempts=4, max_total_wait=ROTATION_LEEWAY / 4)
        self._cached = TokenState()
        self._seen_secrets: set[str] = set()
        self._warned_grant = False

    # -- the AccessTokenSource protocol of the client ------------------------------------------------

    def get_access_token(self) -> str:
        """A valid access token, refreshed and saved first when it is about to expire."""
        return self.current_access_token() or self._refresh_under_lock(rejected=None)

    def current_access_token(self) -> str | None:
        """The held or stored access token while it is valid (a lock-free read of the store), else None; never
        refreshes and never takes the store's lock."""
        now = self._clock()
        if not self._cached.access_token_valid(now):
            self._cached = self.store.load()
        return self._hand_out(self._cached) if self._cached.access_token_valid(now) else None

    def refresh_rejected(self, rejected_token: str) -> str:
        """The API refused ``rejected_token`` (401): adopt a newer token, or refresh."""
        return self._refresh_under_lock(rejected=rejected_token)

    def access_token_expired(self) -> bool:
        """True when the token last handed out may be dead, so that a 403/404 is worth one refresh.

        That is when the stored expiry has passed (the gateway answers 404 on v2 for an expired token;
        https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/), or when another process has stored a newer token: Atlassian revokes the old
        access token 10 minutes after a refresh, whatever its own expiry said.
        """
        state = self.store.load()
        if state.access_token and self._cached.access_token and state.access_token != self._cached.access_token:
            return True
        return state.expires_at is None or self._clock() >= state.expires_at

    # -- cloud id -------------------------------------------------------------------------------------

    def get_cloud_id(self, discover: Callable[[str], str]) -> str:
        """The cached cloud id, or ``discover(access_token)`` once, saved into the state."""
        if self._cached.cloud_id:
            return self._cached.cloud_id
        token = self.get_access_token()
        if self._cached.cloud_id:
            return self._cached.cloud_id
        cloud_id = discover(token)
        with self.store.transaction() as tx:
            new_state = replace(tx.state, cloud_id=cloud_id)
            tx.save(new_state)
        self._cached = new_state
        return cloud_id

    # -- the protocol ---------------------------------------------------------------------------------

    def _refresh_under_lock(self, rejected: str | None) -> str:
        with self.store.transaction() as tx:
            state = tx.state
            now = self._clock()
            if state.access_token_valid(now) and state.access_token != rejected:
                log.debug("Adopting the access token another process refreshed for %s.", self._name)
                self._cached = state
                return self._hand_out(state)
            new_state = self._redeem(state)
            tx.save(new_state)
            self._cached = new_state
        log.info(
            "Refreshed the Confluence access token of %s; the rotated refresh token is saved in the %s store.",
            self._name,
            self.store.name,
        )
        self._warn_if_grant_ends_soon(new_state)
        return self._hand_out(new_state)

    def _redeem(self, state: TokenState) -> TokenState:
        if not state.refresh_token:
            raise ConfluenceReauthorizationRequired(
                f"{self._name} has no refresh token. {self._how_to_reauthorize}", conn_id=self.conn_id
            )
        try:
            response, sent_at = self._refresh_with_retries(state.refresh_token)
        except ConfluenceInvalidGrant as exc:
            latest = self.store.load()
            if latest.refresh_token and latest.refresh_token != state.refresh_token:
                log.info("A sibling rotated the refresh token of %s meanwhile; using its token.", self._name)
                if latest.access_token_valid(self._clock()):
                    return latest
                return self._redeem(latest)
            raise ConfluenceReauthorizationRequired(
                f"Atlassian no longer accepts the refresh token of {self._name} (invalid_grant): the grant was "
                "revoked, expired (90 days unused or 365 days old), or a stale copy of the token was used. "
                f"The stored token was left as it is. {self._how_to_reauthorize}",
                conn_id=self.conn_id,
                status_code=exc.status_code,
                trace_id=exc.trace_id,
            ) from None
        self._see(response.access_token)
        if response.refresh_token:
            self._see(response.refresh_token)
        now = self._clock()
        return TokenState(
            refresh_token=response.refresh_token or state.refresh_token,
            access_token=response.access_token,
            # expires_in counts from when the server issued the token, which is after the request was sent: counted
            # from the answer, the expiry would be late by the round trip, and a token already dead would be handed
            # out as valid (and a 404 on it would not be seen as an expiry).
            expires_at=sent_at + response.expires_in,
            scope=response.scope or state.scope,
            cloud_id=state.cloud_id,
            grant_issued_at=state.grant_issued_at or now,
            rotated_at=now,
        )

    def _refresh_with_retries(self, refresh_token: str) -> tuple[TokenResponse, float]:
        """The token endpoint's answer, and the time the request that got it was sent."""
        waited = 0.0
        attempt = 1
        while True:
            sent_at = self._clock()
            try:
                return self._refresh(refresh_token), sent_at
            except ConfluenceAuthError as exc:
                if not exc.transient or isinstance(exc, ConfluenceInvalidGrant):
                    raise
                delay = self._retry.delay_after(attempt, None)
                if attempt >= self._retry.max_attempts or waited + delay > self._retry.max_total_wait:
                    raise
                log.warning(
                    "Refreshing the token of %s failed (%s); trying again in %.1f s with the same token.",
                    self._name,
                    exc.message,
                    delay,
                )
                self._sleep(delay)
                waited += delay
                attempt += 1

    # -- helpers --------------------------------------------------------------------------------------

    def _hand_out(self, state: TokenState) -> str:
        assert state.access_token is not None
        self._see(state.access_token)
        if state.refresh_token:
            self._see(state.refresh_token)
        return state.access_token

    def _see(self, secret: str) -> None:
        if secret not in self._seen_secrets:
            self._on_secret(secret)
            self._seen_secrets.add(secret)

    def _warn_if_grant_ends_soon(self, state: TokenState) -> None:
        if self._warned_grant or state.grant_issued_at is None:
            return
        left = state.grant_issued_at + GRANT_LIFETIME - self._clock()
        if left < GRANT_WARNING:
            self._warned_grant = True
            ends = time.strftime("%Y-%m-%d", time.gmtime(state.grant_issued_at + GRANT_LIFETIME))
            log.warning(
                "The OAuth grant of %s ends on %s (%.0f days left; Atlassian's 365-day limit). %s",
                self._name,
                ends,
                max(0.0, left / 86400),
                self._how_to_reauthorize,
            )

    @property
    def _name(self) -> str:
        return f"connection {self.conn_id!r}" if self.conn_id else "this connection"

    @property
    def _how_to_reauthorize(self) -> str:
        return (
            "A person must authorize the app again (the consent URL with prompt=consent) and put the new "
            f"refresh token into the refresh_token extra of {self._name}."
        )
