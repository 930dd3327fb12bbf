"""The token broker under load, without sockets: the worker waits out a busy metadata database (503
``store_error``) within its budget, and the API server lets one request per connection refresh at a time."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from airflow_provider_confluence.auth.broker.client import BrokerCredentials, BrokerTokenSource
from airflow_provider_confluence.auth.oauth import TokenResponse
from airflow_provider_confluence.auth.tokens import MemoryTokenStore, TokenManager, TokenState
from airflow_provider_confluence.exceptions import ConfluenceBrokerError, ConfluenceTokenStoreError
from airflow_provider_confluence.retry import RetryPolicy
from helpers.clock import Clock

URL = "http://api-server.test/confluence-oauth/token"
BUSY = {"error": "store_error", "detail": "The API server's metadata database did not answer in time."}


def source(**kwargs: Any) -> BrokerTokenSource:
    kwargs.setdefault("sleep", lambda seconds: None)
    return BrokerTokenSource(
        conn_id="conf", url=URL, credentials=lambda fresh: BrokerCredentials("k" * 40, "g" * 40), **kwargs
    )


@pytest.mark.airflow2
def test_a_busy_metadata_database_is_waited_for_as_the_server_asks(requests_mock):
    requests_mock.post(
        URL,
        [
            {"status_code": 503, "json": BUSY, "headers": {"Retry-After": "2"}},
            {"status_code": 503, "json": BUSY, "headers": {"Retry-After": "2"}},
            {"json": {"access_token": "tok-1", "expires_at": time.time() + 3600, "cloud_id": "c"}},
        ],
    )
    slept: list[float] = []
    assert source(sleep=slept.append).get_access_token() == "tok-1"
    assert requests_mock.call_count == 3 and len(slept) == 2
    assert all(2.0 <= delay <= 3.0 for delay in slept)  # the server's Retry-After, plus a little jitter


@pytest.mark.airflow2
def test_a_metadata_database_busy_past_the_budget_fails_with_what_to_do(requests_mock):
    requests_mock.post(URL, status_code=503, json=BUSY, headers={"Retry-After": "1"})
    slept: list[float] = []
    budget = RetryPolicy(max_attempts=200, base_delay=0.5, max_delay=5.0, max_total_wait=10.0)
    with pytest.raises(ConfluenceBrokerError) as info:
        source(sleep=slept.append, retry=budget).get_access_token()
    error = info.value
    assert not isinstance(error, ConfluenceTokenStoreError)
    assert error.reason == "store_error" and error.status_code == 503 and error.url == URL
    assert URL in error.message and "API server" in error.message and "metadata database" in error.message
    assert "sql_alchemy_pool_size" in error.message and "did not refresh anywhere else" in error.message
    assert 8.0 < sum(slept) <= 10.0 and requests_mock.call_count == len(slept) + 1


# -- single flight in the API server ----------------------------------------------------------------------


class CountingStore(MemoryTokenStore):
    """Counts the locked transactions entered, and how many are open at once (each would hold a pooled
    database connection in the API server)."""

    def __init__(self, state: TokenState) -> None:
        super().__init__(state)
        self.entered = 0
        self.open = 0
        self.most_open = 0
        self._count = threading.Lock()

    def transaction(self) -> Any:
        outer = super().transaction()
        store = self

        class Counted:
            def __enter__(self) -> Any:
                with store._count:
                    store.entered += 1
                    store.open += 1
                    store.most_open = max(store.most_open, store.open)
                return outer.__enter__()

            def __exit__(self, *exc: Any) -> Any:
                try:
                    return outer.__exit__(*exc)
                finally:
                    with store._count:
                        store.open -= 1

        return Counted()


class BlockingEndpoint:
    """A token endpoint that answers only once :attr:`release` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, refresh_token: str) -> TokenResponse:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30)
        return TokenResponse(access_token=f"at-{self.calls}", expires_in=3600, refresh_token=f"rt-{self.calls}")


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_one_request_per_connection_refreshes_and_the_others_wait_without_a_transaction():
    pytest.importorskip("fastapi")
    from airflow_provider_confluence.plugins.broker_load import SingleFlight, access_token_in_turn

    clock = Clock(time.time())
    store = CountingStore(TokenState(refresh_token="rt-0", access_token="at-0", expires_at=clock.now - 1))
    endpoint = BlockingEndpoint()
    flights = SingleFlight()
    answers: list[str] = []

    def one_request() -> None:  # the route builds a TokenManager per request
        manager = TokenManager(store=store, refresh=endpoint, conn_id="conf", clock=clock)
        answers.append(access_token_in_turn(manager, None, flights, "conf"))

    threads = [threading.Thread(target=one_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert endpoint.entered.wait(30)
    wait_until(lambda: flights.waiting("conf") == 7, "the other requests did not follow the refresh in the process")
    assert store.open == 1  # the waiting requests hold no transaction (no pooled connection)
    endpoint.release.set()
    for thread in threads:
        thread.join(30)
    assert answers == ["at-1"] * 8
    assert endpoint.calls == 1 and store.entered == 1 and store.most_open == 1
    # A valid token is handed out without the gate or the transaction.
    manager = TokenManager(store=store, refresh=endpoint, conn_id="conf", clock=clock)
    assert access_token_in_turn(manager, None, flights, "conf") == "at-1" and store.entered == 1


def test_other_connections_do_not_wait_for_one_that_is_refreshing():
    pytest.importorskip("fastapi")
    from airflow_provider_confluence.plugins.broker_load import SingleFlight

    flights = SingleFlight()
    with flights.turn("a") as leads_a, flights.turn("b") as leads_b:  # b would wait if the gate were global
        assert leads_a and leads_b and flights.waiting("a") == 0


def test_a_gate_held_too_long_answers_a_store_error_instead_of_queueing_forever():
    pytest.importorskip("fastapi")
    from airflow_provider_confluence.plugins.broker_load import SingleFlight

    flights = SingleFlight(wait=0.05)
    held, done = threading.Event(), threading.Event()

    def holder() -> None:
        with flights.turn("a"):
            held.set()
            done.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(30)
    try:
        with pytest.raises(ConfluenceTokenStoreError) as info, flights.turn("a"):
            pass
        assert "'a'" in info.value.message
    finally:
        done.set()
        thread.join(30)
