"""The Variable store's name before 0.2.0 (``confluence_oauth__<conn_id>``, which Airflow does not mask) is read
once: the first locked transaction moves it to ``confluence_oauth_token_state__<conn_id>`` and deletes it, and no
token is lost on the way."""

from __future__ import annotations

import json

import pytest

from airflow_provider_confluence.auth.stores.support import legacy_variable_key, variable_key
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from helpers.airflow_env import put_connection, read_variable

pytestmark = pytest.mark.airflow2


def rename_variable(old: str, new: str) -> None:
    """What a deployment upgraded from 0.1 holds: the state under the old name (moved here by hand)."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == old).one()
        session.add(Variable(key=new, val=row.get_val(), description=row.description))
        session.delete(row)


def rotated_in_legacy_variable(fake, monkeypatch, conn_id: str, **extra) -> dict:
    """A connection whose Variable store rotated its token once, under the pre-0.2.0 name; its env-var dict."""
    conn = fake.connection(conn_id, **extra)
    if extra.get("state_store") == "variable":
        put_connection(conn_id, conn)
    else:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    ConfluenceOAuthHook(conn_id).get_access_token()
    rename_variable(variable_key(conn_id), legacy_variable_key(conn_id))
    assert read_variable(variable_key(conn_id)) is None
    return conn


@pytest.mark.parametrize("state_store", ["auto", "variable"], ids=["row-locked (env var)", "host-locked"])
def test_the_first_refresh_moves_the_old_variable_and_redeems_its_token(
    fake_atlassian, airflow_db, monkeypatch, state_store
):
    conn_id = f"legacy_{state_store}"
    conn = rotated_in_legacy_variable(fake_atlassian, monkeypatch, conn_id, state_store=state_store)
    rotated = fake_atlassian.latest_refresh_token
    assert rotated != conn["extra"]["refresh_token"]  # the connection's own token is retired

    hook = ConfluenceOAuthHook(conn_id)
    assert hook.get_access_token()  # still valid: read from the old name, nothing moved or refreshed yet
    assert fake_atlassian.counters["refreshes"] == 1

    fake_atlassian.advance(7200)
    later = ConfluenceOAuthHook(conn_id)
    later.token_manager._clock = fake_atlassian.now
    later.get_access_token()
    moved = json.loads(read_variable(variable_key(conn_id)) or "{}")
    assert fake_atlassian.counters["refreshes"] == 2 and fake_atlassian.counters["invalid_grants"] == 0
    assert (moved["refresh_token"] == fake_atlassian.latest_refresh_token != rotated) is True
    assert read_variable(legacy_variable_key(conn_id)) is None  # never two live copies


def test_a_failed_transaction_keeps_the_old_variable_whole(fake_atlassian, airflow_db, monkeypatch):
    """The move and the save are one database transaction: when the save fails, the old Variable is kept."""
    from airflow_provider_confluence.auth.stores import variable as variable_module
    from airflow_provider_confluence.exceptions import ConfluenceTokenStoreError

    conn_id = "legacy_rollback"
    rotated_in_legacy_variable(fake_atlassian, monkeypatch, conn_id)
    before = read_variable(legacy_variable_key(conn_id))

    def failing_save(self, state):
        raise ConfluenceTokenStoreError("the metadata database went away")

    monkeypatch.setattr(variable_module._VariableRowTransaction, "save", failing_save)
    fake_atlassian.advance(7200)
    hook = ConfluenceOAuthHook(conn_id)
    hook.token_manager._clock = fake_atlassian.now
    with pytest.raises(ConfluenceTokenStoreError):
        hook.get_access_token()
    assert (read_variable(legacy_variable_key(conn_id)) == before) is True
    assert read_variable(variable_key(conn_id)) is None


def test_when_both_names_exist_the_new_one_is_used_and_the_old_one_left_alone(
    fake_atlassian, airflow_db, monkeypatch, caplog
):
    from airflow.models.variable import Variable

    conn_id = "legacy_both"
    rotated_in_legacy_variable(fake_atlassian, monkeypatch, conn_id)
    stale = read_variable(legacy_variable_key(conn_id))
    Variable.set(variable_key(conn_id), stale)  # e.g. an older process wrote the old name again
    fake_atlassian.advance(7200)
    hook = ConfluenceOAuthHook(conn_id)
    hook.token_manager._clock = fake_atlassian.now
    with caplog.at_level("WARNING", logger="airflow_provider_confluence.auth.stores.variable"):
        hook.get_access_token()
    assert f"Delete {legacy_variable_key(conn_id)!r}" in caplog.text
    assert (read_variable(legacy_variable_key(conn_id)) == stale) is True
    assert json.loads(read_variable(variable_key(conn_id)) or "{}")["refresh_token"] == (
        fake_atlassian.latest_refresh_token
    )


def test_migrate_store_moves_a_variable_under_the_old_name_into_the_connection(fake_atlassian, airflow_db):
    """A connection row whose tokens the Variable store (0.1's default on Airflow 3) rotated, under the old name:
    redeeming the row's token is refused with the command, which moves the old-named Variable and deletes it."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from airflow_provider_confluence.auth.stores.connection import migrate_variable_state
    from airflow_provider_confluence.exceptions import ConfluenceConfigError
    from helpers.airflow_env import read_connection_extra

    conn_id = "legacy_row"
    conn = fake_atlassian.connection(conn_id, state_store="variable")
    put_connection(conn_id, conn)
    ConfluenceOAuthHook(conn_id).get_access_token()
    rename_variable(variable_key(conn_id), legacy_variable_key(conn_id))
    with create_session() as session:  # the upgrade: the connection goes back to the default store
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one()
        row.set_extra(json.dumps({k: v for k, v in conn["extra"].items() if k != "state_store"}))
    with pytest.raises(ConfluenceConfigError) as refused:
        ConfluenceOAuthHook(conn_id).token_manager.refresh_rejected("")
    assert legacy_variable_key(conn_id) in refused.value.message and "migrate-store" in refused.value.message

    moved = migrate_variable_state(conn_id)
    assert moved.action == "moved" and moved.variable == legacy_variable_key(conn_id)
    assert read_variable(legacy_variable_key(conn_id)) is None
    assert read_connection_extra(conn_id)["refresh_token"] == fake_atlassian.latest_refresh_token
    assert fake_atlassian.counters["invalid_grants"] == 0
