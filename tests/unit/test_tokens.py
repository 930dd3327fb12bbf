"""The rotation protocol of TokenManager, without Airflow and without sockets."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import pytest

from airflow_provider_confluence.auth.oauth import TokenResponse
from airflow_provider_confluence.auth.tokens import MemoryTokenStore, TokenManager, TokenState
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceInvalidGrant,
    ConfluenceReauthorizationRequired,
    ConfluenceTokenStoreError,
)
from helpers.clock import Clock


class FakeTokenEndpoint:
    """Rotates like Atlassian: each call returns rt-(n+1) for rt-n; records what was presented."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.presented: list[str] = []
        self.issued = 0
        self.lock = threading.Lock()

    def __call__(self, refresh_token: str) -> TokenResponse:
        with self.lock:
            self.presented.append(refresh_token)
            self.issued += 1
            return TokenResponse(
                access_token=f"at-{self.issued}", expires_in=self.lifetime, refresh_token=f"rt-{self.issued}"
            )


def manager(store: MemoryTokenStore, endpoint, clock: Clock, **kwargs) -> TokenManager:
    return TokenManager(
        store=store,
        refresh=endpoint,
        conn_id="confluence_default",
        clock=clock,
        sleep=kwargs.pop("sleep", lambda s: None),
        **kwargs,
    )


def test_valid_token_is_returned_without_refresh():
    clock = Clock()
    store = MemoryTokenStore(
        TokenState(refresh_token="rt-0", access_token="at-0", expires_at=clock.now + 3000, rotated_at=clock.now - 600)
    )
    endpoint = FakeTokenEndpoint()
    assert manager(store, endpoint, clock).get_access_token() == "at-0"
    assert endpoint.presented == []


def test_expired_token_is_refreshed_and_the_rotated_token_saved_before_use():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    endpoint = FakeTokenEndpoint()
    seen: list[str] = []
    tm = TokenManager(store=store, refresh=endpoint, clock=clock, on_secret=seen.append)
    assert tm.get_access_token() == "at-1"
    assert endpoint.presented == ["rt-0"]
    assert store.state.refresh_token == "rt-1"
    assert store.state.access_token == "at-1"
    assert store.state.expires_at == clock.now + 3600
    assert store.state.rotated_at == clock.now
    assert {"at-1", "rt-1"} <= set(seen)
    # The second call in the same process costs nothing.
    assert tm.get_access_token() == "at-1"
    assert endpoint.presented == ["rt-0"]


def test_expiry_counts_from_when_the_refresh_was_sent_not_from_the_answer():
    """A slow answer must not stretch the token's life: the server started counting before it answered."""
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    endpoint = FakeTokenEndpoint(lifetime=2.0)

    def slow_endpoint(refresh_token: str) -> TokenResponse:
        clock.now += 0.7  # the round trip of a busy machine
        return endpoint(refresh_token)

    sent_at = clock.now
    tm = manager(store, slow_endpoint, clock)
    assert tm.get_access_token() == "at-1"
    assert store.state.expires_at == sent_at + 2.0
    # Once the server's expiry has passed, a 404 on the token counts as an expiry (not so with answer time + 2 s).
    clock.now = sent_at + 2.1
    assert tm.access_token_expired()


def test_leeway_is_a_quarter_of_a_short_lifetime():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    endpoint = FakeTokenEndpoint(lifetime=8.0)
    tm = manager(store, endpoint, clock)
    tm.get_access_token()
    clock.now += 5.9  # 2.1 s left of 8: more than a quarter
    assert tm.get_access_token() == "at-1"
    clock.now += 0.2  # 1.9 s left: less than a quarter
    assert tm.get_access_token() == "at-2"
    assert endpoint.presented == ["rt-0", "rt-1"]


def test_leeway_is_sixty_seconds_for_hour_long_tokens():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    endpoint = FakeTokenEndpoint()
    tm = manager(store, endpoint, clock)
    tm.get_access_token()
    clock.now += 3600 - 61
    assert tm.get_access_token() == "at-1"
    clock.now += 2
    assert tm.get_access_token() == "at-2"


def test_a_response_without_refresh_token_keeps_the_old_one():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    tm = manager(store, lambda rt: TokenResponse(access_token="at-x", expires_in=3600), clock)
    assert tm.get_access_token() == "at-x"
    assert store.state.refresh_token == "rt-0"


