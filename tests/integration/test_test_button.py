"""The Test button, the way Airflow's REST endpoint runs it, in process (Airflow 2.11 and 3).

Both ``POST /api/v1/connections/test`` (Airflow 2) and ``POST /api/v2/connections/test`` (Airflow 3) build a
``Connection`` from the form under a random temporary id, export it as ``AIRFLOW_CONN_<ID>`` and call its
``test_connection()``: the hook sees the form only, never the saved connection's id. The live check must find the
saved grant's store itself, use its access token only with the saved endpoints, and never refresh. The real
Airflow 3 API server runs the same in tests/system/test_test_button_server.py.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.testing import FakeAtlassian
from helpers.airflow_env import put_connection, read_connection_extra

pytestmark = pytest.mark.airflow2

ROUTE = "GET /wiki/api/v2/spaces"


def press_test(form: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[bool, str]:
    """What Airflow's connection-test endpoint does with the form (its ``test_connection`` route)."""
    from airflow.models.connection import Connection

    transient = secrets.token_hex(8)
    conn = Connection(
        conn_id=transient,
        conn_type=form["conn_type"],
        host=form["host"],
        login=form["login"],
        password=form["password"],
        extra=json.dumps(form["extra"]),
    )
    monkeypatch.setenv(f"AIRFLOW_CONN_{transient.upper()}", conn.get_uri())
    return conn.test_connection()


def saved_form(conn_id: str, conn: dict[str, Any]) -> dict[str, Any]:
    """The saved connection as its edit form holds it (Airflow 3.3 merges the saved secrets into the test)."""
    return {**conn, "extra": read_connection_extra(conn_id)}


def test_a_saved_grant_with_a_valid_token_gets_one_live_request_and_no_refresh(fake_atlassian, airflow_db, monkeypatch):
    conn = fake_atlassian.connection("button")
    put_connection("button", conn)
    ConfluenceOAuthHook("button").get_access_token()  # a task ran: the row holds a valid access token
    before = fake_atlassian.counters
    ok, message = press_test(saved_form("button", conn), monkeypatch)
    after = fake_atlassian.counters
    assert ok is True and "with the access token saved in connection 'button'" in message
    assert after["api_calls_by_route"].get(ROUTE, 0) == before["api_calls_by_route"].get(ROUTE, 0) + 1
    assert after["token_requests"] == before["token_requests"] == 1


def test_an_unsaved_form_holding_the_saved_token_is_tested_too(fake_atlassian, airflow_db, monkeypatch):
    """The form of a connection opened before a task rotated its token holds the retired one (the journal)."""
    conn = fake_atlassian.connection("button_old")
    put_connection("button_old", conn)
    ConfluenceOAuthHook("button_old").get_access_token()
    ok, message = press_test(conn, monkeypatch)  # the extra as first saved: the refresh token since rotated
    assert ok is True and "'button_old'" in message
    assert fake_atlassian.counters["token_requests"] == 1


def test_an_expired_saved_token_is_reported_and_never_refreshed(fake_atlassian, airflow_db, monkeypatch):
    conn = fake_atlassian.connection("button_expired")
    put_connection("button_expired", conn)
    ok, message = press_test(conn, monkeypatch)
    assert ok is True and "holds no valid access token" in message and "never redeems" in message
    assert fake_atlassian.counters["token_requests"] == 0 and fake_atlassian.counters["api_calls"] == 0


def test_a_new_refresh_token_in_the_form_gets_no_live_check(fake_atlassian, airflow_db, monkeypatch):
    conn = fake_atlassian.connection("button_new")
    put_connection("button_new", conn)
    ConfluenceOAuthHook("button_new").get_access_token()
    form = saved_form("button_new", conn)
    form["extra"]["refresh_token"] = fake_atlassian.issue_grant()  # pasted after a new consent, not saved
    ok, message = press_test(form, monkeypatch)
    assert ok is True and "No saved connection holds this grant" in message
    assert fake_atlassian.counters["api_calls"] == 0 and fake_atlassian.counters["token_requests"] == 1


@pytest.mark.parametrize("field", ["api_url", "grant_url"])
def test_a_form_pointing_an_endpoint_elsewhere_never_receives_the_saved_token(
    fake_atlassian, airflow_db, monkeypatch, field
):
    """An editor of the form (who cannot read the saved secrets) points an endpoint at a host of theirs, even one
    the deployment allows, and presses Test: the saved access token must not go there, nor anywhere."""
    with FakeAtlassian() as elsewhere:
        monkeypatch.setenv(
            "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS",
            f"{fake_atlassian.allowed_endpoint_hosts},{elsewhere.allowed_endpoint_hosts}",
        )
        conn = fake_atlassian.connection("button_edited")
        put_connection("button_edited", conn)
        ConfluenceOAuthHook("button_edited").get_access_token()
        form = saved_form("button_edited", conn)
        form["extra"][field] = elsewhere.api_url if field == "api_url" else elsewhere.token_url
        before = fake_atlassian.counters
        ok, message = press_test(form, monkeypatch)
        assert ok is True and f"changes the {field} of saved connection 'button_edited'" in message
        assert elsewhere.counters["api_calls"] == elsewhere.counters["token_requests"] == 0
        assert elsewhere.counters["accessible_resources_calls"] == 0
        assert fake_atlassian.counters["api_calls"] == before["api_calls"]
