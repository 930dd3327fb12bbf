"""Atlassian's token endpoint and accessible-resources, unit level with requests-mock."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceInvalidGrant

TOKEN_URL = "https://auth.atlassian.com/oauth/token"
SECRET = "planted-secret-abc"
RT = "planted-refresh-token-xyz"


def refresh(session):
    return oauth.refresh(
        session, token_url=TOKEN_URL, client_id="cid", client_secret=SECRET, refresh_token=RT, timeout=5
    )


def test_refresh_sends_json_without_scope_or_redirect_uri():
    session = requests.Session()
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, json={"access_token": "at", "expires_in": 3600, "refresh_token": "rt2", "scope": "s"})
        result = refresh(session)
    sent = m.request_history[0]
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json() == {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "client_secret": SECRET,
        "refresh_token": RT,
    }
    assert (result.access_token, result.expires_in, result.refresh_token, result.scope) == ("at", 3600.0, "rt2", "s")


def test_refresh_without_refresh_token_in_answer():
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, json={"access_token": "at", "expires_in": 3600})
        assert refresh(requests.Session()).refresh_token is None


def test_invalid_grant_is_its_own_type_and_quotes_atlassian():
    with requests_mock.Mocker() as m:
        m.post(
            TOKEN_URL,
            status_code=403,
            json={"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
        )
        with pytest.raises(ConfluenceInvalidGrant) as info:
            refresh(requests.Session())
    assert info.value.status_code == 403
    assert "Unknown or invalid refresh token" in info.value.message
    assert RT not in str(info.value) and SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "transient"),
    [
        ({"status_code": 500, "text": "<html>oops</html>", "headers": {"Content-Type": "text/html"}}, True),
        ({"status_code": 503, "json": {"error": "temporarily_unavailable"}}, True),
        ({"status_code": 200, "text": "{not json"}, True),
        ({"status_code": 200, "json": {"token_type": "Bearer"}}, True),
        ({"status_code": 429, "json": {}}, True),
        ({"status_code": 401, "json": {"error": "access_denied", "error_description": "Unauthorized"}}, False),
        ({"status_code": 400, "json": {"error": "unsupported_grant_type"}}, False),
    ],
)
def test_failures_are_classified(kwargs, transient):
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, **kwargs)
        with pytest.raises(ConfluenceAuthError) as info:
            refresh(requests.Session())
    assert not isinstance(info.value, ConfluenceInvalidGrant)
    assert info.value.transient is transient
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, "server_error"), (400, "invalid_request"), (403, "invalid_grant"), (401, "invalid_client")],
)
def test_an_error_description_that_quotes_what_was_sent_is_redacted(status, error):
    """The token endpoint (or a proxy before it) echoes the body it got: the message keeps its words, not the
    refresh token or the client secret (the message goes to logs, to a worker's answer, to a task's log)."""
    echoed = f"refresh_token {RT} of client {SECRET} is not accepted ({RT})"
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, status_code=status, json={"error": error, "error_description": echoed})
        with pytest.raises(ConfluenceAuthError) as info:
            refresh(requests.Session())
    text = str(info.value)
    assert error in text and "is not accepted" in text
    shows_token, shows_secret = RT in text, SECRET in text  # booleans: pytest would print both strings
    assert shows_token is False
    assert shows_secret is False


def test_a_code_echoed_by_the_code_exchange_is_redacted():
    code = "planted-authorization-code-123"
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, status_code=400, json={"error": "invalid_grant", "error_description": f"code {code} used"})
        with pytest.raises(ConfluenceAuthError) as info:
            oauth.exchange_code(
                requests.Session(),
                token_url=TOKEN_URL,
                client_id="cid",
                client_secret=SECRET,
                code=code,
                redirect_uri="https://example.test/cb",
                timeout=5,
            )
    shows_code = code in str(info.value)
    assert shows_code is False and "used" in str(info.value)


def test_accessible_resources_that_quote_the_access_token_are_redacted():
    token = "planted-access-token-456"
    url = "https://api.atlassian.com/oauth/token/accessible-resources"
    with requests_mock.Mocker() as m:
        m.get(url, status_code=401, json={"message": f"token {token} expired"})
        with pytest.raises(ConfluenceAuthError) as info:
            oauth.accessible_resources(
                requests.Session(), api_url="https://api.atlassian.com", access_token=token, timeout=5
            )
    shows_token = token in str(info.value)
    assert shows_token is False and "expired" in str(info.value)


def test_bad_client_credentials_say_where_to_look():
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, status_code=401, json={"error": "access_denied", "error_description": "Unauthorized"})
        with pytest.raises(ConfluenceAuthError, match="Client secret"):
            refresh(requests.Session())


@pytest.mark.parametrize("exc", [requests.ConnectTimeout, requests.ReadTimeout, requests.ConnectionError])
def test_network_failures_are_transient(exc):
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, exc=exc)
        with pytest.raises(ConfluenceAuthError) as info:
            refresh(requests.Session())
    assert info.value.transient


def test_code_exchange_sends_the_redirect_uri():
    with requests_mock.Mocker() as m:
        m.post(TOKEN_URL, json={"access_token": "at", "expires_in": 3600, "refresh_token": "rt"})
        oauth.exchange_code(
            requests.Session(),
            token_url=TOKEN_URL,
            client_id="cid",
            client_secret=SECRET,
            code="c0de",
            redirect_uri="https://x/cb",
            timeout=5,
        )
    assert m.request_history[0].json() == {
        "grant_type": "authorization_code",
        "client_id": "cid",
        "client_secret": SECRET,
        "code": "c0de",
        "redirect_uri": "https://x/cb",
    }


def test_authorization_url_has_every_parameter_atlassian_requires():
    url = oauth.authorization_url(
        auth_url="https://auth.atlassian.com/authorize",
        client_id="cid",
        scope="offline_access read:space:confluence",
        redirect_uri="https://x/cb",
        state="st4te",
    )
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "audience": ["api.atlassian.com"],
        "client_id": ["cid"],
        "scope": ["offline_access read:space:confluence"],
        "redirect_uri": ["https://x/cb"],
        "state": ["st4te"],
        "response_type": ["code"],
        "prompt": ["consent"],
    }


def test_cloud_id_matches_the_site_case_insensitively():
    resources = [{"id": "a", "url": "https://other.atlassian.net"}, {"id": "b", "url": "https://Mine.atlassian.net"}]
    assert oauth.find_cloud_id(resources, "mine.atlassian.net") == "b"


def test_no_matching_site_lists_the_reachable_ones():
    with pytest.raises(ConfluenceAuthError, match="other.atlassian.net"):
        oauth.find_cloud_id([{"id": "a", "url": "https://other.atlassian.net"}], "mine.atlassian.net")


def test_accessible_resources_sends_the_bearer_token():
    with requests_mock.Mocker() as m:
        m.get("https://api.atlassian.com/oauth/token/accessible-resources", json=[{"id": "x", "url": "https://s"}])
        assert oauth.accessible_resources(
            requests.Session(), api_url="https://api.atlassian.com/", access_token="tok", timeout=5
        ) == [{"id": "x", "url": "https://s"}]
    assert m.request_history[0].headers["Authorization"] == "Bearer tok"


def test_accessible_resources_refused():
    with requests_mock.Mocker() as m:
        m.get(
            "https://api.atlassian.com/oauth/token/accessible-resources",
            status_code=401,
            json={"code": 401, "message": "Unauthorized"},
        )
        with pytest.raises(ConfluenceAuthError) as info:
            oauth.accessible_resources(
                requests.Session(), api_url="https://api.atlassian.com", access_token="planted-at-77", timeout=5
            )
    assert info.value.status_code == 401 and "planted-at-77" not in str(info.value)