class FailingSaveStore(MemoryTokenStore):
    def __init__(self, state: TokenState) -> None:
        super().__init__(state)
        original = self.transaction

        from contextlib import contextmanager

        @contextmanager
        def transaction():
            with original() as tx:

                def broken_save(state: TokenState) -> None:
                    raise ConfluenceTokenStoreError("database is down")

                tx.save = broken_save
                yield tx

        self.transaction = transaction  # type: ignore[method-assign]


def test_a_failed_save_raises_and_the_new_token_is_not_used():
    clock = Clock()
    store = FailingSaveStore(TokenState(refresh_token="rt-0"))
    endpoint = FakeTokenEndpoint()
    tm = manager(store, endpoint, clock)
    with pytest.raises(ConfluenceTokenStoreError):
        tm.get_access_token()
    assert store.state.refresh_token == "rt-0"
    assert endpoint.presented == ["rt-0"]


def test_invalid_grant_after_a_siblings_rotation_adopts_the_siblings_token():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-old"))

    def endpoint(refresh_token: str) -> TokenResponse:
        if refresh_token == "rt-old":
            # Another host rotated the token while we held our (host-local) lock.
            store.state = TokenState(
                refresh_token="rt-sibling", access_token="at-sibling", expires_at=clock.now + 3600, rotated_at=clock.now
            )
            raise ConfluenceInvalidGrant("invalid_grant", status_code=403, error="invalid_grant")
        raise AssertionError(f"unexpected refresh with {refresh_token}")

    tm = manager(store, endpoint, clock)
    assert tm.get_access_token() == "at-sibling"
    assert store.state.refresh_token == "rt-sibling"


def test_invalid_grant_after_a_siblings_rotation_refreshes_the_siblings_expired_token():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-old"))
    presented: list[str] = []

    def endpoint(refresh_token: str) -> TokenResponse:
        presented.append(refresh_token)
        if refresh_token == "rt-old":
            store.state = TokenState(refresh_token="rt-sibling")
            raise ConfluenceInvalidGrant("invalid_grant", status_code=403, error="invalid_grant")
        return TokenResponse(access_token="at-new", expires_in=3600, refresh_token="rt-new")

    tm = manager(store, endpoint, clock)
    assert tm.get_access_token() == "at-new"
    assert presented == ["rt-old", "rt-sibling"]
    assert store.state.refresh_token == "rt-new"


def test_a_real_invalid_grant_raises_reauthorization_and_keeps_the_stored_token():
    clock = Clock()
    original = TokenState(
        refresh_token="rt-dead",
        access_token="at-old",
        expires_at=clock.now - 10,
        cloud_id="cid",
        grant_issued_at=clock.now - 86400,
    )
    store = MemoryTokenStore(original)

    def endpoint(refresh_token: str) -> TokenResponse:
        raise ConfluenceInvalidGrant("invalid_grant", status_code=403, error="invalid_grant")

    with pytest.raises(ConfluenceReauthorizationRequired) as info:
        manager(store, endpoint, clock).get_access_token()
    assert info.value.conn_id == "confluence_default"
    assert "confluence_default" in info.value.message
    assert "authorize" in info.value.message
    assert store.state == original


def test_no_refresh_token_asks_for_authorization():
    with pytest.raises(ConfluenceReauthorizationRequired):
        manager(MemoryTokenStore(), FakeTokenEndpoint(), Clock()).get_access_token()


def test_a_lost_answer_is_retried_with_the_same_token_within_the_leeway():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    presented: list[str] = []
    slept: list[float] = []

    def endpoint(refresh_token: str) -> TokenResponse:
        presented.append(refresh_token)
        if len(presented) < 3:
            raise ConfluenceAuthError("timeout", transient=True)
        return TokenResponse(access_token="at-1", expires_in=3600, refresh_token="rt-1")

    tm = manager(store, endpoint, clock, sleep=slept.append)
    assert tm.get_access_token() == "at-1"
    assert presented == ["rt-0", "rt-0", "rt-0"]
    assert len(slept) == 2 and all(s > 0 for s in slept)
    assert sum(slept) < 600


def test_transient_failures_give_up_well_within_the_leeway():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    slept: list[float] = []

    def endpoint(refresh_token: str) -> TokenResponse:
        raise ConfluenceAuthError("503", transient=True, status_code=503)

    with pytest.raises(ConfluenceAuthError):
        manager(store, endpoint, clock, sleep=slept.append).get_access_token()
    assert sum(slept) <= 150
    assert store.state.refresh_token == "rt-0"


