"""Which store ``state_store`` selects, and the Variable store's own rules."""

from __future__ import annotations

import json

import pytest

from airflow_provider_confluence.auth.stores.choice import VariableTokenStore, fingerprint
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceTokenStoreError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from helpers.airflow_env import put_connection

pytestmark = pytest.mark.airflow2


@pytest.mark.parametrize(
    ("state_store", "expected"),
    [("connection", "connection"), ("variable", "variable"), ("memory", "memory")],
)
def test_explicit_stores(fake_atlassian, airflow_db, state_store, expected):
    put_connection("explicit", fake_atlassian.connection("explicit", state_store=state_store))
    assert ConfluenceOAuthHook("explicit").token_manager.store.name == expected


def test_auto_is_the_connection_itself_on_every_version(fake_atlassian, airflow_db):
    """No configuration: the rotated token lands in the connection (Airflow 3 tasks reach it via the broker)."""
    from helpers.airflow_env import read_connection_extra

    put_connection("auto_conn", fake_atlassian.connection("auto_conn"))
    hook = ConfluenceOAuthHook("auto_conn")
    hook.get_access_token()
    assert hook.token_manager.store.name == "connection"
    assert read_connection_extra("auto_conn")["refresh_token"] == fake_atlassian.latest_refresh_token


def test_an_env_var_connection_keeps_its_state_in_a_row_locked_variable(fake_atlassian, airflow_db, monkeypatch):
    """No row to write: a Variable locked by its own row (not a host file lock), on Airflow 2.11 as on 3."""
    from airflow_provider_confluence.auth.stores.choice import VariableRowTokenStore
    from helpers.airflow_env import read_variable

    conn = fake_atlassian.connection("from_env_var")
    monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV_VAR", json.dumps(conn))
    hook = ConfluenceOAuthHook("from_env_var")
    hook.get_access_token()
    assert type(hook.token_manager.store) is VariableRowTokenStore
    state = json.loads(read_variable("confluence_oauth_token_state__from_env_var") or "{}")
    assert state["refresh_token"] == fake_atlassian.latest_refresh_token != conn["extra"]["refresh_token"]


def test_the_host_locked_variable_store_is_chosen_only_explicitly_and_warns(fake_atlassian, airflow_db, caplog):
    put_connection("one_host", fake_atlassian.connection("one_host", state_store="variable"))
    with caplog.at_level("WARNING", logger="airflow_provider_confluence.auth.stores.choice"):
        store = ConfluenceOAuthHook("one_host").token_manager.store
    assert type(store) is VariableTokenStore
    assert "runs on ONE host" in caplog.text and "state_store=variable" in caplog.text


def test_the_variable_store_refuses_state_it_does_not_understand(fake_atlassian, airflow_db):
    from airflow.models.variable import Variable

    put_connection("garbled", fake_atlassian.connection("garbled", state_store="variable"))
    Variable.set("confluence_oauth_token_state__garbled", "not json at all")
    with pytest.raises(ConfluenceTokenStoreError, match="left alone"):
        ConfluenceOAuthHook("garbled").get_access_token()
    assert Variable.get("confluence_oauth_token_state__garbled") == "not json at all"
    assert fake_atlassian.counters["token_requests"] == 0


def test_the_variable_remembers_which_consent_it_descends_from(fake_atlassian, airflow_db):
    conn = fake_atlassian.connection("seeded", state_store="variable")
    put_connection("seeded", conn)
    ConfluenceOAuthHook("seeded").get_access_token()
    store = VariableTokenStore("seeded", conn["extra"]["refresh_token"])
    from airflow.models.variable import Variable

    data = json.loads(Variable.get("confluence_oauth_token_state__seeded"))
    assert data["seed_fingerprint"] == fingerprint(conn["extra"]["refresh_token"])
    assert store.load().refresh_token == fake_atlassian.latest_refresh_token


@pytest.mark.parametrize("state_store", ["auto", "connection", "broker"])
def test_a_blocked_process_reaches_the_row_through_the_broker(fake_atlassian, airflow_db, monkeypatch, state_store):
    """An Airflow 3 task worker or triggerer (ORM blocked) never writes a store itself: it asks the broker."""
    from airflow_provider_confluence.auth.broker.client import BrokerTokenSource
    from airflow_provider_confluence.auth.stores import choice as stores

    monkeypatch.setattr(stores, "orm_available", lambda: False)
    put_connection("blocked", fake_atlassian.connection("blocked", state_store=state_store))
    assert isinstance(ConfluenceOAuthHook("blocked").token_manager, BrokerTokenSource)
    with pytest.raises(ConfluenceConfigError, match="must ask the token broker"):
        stores.choose_token_store(ConfluenceOAuthHook("blocked").settings)


def test_a_new_consent_pasted_into_the_connection_restarts_the_grant(fake_atlassian, confluence_conn):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from helpers.airflow_env import read_connection_extra

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


def test_a_variable_planted_by_a_task_is_never_adopted(fake_atlassian, confluence_conn):
    """Any Airflow 3 task can write a Variable. One planted as the Variable store's state of this connection
    (its seed fingerprint is readable in the connection's extra) must not hand the hook a token or a site."""
    from airflow.models.variable import Variable

    from helpers.airflow_env import read_connection_extra

    fake_atlassian.add_space("DEMO")
    ConfluenceOAuthHook(confluence_conn).get_space_id("DEMO")  # the row holds a token and the site's cloud id
    extra = read_connection_extra(confluence_conn)
    planted = {
        "refresh_token": "planted-refresh-token",
        "access_token": "planted-access-token",
        "expires_at": extra["expires_at"] + 86400,
        "cloud_id": "planted-cloud-id",
        "seed_fingerprint": extra["refresh_token_fingerprint"],
    }
    Variable.set(f"confluence_oauth_token_state__{confluence_conn}", json.dumps(planted))
    hook = ConfluenceOAuthHook(confluence_conn)
    assert hook.get_access_token() == extra["access_token"]
    assert hook.get_space_id("DEMO") and hook.get_conn().cloud_id == fake_atlassian.cloud_id
    fake_atlassian.advance(7200)  # the row's token has expired: the next use must redeem, under the lock
    later = ConfluenceOAuthHook(confluence_conn)
    later.token_manager._clock = fake_atlassian.now
    with pytest.raises(ConfluenceConfigError, match="migrate-store"):
        later.get_access_token()
    assert fake_atlassian.counters["refreshes"] == 1  # neither the planted nor the row's token was redeemed
    assert read_connection_extra(confluence_conn)["refresh_token"] == extra["refresh_token"]
