"""Which store ``token_store`` selects, and the Variable store's own rules."""

from __future__ import annotations

import json

import pytest

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceTokenStoreError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.stores import VariableTokenStore, fingerprint
from conftest import airflow_major, put_connection

pytestmark = pytest.mark.airflow2


@pytest.mark.parametrize(
    ("token_store", "expected"),
    [("connection", "connection"), ("variable", "variable"), ("memory", "memory")],
)
def test_explicit_stores(fake_atlassian, airflow_db, token_store, expected):
    put_connection("explicit", fake_atlassian.connection("explicit", token_store=token_store))
    assert ConfluenceOAuthHook("explicit").token_manager.store.name == expected


def test_auto_is_the_same_store_in_every_process(fake_atlassian, airflow_db):
    """Airflow 3 workers cannot write connections, so on 3 every process uses the Variable; on 2 the row."""
    put_connection("auto_conn", fake_atlassian.connection("auto_conn"))
    expected = "variable" if airflow_major() >= 3 else "connection"
    assert ConfluenceOAuthHook("auto_conn").token_manager.store.name == expected


def test_the_variable_store_refuses_state_it_does_not_understand(fake_atlassian, airflow_db):
    from airflow.models.variable import Variable

    put_connection("garbled", fake_atlassian.connection("garbled", token_store="variable"))
    Variable.set("confluence_oauth__garbled", "not json at all")
    with pytest.raises(ConfluenceTokenStoreError, match="left alone"):
        ConfluenceOAuthHook("garbled").get_access_token()
    assert Variable.get("confluence_oauth__garbled") == "not json at all"
    assert fake_atlassian.counters["token_requests"] == 0


def test_the_variable_remembers_which_consent_it_descends_from(fake_atlassian, airflow_db):
    conn = fake_atlassian.connection("seeded", token_store="variable")
    put_connection("seeded", conn)
    ConfluenceOAuthHook("seeded").get_access_token()
    store = VariableTokenStore("seeded", conn["extra"]["refresh_token"])
    from airflow.models.variable import Variable

    data = json.loads(Variable.get("confluence_oauth__seeded"))
    assert data["seed_fingerprint"] == fingerprint(conn["extra"]["refresh_token"])
    assert store.load().refresh_token == fake_atlassian.latest_refresh_token


def test_token_store_connection_in_a_blocked_worker_is_refused(fake_atlassian, airflow_db, monkeypatch):
    from airflow_provider_confluence import stores

    monkeypatch.setattr(stores, "orm_available", lambda: False)
    put_connection("blocked", fake_atlassian.connection("blocked", token_store="connection"))
    with pytest.raises(ConfluenceConfigError, match="cannot write connections"):
        ConfluenceOAuthHook("blocked").get_access_token()


def test_a_new_consent_pasted_into_the_connection_restarts_the_grant(fake_atlassian, confluence_conn):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from conftest import read_connection_extra

    ConfluenceOAuthHook(confluence_conn).get_access_token()
    old = read_connection_extra(confluence_conn)
    fake_atlassian.advance(200 * 86400)  # long after: the old grant's count is 200 days in
    new_grant = fake_atlassian.issue_grant()
    with create_session() as session:  # a person pastes the new refresh token in the UI, leaving the rest
        row = session.query(Connection).filter(Connection.conn_id == confluence_conn).one()
        row.set_extra(json.dumps({**old, "refresh_token": new_grant}))
    hook = ConfluenceOAuthHook(confluence_conn)
    hook.token_manager._clock = fake_atlassian.now
    hook.get_access_token()
    new = read_connection_extra(confluence_conn)
    assert new["refresh_token"] == fake_atlassian.latest_refresh_token
    assert new["access_token"] != old["access_token"]
    assert new["grant_issued_at"] >= old["grant_issued_at"] + 199 * 86400
    assert fake_atlassian.counters["invalid_grants"] == 0
