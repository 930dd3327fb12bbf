"""The broker route when the metadata database fails (a pool timeout under load, a lost connection): 503
``store_error`` with a Retry-After, never 401 as if the connection did not exist, never 500 with a traceback.

The errors are injected where the API server meets SQLAlchemy; the rest (the app, the emulator, the SQLite
metadata database of this session) is real. Locking under load on PostgreSQL: test_broker_server.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from helpers.airflow_env import airflow_major, put_connection, read_connection_extra
from helpers.broker import ask, broker_app_client, gate_key, key_of

pytestmark = pytest.mark.skipif(airflow_major() < 3, reason="the token broker runs in the Airflow 3 API server")

POOL_TIMEOUT = (
    "QueuePool limit of size 15 overflow 0 reached, connection timed out, timeout 30.00 "
    "(Background on this error at: https://sqlalche.me/e/20/3o7r)"
)


@pytest.fixture
def broker(airflow_db: Any) -> Iterator[Any]:
    pytest.importorskip("fastapi")
    with broker_app_client(raise_server_exceptions=False) as client:
        yield client


def pool_timeout(*args: Any, **kwargs: Any) -> Any:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    raise PoolTimeout(POOL_TIMEOUT)


def lost_connection(*args: Any, **kwargs: Any) -> Any:
    from sqlalchemy.exc import OperationalError

    raise OperationalError("SELECT connection.extra FROM connection WHERE conn_id = %(id)s", {"id": "x"}, Exception())


def assert_store_error(response: Any, *secrets: str) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"} and body["error"] == "store_error"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"
    for leak in ("Traceback", "QueuePool", "SELECT", "sqlalche.me", *secrets):
        assert (leak in response.text) is False


def test_a_pool_timeout_in_the_nonce_check_is_a_503_not_a_500(fake_atlassian, broker, monkeypatch):
    conn = fake_atlassian.connection("busy_nonce", state_store="broker")
    put_connection("busy_nonce", conn)
    monkeypatch.setattr("airflow_provider_confluence.plugins.single_use.create_session", pool_timeout)
    response = ask(broker, "busy_nonce")
    assert_store_error(response, conn["extra"]["refresh_token"], conn["password"])
    assert fake_atlassian.counters["refreshes"] == 0


def test_a_pool_timeout_reading_the_connection_is_a_503_not_an_unknown_connection(fake_atlassian, broker, monkeypatch):
    conn = fake_atlassian.connection("busy_read", state_store="broker")
    put_connection("busy_read", conn)
    signing = {"secret": key_of("busy_read"), "gate_key": gate_key()}  # as a worker signs: before the pool ran dry
    # Airflow's lookup logs a failing backend and moves on, so the pool timeout ends as "not found".
    monkeypatch.setattr("airflow.secrets.metastore.MetastoreBackend.get_connection", pool_timeout)
    response = ask(broker, "busy_read", **signing)
    assert_store_error(response, conn["extra"]["refresh_token"], conn["password"])
    assert fake_atlassian.counters["refreshes"] == 0


def test_a_connection_that_does_not_exist_is_still_refused_like_a_bad_signature(fake_atlassian, broker):
    response = ask(broker, "no_such_conn", secret="x" * 40)
    assert response.status_code == 401 and response.json()["error"] == "invalid_signature"


def test_a_lost_database_in_the_locked_refresh_is_a_503_and_nothing_changes(fake_atlassian, broker, monkeypatch):
    conn = fake_atlassian.connection("busy_lock", state_store="broker")
    put_connection("busy_lock", conn)
    monkeypatch.setattr(
        "airflow_provider_confluence.auth.stores.connection.ConnectionTokenStore.transaction", lost_connection
    )
    response = ask(broker, "busy_lock")
    assert_store_error(response, conn["extra"]["refresh_token"], conn["password"])
    assert fake_atlassian.counters["refreshes"] == 0
    assert read_connection_extra("busy_lock")["refresh_token"] == conn["extra"]["refresh_token"]


def test_the_server_log_of_a_database_error_holds_no_sql_parameters(fake_atlassian, broker, monkeypatch, caplog):
    """SQLAlchemy puts a statement's parameters in its error's text; they may be a connection's extras."""
    conn = fake_atlassian.connection("busy_params", state_store="broker")
    put_connection("busy_params", conn)
    secret = conn["extra"]["refresh_token"]

    def failed_write(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        raise OperationalError(
            "UPDATE connection SET extra=%(extra)s", {"extra": secret}, Exception("server closed the connection")
        )

    monkeypatch.setattr("airflow_provider_confluence.plugins.single_use.create_session", failed_write)
    with caplog.at_level("DEBUG"):
        response = ask(broker, "busy_params")
    assert_store_error(response, secret)
    logged = caplog.text
    assert ("server closed the connection" in logged) is True
    assert (secret in logged) is False
    assert ("UPDATE connection" in logged) is False