def test_a_permanent_failure_is_not_retried():
    calls: list[str] = []

    def endpoint(refresh_token: str) -> TokenResponse:
        calls.append(refresh_token)
        raise ConfluenceAuthError("bad client", status_code=401, error="access_denied")

    with pytest.raises(ConfluenceAuthError):
        manager(MemoryTokenStore(TokenState(refresh_token="rt-0")), endpoint, Clock()).get_access_token()
    assert calls == ["rt-0"]


def test_threads_racing_on_an_expired_token_refresh_once():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0", access_token="at-0", expires_at=clock.now - 1))
    endpoint = FakeTokenEndpoint()
    barrier = threading.Barrier(16)
    results: list[str] = []

    def work() -> None:
        tm = manager(store, endpoint, clock)  # one manager per "process": no shared cache
        barrier.wait()
        results.append(tm.get_access_token())

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert endpoint.presented == ["rt-0"]
    assert results == ["at-1"] * 16


def test_refresh_rejected_refreshes_a_token_that_looks_valid():
    clock = Clock()
    store = MemoryTokenStore(
        TokenState(refresh_token="rt-0", access_token="at-0", expires_at=clock.now + 3000, rotated_at=clock.now)
    )
    endpoint = FakeTokenEndpoint()
    tm = manager(store, endpoint, clock)
    assert tm.refresh_rejected("at-0") == "at-1"
    assert endpoint.presented == ["rt-0"]


def test_refresh_rejected_adopts_a_newer_token_without_refreshing():
    clock = Clock()
    store = MemoryTokenStore(
        TokenState(refresh_token="rt-5", access_token="at-5", expires_at=clock.now + 3000, rotated_at=clock.now)
    )
    endpoint = FakeTokenEndpoint()
    assert manager(store, endpoint, clock).refresh_rejected("at-4") == "at-5"
    assert endpoint.presented == []


def test_access_token_expired_reads_the_stored_expiry():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt", access_token="at", expires_at=clock.now + 10))
    tm = manager(store, FakeTokenEndpoint(), clock)
    assert tm.access_token_expired() is False
    clock.now += 11
    assert tm.access_token_expired() is True


def test_the_grant_end_is_announced_a_month_ahead(caplog):
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0", grant_issued_at=clock.now - 340 * 86400))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.tokens"):
        manager(store, FakeTokenEndpoint(), clock).get_access_token()
    assert any("365-day" in r.getMessage() and "25 days left" in r.getMessage() for r in caplog.records)


def test_no_grant_warning_early_in_the_grant(caplog):
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0", grant_issued_at=clock.now - 10 * 86400))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.tokens"):
        manager(store, FakeTokenEndpoint(), clock).get_access_token()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_cloud_id_is_discovered_once_and_saved():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    asked: list[str] = []

    def discover(token: str) -> str:
        asked.append(token)
        return "cloud-1"

    tm = manager(store, FakeTokenEndpoint(), clock)
    assert tm.get_cloud_id(discover) == "cloud-1"
    assert tm.get_cloud_id(discover) == "cloud-1"
    assert asked == ["at-1"]
    assert store.state.cloud_id == "cloud-1"
    assert store.state.refresh_token == "rt-1"
    # A new process reads it from the store.
    assert manager(store, FakeTokenEndpoint(), clock).get_cloud_id(discover) == "cloud-1"
    assert asked == ["at-1"]


def test_state_round_trips_through_a_dict():
    state = TokenState(
        refresh_token="r",
        access_token="a",
        expires_at=1.5,
        scope="s",
        cloud_id="c",
        grant_issued_at=2.0,
        rotated_at=1.0,
    )
    assert TokenState.from_mapping(state.to_dict()) == state
    assert TokenState.from_mapping({"expires_at": "garbage", "refresh_token": ""}) == TokenState()
    secret = replace(state, refresh_token="SECRET-RT", access_token="SECRET-AT")
    assert "SECRET" not in repr(secret)


def test_a_token_superseded_by_another_process_counts_as_expired():
    clock = Clock()
    store = MemoryTokenStore(TokenState(refresh_token="rt-0"))
    first = manager(store, FakeTokenEndpoint(), clock)
    first.get_access_token()
    assert first.access_token_expired() is False
    store.state = replace(store.state, access_token="at-from-elsewhere")
    assert first.access_token_expired() is True
