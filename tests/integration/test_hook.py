"""ConfluenceOAuthHook for real: Airflow's metadata DB (SQLite here), real HTTP to the emulator on loopback."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceNotFound,
    ConfluenceReauthorizationRequired,
    ConfluenceTokenStoreError,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from helpers.airflow_env import put_connection, read_connection_extra, read_variable, scan_for_secrets

pytestmark = pytest.mark.airflow2


def test_first_call_refreshes_and_writes_the_rotated_token_back(fake_atlassian, confluence_conn):
    planted = fake_atlassian.latest_refresh_token
    token = ConfluenceOAuthHook(confluence_conn).get_access_token()
    extra = read_connection_extra(confluence_conn)
    assert extra["refresh_token"] == fake_atlassian.latest_refresh_token != planted
    assert extra["access_token"] == token
    assert extra["expires_at"] > extra["rotated_at"]
    assert "offline_access" in extra["scope"].split()
    assert fake_atlassian.counters["refreshes"] == 1
    # Other settings in the extra are untouched.
    assert extra["grant_url"] == fake_atlassian.token_url


def test_a_valid_stored_token_costs_no_refresh(fake_atlassian, confluence_conn):
    ConfluenceOAuthHook(confluence_conn).get_access_token()
    ConfluenceOAuthHook(confluence_conn).get_access_token()
    assert fake_atlassian.counters["refreshes"] == 1


def test_cloud_id_is_found_once_and_cached_in_the_state(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    ConfluenceOAuthHook(confluence_conn).get_space_id("DEMO")
    ConfluenceOAuthHook(confluence_conn).get_space_id("DEMO")
    assert read_connection_extra(confluence_conn)["cloud_id"] == fake_atlassian.cloud_id
    assert fake_atlassian.counters["accessible_resources_calls"] == 1


def test_a_site_the_grant_does_not_cover_is_named(fake_atlassian, airflow_db):
    conn = fake_atlassian.connection("other_site")
    conn["host"] = "https://not-granted.atlassian.net"
    put_connection("other_site", conn)
    with pytest.raises(ConfluenceAuthError, match="not-granted.atlassian.net") as info:
        ConfluenceOAuthHook("other_site").get_space_id("DEMO")
    assert fake_atlassian.site_url.split("//")[1] in info.value.message


def test_a_dead_grant_asks_for_reauthorization_and_keeps_the_stored_token(fake_atlassian, confluence_conn):
    planted = fake_atlassian.latest_refresh_token
    # Someone used the token, then a stale copy after the 10-minute leeway: the whole grant is revoked.
    body = {
        "grant_type": "refresh_token",
        "client_id": fake_atlassian.client_id,
        "client_secret": fake_atlassian.client_secret,
        "refresh_token": planted,
    }
    assert requests.post(fake_atlassian.token_url, json=body, timeout=5).status_code == 200
    fake_atlassian.advance(601)
    assert requests.post(fake_atlassian.token_url, json=body, timeout=5).status_code == 403
    before = read_connection_extra(confluence_conn)
    with pytest.raises(ConfluenceReauthorizationRequired) as info:
        ConfluenceOAuthHook(confluence_conn).get_access_token()
    assert info.value.conn_id == confluence_conn
    assert read_connection_extra(confluence_conn) == before
    assert planted not in str(info.value)


def test_a_token_revoked_by_a_siblings_refresh_is_replaced_after_a_404(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    first = ConfluenceOAuthHook(confluence_conn)
    first.get_space_id("DEMO")
    sibling = ConfluenceOAuthHook(confluence_conn)
    sibling.token_manager.refresh_rejected(first.get_access_token())  # the sibling rotates
    fake_atlassian.advance(601)  # Atlassian revokes the old access token after the grace period
    refreshes = fake_atlassian.counters["refreshes"]
    assert first.get_space_id("DEMO")  # 404 on v2 for the dead token, then the sibling's token is adopted
    assert fake_atlassian.counters["refreshes"] == refreshes
    statuses = [r["status"] for r in fake_atlassian.requests if r["route"] == "GET /wiki/api/v2/spaces"]
    assert statuses[-2:] == [404, 200]


def test_a_real_404_costs_no_refresh(fake_atlassian, confluence_conn):
    hook = ConfluenceOAuthHook(confluence_conn)
    hook.get_access_token()
    with pytest.raises(ConfluenceNotFound):
        hook.get_page("424242")
    assert fake_atlassian.counters["refreshes"] == 1


def test_a_failed_save_raises_and_the_token_is_not_used(fake_atlassian, confluence_conn, monkeypatch):
    from airflow_provider_confluence.auth.stores import variable

    def broken(*args, **kwargs):
        raise RuntimeError("metadata database is read-only")

    monkeypatch.setattr(variable, "set_variable", broken)
    conn = fake_atlassian.connection(confluence_conn, state_store="variable")
    put_connection(confluence_conn, conn)
    with pytest.raises(ConfluenceTokenStoreError, match="not used"):
        ConfluenceOAuthHook(confluence_conn).get_access_token()
    assert fake_atlassian.counters["refreshes"] == 1
    assert read_variable(f"confluence_oauth_token_state__{confluence_conn}") is None


def test_an_env_var_connection_keeps_its_state_in_a_variable(fake_atlassian, airflow_db, monkeypatch, caplog):
    conn = fake_atlassian.connection("from_env")
    monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV", json.dumps(conn))
    with caplog.at_level(logging.INFO):
        hook = ConfluenceOAuthHook("from_env")
        hook.get_access_token()
    assert hook.token_manager.store.name == "variable"
    assert "Variable 'confluence_oauth_token_state__from_env'" in caplog.text
    state = json.loads(read_variable("confluence_oauth_token_state__from_env"))
    assert state["refresh_token"] == fake_atlassian.latest_refresh_token
    # A second hook (a later task) uses the rotated token from the Variable, not the stale one in the env var.
    fake_atlassian.advance(0)
    second = ConfluenceOAuthHook("from_env")
    second.token_manager.refresh_rejected(second.get_access_token())
    assert fake_atlassian.counters["stale_refresh_reuses"] == 0
    assert (
        json.loads(read_variable("confluence_oauth_token_state__from_env"))["refresh_token"]
        == fake_atlassian.latest_refresh_token
    )


def test_token_store_connection_is_refused_for_an_env_var_connection(fake_atlassian, airflow_db, monkeypatch):
    conn = fake_atlassian.connection("env_conn", state_store="connection")
    monkeypatch.setenv("AIRFLOW_CONN_ENV_CONN", json.dumps(conn))
    with pytest.raises(ConfluenceConfigError, match="environment variable or a secrets backend"):
        ConfluenceOAuthHook("env_conn").get_access_token()
    assert fake_atlassian.counters["token_requests"] == 0


def test_a_new_consent_in_the_connection_wins_over_older_variable_state(fake_atlassian, airflow_db, monkeypatch):
    conn = fake_atlassian.connection("consented", state_store="variable")
    put_connection("consented", conn)
    ConfluenceOAuthHook("consented").get_access_token()
    old_state = json.loads(read_variable("confluence_oauth_token_state__consented"))
    new_grant = fake_atlassian.issue_grant()
    conn["extra"]["refresh_token"] = new_grant
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == "consented").one()
        row.set_extra(json.dumps(conn["extra"]))
    hook = ConfluenceOAuthHook("consented")
    hook.token_manager.refresh_rejected(old_state["access_token"])
    new_state = json.loads(read_variable("confluence_oauth_token_state__consented"))
    assert new_state["refresh_token"] == fake_atlassian.latest_refresh_token != old_state["refresh_token"]
    assert fake_atlassian.counters["invalid_grants"] == 0


def test_test_connection_never_redeems_the_refresh_token(fake_atlassian, confluence_conn):
    ok, message = ConfluenceOAuthHook(confluence_conn).test_connection()
    assert ok and "holds no valid access token" in message and "never redeems the refresh token" in message
    assert fake_atlassian.counters["token_requests"] == 0
    ConfluenceOAuthHook(confluence_conn).get_access_token()
    ok, message = ConfluenceOAuthHook(confluence_conn).test_connection()
    assert ok and fake_atlassian.cloud_id in message
    assert fake_atlassian.counters["token_requests"] == 1
    assert fake_atlassian.counters["api_calls_by_route"].get("GET /wiki/api/v2/spaces") == 1


def test_test_connection_reports_bad_settings(fake_atlassian, airflow_db):
    conn = fake_atlassian.connection("bad_scopes")
    conn["extra"]["scopes"] = "read:space:confluence"
    put_connection("bad_scopes", conn)
    ok, message = ConfluenceOAuthHook("bad_scopes").test_connection()
    assert not ok and "offline_access" in message


def test_no_secret_reaches_logs_or_errors(fake_atlassian, confluence_conn, caplog, capsys):
    fake_atlassian.add_spaces(300)
    planted = fake_atlassian.latest_refresh_token
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        hook = ConfluenceOAuthHook(confluence_conn)
        assert len(list(hook.iter_spaces())) == 300
        hook.create_page(space_key="S1", title="Leak check", body="<p>x</p>")
        for call in (
            lambda: hook.get_page("999999"),
            lambda: hook.create_page(space_key="S1", title="Leak check", body="<p>y</p>"),
        ):
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - collecting error texts to scan
                texts.append(f"{exc!r} {exc}")
    extra = read_connection_extra(confluence_conn)
    secrets = [fake_atlassian.client_secret, planted, extra["refresh_token"], extra["access_token"]]
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert len(texts) == 5
    assert "Created page" in caplog.text and "Refreshed the Confluence access token" in caplog.text
    assert "keeps its rotated tokens in the connection store" in captured.out + caplog.text
    assert scan_for_secrets("\n".join(texts), secrets) == []


def test_every_token_handed_out_is_masked(fake_atlassian, confluence_conn):
    """Airflow's secrets masker hides the access and refresh tokens wherever they would be logged."""
    from airflow.providers.common.compat.sdk import redact

    hook = ConfluenceOAuthHook(confluence_conn)
    token = hook.get_access_token()
    rotated = read_connection_extra(confluence_conn)["refresh_token"]
    text = f"Authorization: Bearer {token} refresh={rotated} secret={fake_atlassian.client_secret}"
    assert scan_for_secrets(str(redact(text)), [token, rotated, fake_atlassian.client_secret]) == []
    # A token read back from the store (another task, another hook) is masked too.
    second = ConfluenceOAuthHook(confluence_conn)
    assert second.get_access_token() == token
    assert token not in str(redact(f"again {token}"))
