"""Access tokens of an Atlassian service account (``auth_type`` ``client_credentials``): a per-process cache.

A service account's OAuth 2.0 credential gets an access token valid about 60 minutes and **no refresh token**
(https://support.atlassian.com/user-management/docs/create-oauth-2-0-credential-for-service-accounts/). So
nothing rotates, and nothing is ever written to a store, a connection or a Variable: each process keeps its token
in memory (:class:`ClientCredentialsCache`, one per process, shared by every hook of the same credential) and
fetches a new one with the client ID and secret when the old one is about to expire, with the same leeway as
the 3LO tokens (:meth:`~airflow_provider_confluence.auth.tokens.TokenState.leeway`: 60 seconds, or a quarter of
the lifetime).

Several processes (task workers, the triggerer, a scheduler host) fetching a token at the same time is harmless:
each gets its own valid token, and none invalidates another's, because no refresh token is redeemed. Within one
process, a lock per credential makes concurrent threads wait for one fetch instead of each sending their own.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_provider_confluence.auth.oauth import TokenResponse
from airflow_provider_confluence.auth.tokens import TokenState, wall_clock
from airflow_provider_confluence.exceptions import ConfluenceAuthError
from airflow_provider_confluence.retry import RetryPolicy

__all__ = ["ClientCredentialsCache", "ClientCredentialsTokens", "PROCESS_CACHE", "credential_key"]

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]


def credential_key(token_url: str, client_id: str, client_secret: str) -> CacheKey:
    """The cache key of a credential: a changed secret (a rotated credential) never reuses the old token."""
    return token_url, client_id, hashlib.sha256(client_secret.encode()).hexdigest()


@dataclass
class _Entry:
    state: TokenState = field(default_factory=TokenState)
    cloud_ids: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ClientCredentialsCache:
    """Access tokens by credential, in this process's memory only (:data:`PROCESS_CACHE` is the one in use)."""

    def __init__(self) -> None:
        self._entries: dict[CacheKey, _Entry] = {}
        self._lock = threading.Lock()

    def entry(self, key: CacheKey) -> _Entry:
        """The entry of a credential, created empty on first use."""
        with self._lock:
            return self._entries.setdefault(key, _Entry())

    def clear(self) -> None:
        """Forget every token (tests; a process that wants to drop its credentials)."""
        with self._lock:
            self._entries.clear()


#: The cache of this process.
PROCESS_CACHE = ClientCredentialsCache()


class ClientCredentialsTokens:
    """Bearer tokens of one service-account credential; the client's ``AccessTokenSource``.

    :param fetch: asks the token endpoint for a new token (``oauth.client_credentials`` with the credential bound).
    :param key: the credential's :func:`credential_key`.
    :param conn_id: the connection's id, for messages.
    :param cache: where tokens are kept (default :data:`PROCESS_CACHE`).
    :param on_secret: called once with every token handed out (``mask_secret`` in Airflow).
    :param clock: current epoch seconds (default :func:`~airflow_provider_confluence.auth.tokens.wall_clock`).
    :param sleep: used between tries of a fetch that failed in a way that may pass (timeout, 5xx, 429).
    :param retry: the backoff of those tries.
    """

    def __init__(
        self,
        *,
        fetch: Callable[[], TokenResponse],
        key: CacheKey,
        conn_id: str | None = None,
        cache: ClientCredentialsCache | None = None,
        on_secret: Callable[[str], None] = lambda secret: None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._fetch = fetch
        self._entry = (cache or PROCESS_CACHE).entry(key)
        self.conn_id = conn_id
        self._on_secret = on_secret
        self._clock = clock or (lambda: wall_clock())
        self._sleep = sleep
        self._retry = retry or RetryPolicy(max_attempts=3, max_total_wait=30.0)
        self._seen: set[str] = set()

    # -- the AccessTokenSource protocol of the client ------------------------------------------------

    def get_access_token(self) -> str:
        """The cached token while it is valid for longer than the leeway; otherwise a new one, fetched once."""
        state = self._entry.state
        if state.access_token_valid(self._clock()):
            return self._hand_out(state)
        with self._entry.lock:
            state = self._entry.state
            if state.access_token_valid(self._clock()):  # another thread fetched it meanwhile
                return self._hand_out(state)
            return self._hand_out(self._fetch_new())

    def refresh_rejected(self, rejected_token: str) -> str:
        """Confluence refused ``rejected_token``: a token another thread fetched since, or a new one."""
        with self._entry.lock:
            state = self._entry.state
            if state.access_token != rejected_token and state.access_token_valid(self._clock()):
                return self._hand_out(state)
            return self._hand_out(self._fetch_new())

    def access_token_expired(self) -> bool:
        """True when the cached token's expiry has passed (or there is none)."""
        expires_at = self._entry.state.expires_at
        return expires_at is None or self._clock() >= expires_at

    def get_cloud_id(self, site_host: str, discover: Callable[[str], str]) -> str:
        """The site's cloud id, found once per process with ``discover(access_token)`` (accessible-resources)."""
        found = self._entry.cloud_ids.get(site_host)
        if found:
            return found
        cloud_id = discover(self.get_access_token())
        self._entry.cloud_ids[site_host] = cloud_id
        return cloud_id

    def fetch_new(self) -> str:
        """A new token now, whatever the cache holds (the live check of ``test_connection``)."""
        with self._entry.lock:
            return self._hand_out(self._fetch_new())

    # -- helpers --------------------------------------------------------------------------------------

    def _fetch_new(self) -> TokenState:
        attempt, waited = 1, 0.0
        while True:
            sent_at = self._clock()
            try:
                response = self._fetch()
                break
            except ConfluenceAuthError as exc:
                delay = self._retry.delay_after(attempt, None)
                if (
                    not exc.transient
                    or attempt >= self._retry.max_attempts
                    or waited + delay > self._retry.max_total_wait
                ):
                    raise
                log.warning(
                    "Getting an access token for %s failed (%s); trying again in %.1f s.",
                    self._name,
                    exc.message,
                    delay,
                )
                self._sleep(delay)
                waited += delay
                attempt += 1
        self._see(response.access_token)
        # counted from when the request was sent, as in tokens.py: never later than the server's own expiry
        state = TokenState(
            access_token=response.access_token,
            expires_at=sent_at + response.expires_in,
            scope=response.scope,
            rotated_at=sent_at,
        )
        self._entry.state = state
        log.info(
            "Got a service-account access token for %s, valid %.0f minutes; kept in this process's memory "
            "only (no refresh token: nothing rotates, nothing is stored).",
            self._name,
            response.expires_in / 60,
        )
        return state

    def _hand_out(self, state: TokenState) -> str:
        assert state.access_token is not None
        self._see(state.access_token)
        return state.access_token

    def _see(self, secret: str) -> None:
        if secret not in self._seen:
            self._on_secret(secret)
            self._seen.add(secret)

    @property
    def _name(self) -> str:
        return f"connection {self.conn_id!r}" if self.conn_id else "this service account"
