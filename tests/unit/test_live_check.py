"""The Test button's decision: which saved grant may test a form, and the one live request (no sockets)."""

from __future__ import annotations

import pytest
import requests
import requests_mock

from airflow_provider_confluence.auth.live_check import SavedGrant, check_site, choose_saved_grant
from airflow_provider_confluence.auth.stores.support import fingerprint
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.config.connection import ConnectionSettings

pytestmark = pytest.mark.airflow2

NOW = 1_000_000.0
SITE = "https://acme.atlassian.net"
ACCESS = "saved-access-token-planted-7"
SPACES = "https://api.atlassian.com/ex/confluence/cloud-1/wiki/api/v2/spaces?limit=1"


def settings(conn_id: str = "form", refresh_token: str = "rt-current", **extra: str) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields(
        conn_id,
        host=extra.pop("host", SITE),
        login=extra.pop("login", "cid"),
        password="client-secret-planted",
        extra={"refresh_token": refresh_token, **extra},
    )


def grant(expires_at: float = NOW + 3600, lineage: tuple[str, ...] = ("rt-current",), **extra: str) -> SavedGrant:
    saved = settings("saved", **extra)
    state = TokenState(
        refresh_token="rt-current", access_token=ACCESS, expires_at=expires_at, cloud_id="cloud-1", rotated_at=NOW - 60
    )
    return SavedGrant("saved", saved, state, frozenset(str(fingerprint(t)) for t in lineage))


def test_a_form_of_a_saved_grant_with_a_valid_token_is_tested_with_it():
    choice = choose_saved_grant(settings(), [grant()], NOW)
    assert choice.grant is not None and choice.grant.conn_id == "saved"


def test_a_form_holding_a_token_the_grant_rotated_away_belongs_to_it():
    """An edit form opened before a rotation holds the retired token: the journal's lineage still names it."""
    choice = choose_saved_grant(settings(refresh_token="rt-old"), [grant(lineage=("rt-current", "rt-old"))], NOW)
    assert choice.grant is not None


def test_a_refresh_token_no_saved_connection_knows_gets_no_live_check():
    choice = choose_saved_grant(settings(refresh_token="rt-pasted"), [grant()], NOW)
    assert choice.grant is None and "No saved connection holds this grant" in choice.message


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("grant_url", "https://auth-proxy.example/oauth/token", "grant_url"),
        ("api_url", "https://api-proxy.example", "api_url"),
        ("host", "https://other.atlassian.net", "site URL (Host)"),
        ("login", "another-client", "Client ID (Login)"),
    ],
)
def test_a_form_that_changes_where_a_token_goes_gets_no_live_check(field, value, named, monkeypatch):
    allowed = "auth-proxy.example, api-proxy.example"
    monkeypatch.setattr(ConnectionSettings, "from_connection_fields", _with_allowed(allowed))
    form = settings(**{field: value})
    choice = choose_saved_grant(form, [grant()], NOW)
    assert choice.grant is None and f"changes the {named} of saved connection 'saved'" in choice.message
    assert value not in choice.message  # names, never values


def _with_allowed(allowed: str):
    original = ConnectionSettings.from_connection_fields.__func__

    def parse(cls, conn_id, **kwargs):
        return original(cls, conn_id, **{**kwargs, "allowed_endpoint_hosts": allowed})

    return classmethod(parse)


def test_an_expired_saved_access_token_is_never_refreshed_by_a_test():
    choice = choose_saved_grant(settings(), [grant(expires_at=NOW + 10)], NOW)  # within the leeway
    assert choice.grant is None and "holds no valid access token" in choice.message
    assert "airflow-confluence refresh --conn-id saved" in choice.message


def test_a_form_without_a_refresh_token_is_told_to_authorize():
    form = ConnectionSettings.from_connection_fields("form", host=SITE, login="cid", password="s", extra={})
    choice = choose_saved_grant(form, [grant()], NOW)
    assert choice.grant is None and "authorize the app first" in choice.message


def test_the_live_check_sends_the_saved_token_to_the_gateway_once():
    with requests_mock.Mocker() as m:
        m.get(SPACES, json={"results": [], "_links": {}})
        ok, message = check_site(settings(), grant(), requests.Session())
    assert ok is True and "cloud id cloud-1" in message and "Nothing was refreshed" in message
    assert [r.url for r in m.request_history] == [SPACES]
    assert (m.request_history[0].headers["Authorization"] == f"Bearer {ACCESS}") is True
    assert (ACCESS in message) is False


def test_a_refused_saved_token_fails_the_test_without_a_refresh():
    with requests_mock.Mocker() as m:
        m.get(SPACES, status_code=401, json={"code": 401, "message": "Unauthorized"})
        token = m.post(requests_mock.ANY, status_code=500)
        ok, message = check_site(settings(), grant(), requests.Session())
    assert ok is False and "testing never refreshes it" in message
    assert token.called is False and len(m.request_history) == 1


def test_the_live_check_refuses_settings_that_differ_even_when_asked_directly():
    with requests_mock.Mocker() as m:
        ok, message = check_site(settings(login="another-client"), grant(), requests.Session())
    assert ok is False and m.called is False
