"""The consent flow of the API-server plugin: Connect, Atlassian's callback and the status page (Airflow 3).

The test plays the browser: it asks the router (FastAPI's TestClient, logged in with a JWT that Airflow's
SimpleAuthManager signs) for the consent URL, follows it to the emulator's consent screen, and brings the
emulator's redirect back to the callback. Every refusal must leave the connection row byte-identical.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from helpers.airflow_env import airflow_major, put_connection, read_connection_extra, read_variable, scan_for_secrets
from helpers.consent_app import BASE, USERS, _app

pytestmark = pytest.mark.skipif(airflow_major() < 3, reason="the API-server plugin needs Airflow 3")

CALLBACK = f"{BASE}/confluence-oauth/callback"


def raw_extra(conn_id: str) -> str:
    """The connection's extra column as stored: Fernet ciphertext, different after any write."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        return session.execute(text("SELECT extra FROM connection WHERE conn_id = :c"), {"c": conn_id}).scalar_one()


class Api:
    """The router behind a TestClient per Airflow user, and the emulator playing Atlassian."""

    def __init__(self, app: Any, manager: Any, fake: Any) -> None:
        from fastapi.testclient import TestClient

        self._app = app
        self._manager = manager
        self.fake = fake
        self.anonymous = TestClient(app, base_url=BASE, follow_redirects=False)

    def jwt(self, username: str) -> str:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        return self._manager.generate_jwt(SimpleAuthManagerUser(username=username, role=USERS[username]))

    def browser(self, username: str) -> Any:
        """A client carrying the UI's ``_token`` cookie of this user, as a logged-in browser does."""
        from fastapi.testclient import TestClient

        return TestClient(self._app, base_url=BASE, follow_redirects=False, cookies={"_token": self.jwt(username)})

    def consent_url(self, browser: Any, conn_id: str) -> str:
        response = browser.get(f"/confluence-oauth/connect/{conn_id}")
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def atlassian(self, consent_url: str) -> str:
        """Open the consent screen; return the path and query Atlassian sends the browser back to."""
        answer = requests.get(consent_url, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        back = answer.headers["Location"]
        assert back.startswith(BASE), back
        return back[len(BASE) :]

    def start(self, browser: Any, conn_id: str) -> str:
        """Connect and consent: the callback path to deliver."""
        return self.atlassian(self.consent_url(browser, conn_id))


@pytest.fixture
def api(fake_atlassian: Any, airflow_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app

    purge_cached_app()
    yield Api(_app(), init_auth_manager(), fake_atlassian)
    purge_cached_app()


@pytest.fixture
def conn(api: Api) -> str:
    """A connection row with an old grant, the connection store and this server's callback URL."""
    put_connection("consent_conn", api.fake.connection("consent_conn", redirect_uri=CALLBACK))
    return "consent_conn"


def _secrets(api: Api, *extra: str) -> list[str]:
    return [api.fake.client_secret, api.fake.latest_refresh_token or "", *extra]


# -- who may start a consent ------------------------------------------------------------------------


def test_every_route_needs_a_login(api, conn):
    before = raw_extra(conn)
    for path in (
        f"/confluence-oauth/connect/{conn}",
        "/confluence-oauth/callback?code=x&state=y",
        "/confluence-oauth/status",
    ):
        assert api.anonymous.get(path).status_code == 401, path
    assert api.anonymous.get(
        f"/confluence-oauth/connect/{conn}", headers={"Authorization": "Bearer nonsense"}
    ).status_code in (401, 403)
    assert raw_extra(conn) == before


def test_a_user_who_may_not_edit_the_connection_gets_403(api, conn):
    response = api.browser("viewer").get(f"/confluence-oauth/connect/{conn}")
    assert response.status_code == 403
    assert "may not edit connection" in response.text
    assert "location" not in response.headers


def test_connect_redirects_to_the_consent_screen_with_every_parameter(api, conn):
    url = api.consent_url(api.browser("admin"), conn)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == api.fake.auth_url
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["audience"] == "api.atlassian.com"
    assert query["client_id"] == api.fake.client_id
    assert query["scope"].split() == read_connection_extra(conn)["scopes"].split()
    assert query["redirect_uri"] == CALLBACK
    assert (query["response_type"], query["prompt"]) == ("code", "consent")
    assert len(query["state"]) > 40
    bearer = api.anonymous.get(
        f"/confluence-oauth/connect/{conn}", headers={"Authorization": f"Bearer {api.jwt('admin')}"}
    )
    assert bearer.status_code == 302


@pytest.mark.parametrize("redirect_uri", [None, "http://127.0.0.1:8765/callback"])
def test_connect_says_which_callback_url_to_set(api, redirect_uri):
    put_connection("no_cb", api.fake.connection("no_cb", redirect_uri=redirect_uri))
    response = api.browser("admin").get("/confluence-oauth/connect/no_cb")
    assert response.status_code == 400
    assert CALLBACK in response.text
    assert "developer console" in response.text
    assert api.fake.counters["code_exchanges"] == 0


def test_connect_refuses_a_connection_airflow_reads_from_elsewhere(api, monkeypatch):
    conn = api.fake.connection("from_env", redirect_uri=CALLBACK)
    monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV", json.dumps(conn))
    response = api.browser("admin").get("/confluence-oauth/connect/from_env")
    assert response.status_code == 409
    assert "airflow-confluence authorize --conn-id from_env" in response.text


def test_the_plugin_works_inside_airflows_own_api_app(api, conn):
    """Registered through the entry point, mounted by Airflow, the user read by its JWT middleware."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    app = create_app(apps="core")
    assert TestClient(app, base_url=BASE).get(f"/confluence-oauth/connect/{conn}").status_code == 401
    viewer = TestClient(app, base_url=BASE, follow_redirects=False, cookies={"_token": api.jwt("viewer")})
    assert viewer.get(f"/confluence-oauth/connect/{conn}").status_code == 403
    admin = TestClient(app, base_url=BASE, follow_redirects=False, cookies={"_token": api.jwt("admin")})
    page = admin.get(api.start(admin, conn))
    assert page.status_code == 200, page.text
    assert read_connection_extra(conn)["refresh_token"] == api.fake.latest_refresh_token


# -- the callback ---------------------------------------------------------------------------------


def test_consent_saves_the_new_grant_and_the_next_hook_call_uses_it(api, conn, caplog):
    from airflow_provider_confluence.auth.fingerprint import fingerprint
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    caplog.set_level("DEBUG")
    old = read_connection_extra(conn)
    ConfluenceOAuthHook(conn).get_access_token()  # the old grant has an access token and a rotation on record
    assert read_connection_extra(conn)["access_token"]
    started = time.time()
    back = api.start(api.browser("admin"), conn)
    code = parse_qs(urlsplit(back).query)["code"][0]
    page = api.browser("admin").get(back)
    assert page.status_code == 200, page.text
    new_token = api.fake.latest_refresh_token
    extra = read_connection_extra(conn)
    assert extra["refresh_token"] == new_token != old["refresh_token"]
    assert extra["refresh_token_fingerprint"] == fingerprint(new_token)
    assert started <= extra["grant_issued_at"] <= time.time()
    assert "offline_access" in extra["scope"].split()
    assert extra["cloud_id"] == api.fake.cloud_id
    assert not {"access_token", "expires_at", "rotated_at"} & extra.keys()
    assert {k: extra[k] for k in ("scopes", "redirect_uri", "grant_url")} == {
        k: old[k] for k in ("scopes", "redirect_uri", "grant_url")
    }
    assert api.fake.site_url in page.text and "write:page:confluence" in page.text
    assert 'href="../connections"' in page.text
    assert api.fake.counters["code_exchanges"] == 1

    ConfluenceOAuthHook(conn).get_access_token()
    last = api.fake.refresh_log[-1]
    assert (last["grant"], last["ok"], last["was_latest"]) == ("consent", True, True)
    assert read_connection_extra(conn)["refresh_token"] == api.fake.latest_refresh_token
    assert read_connection_extra(conn)["grant_issued_at"] == extra["grant_issued_at"]
    assert scan_for_secrets(page.text + caplog.text, _secrets(api, new_token, code, old["refresh_token"])) == []


def test_a_new_consent_wins_over_the_state_in_the_variable_store(api):
    from airflow_provider_confluence.auth.fingerprint import fingerprint
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    put_connection("var_conn", api.fake.connection("var_conn", state_store="variable", redirect_uri=CALLBACK))
    ConfluenceOAuthHook("var_conn").get_access_token()
    assert (
        json.loads(read_variable("confluence_oauth_token_state__var_conn"))["refresh_token"]
        == api.fake.latest_refresh_token
    )
    assert api.browser("admin").get(api.start(api.browser("admin"), "var_conn")).status_code == 200
    new_token = api.fake.latest_refresh_token
    ConfluenceOAuthHook("var_conn").get_access_token()
    assert api.fake.refresh_log[-1]["grant"] == "consent"
    variable = json.loads(read_variable("confluence_oauth_token_state__var_conn"))
    assert variable["seed_fingerprint"] == fingerprint(new_token)
    assert variable["refresh_token"] == api.fake.latest_refresh_token


def _with_state(path: str, state: str) -> str:
    parts = urlsplit(path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(("", "", parts.path, urlencode({**query, "state": state}), ""))


def _state_of(path: str) -> str:
    return parse_qs(urlsplit(path).query)["state"][0]


def _claims_of(state: str) -> dict[str, Any]:
    payload = state.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _moved_to(state: str, conn_id: str) -> str:
    """The same state (a JWT) with another connection id in its payload and the original signature."""
    header, _, signature = state.split(".")
    payload = {**_claims_of(state), "conn_id": conn_id}
    moved = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{header}.{moved}.{signature}"


def _signed_elsewhere(state: str) -> str:
    from airflow_provider_confluence.auth.consent_state import ConsentStates

    body = _claims_of(state)
    other = ConsentStates("another server's secret")
    return other.issue(conn_id=body["conn_id"], user="admin", binding=body["binding"])


@pytest.mark.parametrize(
    ("forge", "status", "words"),
    [
        (lambda state: "nonsense", 400, "malformed"),
        (
            lambda state: state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB"),
            400,
            "not issued by this Airflow",
        ),
        (_signed_elsewhere, 400, "not issued by this Airflow"),
        (lambda state: _moved_to(state, "other_conn"), 400, "not issued by this Airflow"),
        (lambda state: "", 400, "missing or malformed"),
    ],
    ids=["garbage", "bad-signature", "other-key", "moved-to-another-connection", "missing"],
)
def test_a_forged_state_is_refused_and_changes_nothing(api, conn, forge, status, words):
    put_connection("other_conn", api.fake.connection("other_conn", redirect_uri=CALLBACK))
    before, other_before = raw_extra(conn), raw_extra("other_conn")
    back = api.start(api.browser("admin"), conn)
    page = api.browser("admin").get(_with_state(back, forge(_state_of(back))))
    assert page.status_code == status
    assert words in page.text
    assert (raw_extra(conn), raw_extra("other_conn")) == (before, other_before)
    assert api.fake.counters["code_exchanges"] == 0


def test_a_state_is_used_once(api, conn):
    back = api.start(api.browser("admin"), conn)
    assert api.browser("admin").get(back).status_code == 200
    after_first, token_requests = raw_extra(conn), api.fake.counters["token_requests"]
    replay = api.browser("admin").get(back)
    assert replay.status_code == 400
    assert "This consent answer was already used once" in replay.text
    assert raw_extra(conn) == after_first
    assert api.fake.counters["token_requests"] == token_requests  # refused before the code reached Atlassian


def test_a_state_expires_after_10_minutes(api, conn, monkeypatch):
    from airflow_provider_confluence.plugins import consent

    monkeypatch.setattr(consent, "clock", api.fake.now)
    before = raw_extra(conn)
    back = api.start(api.browser("admin"), conn)
    api.fake.advance(601)
    page = api.browser("admin").get(back)
    assert page.status_code == 400
    assert "more than 10 minutes ago" in page.text
    assert raw_extra(conn) == before
    assert api.fake.counters["code_exchanges"] == 0


def test_another_users_state_is_refused_and_stays_usable_by_its_owner(api, conn):
    before = raw_extra(conn)
    back = api.start(api.browser("admin"), conn)
    page = api.browser("alice").get(back)  # alice may edit connections, but did not start this consent
    assert page.status_code == 403
    assert "another Airflow user" in page.text
    assert raw_extra(conn) == before
    assert api.browser("admin").get(back).status_code == 200
    assert read_connection_extra(conn)["refresh_token"] == api.fake.latest_refresh_token


def test_a_connection_edited_during_the_consent_is_not_written(api, conn):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    back = api.start(api.browser("admin"), conn)
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn).one().host = "https://another.atlassian.net"
    before = raw_extra(conn)
    page = api.browser("admin").get(back)
    assert page.status_code == 409
    assert "was edited" in page.text
    assert raw_extra(conn) == before
    assert api.fake.counters["code_exchanges"] == 0


def test_a_declined_consent_changes_nothing(api, conn):
    before = raw_extra(conn)
    api.fake.deny_consent = True
    back = api.start(api.browser("admin"), conn)
    assert "error=access_denied" in back
    page = api.browser("admin").get(back)
    assert page.status_code == 400
    assert "declined" in page.text
    assert raw_extra(conn) == before
    assert api.fake.counters["code_exchanges"] == 0


def test_a_connection_id_or_an_error_text_holding_html_is_shown_escaped(api, conn):
    """The pages are Jinja2 templates with autoescaping: what a URL or Atlassian's answer holds is text."""
    script = "<script>alert(1)</script>"
    missing = api.browser("admin").get("/confluence-oauth/connect/x<img src=x onerror=alert(1)>")
    assert missing.status_code == 404 and "No such connection" in missing.text
    assert "<img" not in missing.text and "x&lt;img src=x onerror=alert(1)&gt;" in missing.text
    api.fake.deny_consent = True
    back = api.start(api.browser("admin"), conn)
    declined = api.browser("admin").get(_with_query(back, error_description=script))
    assert declined.status_code == 400 and "declined" in declined.text
    assert "<script>" not in declined.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in declined.text
    assert api.fake.counters["code_exchanges"] == 0


def _with_query(path: str, **changes: str) -> str:
    parts = urlsplit(path)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(("", "", parts.path, urlencode({**query, **changes}), ""))


def test_a_code_issued_for_another_redirect_uri_is_refused(api, conn):
    before = raw_extra(conn)
    url = api.consent_url(api.browser("admin"), conn)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["redirect_uri"] = f"{BASE}/elsewhere/confluence-oauth/callback"  # what a misregistered app does
    back = api.atlassian(urlunsplit(parts._replace(query=urlencode(query))))
    assert back.startswith("/elsewhere/")
    page = api.browser("admin").get("/confluence-oauth/callback?" + urlsplit(back).query)
    assert page.status_code == 400
    assert "refused the authorization code" in page.text and CALLBACK in page.text
    assert raw_extra(conn) == before
    assert api.fake.counters["invalid_grants"] == 1


def test_a_grant_without_offline_access_changes_nothing(api, conn):
    before = raw_extra(conn)
    back = api.start(api.browser("admin"), conn)
    api.fake.fail_next(
        200,
        route="POST /oauth/token",
        body={
            "access_token": "an-access-token-without-refresh",
            "expires_in": 3600,
            "token_type": "Bearer",
            "scope": "read:space:confluence read:page:confluence",
        },
    )
    page = api.browser("admin").get(back)
    assert page.status_code == 400
    assert "without offline_access" in page.text
    assert raw_extra(conn) == before
    assert "an-access-token-without-refresh" not in page.text


def test_a_grant_for_another_site_changes_nothing(api):
    conn = api.fake.connection("elsewhere", redirect_uri=CALLBACK)
    put_connection("elsewhere", {**conn, "host": "https://not-this-one.atlassian.net"})
    before = raw_extra("elsewhere")
    page = api.browser("admin").get(api.start(api.browser("admin"), "elsewhere"))
    assert page.status_code == 400
    assert "does not cover the site not-this-one.atlassian.net" in page.text
    assert raw_extra("elsewhere") == before


def test_a_connection_editor_cannot_make_the_api_server_post_the_secret_elsewhere_nor_echo_the_answer(api, conn):
    """The security review's attack 3: an editor points ``grant_url`` at a host of their own, then Connect and
    ``/callback?code=x`` made the API server POST the client secret there, and up to 200 characters of the
    answer's ``error_description`` came back on the page."""
    from airflow_provider_confluence.testing import FakeAtlassian

    marker = "internal-detail-of-the-attackers-host"
    with FakeAtlassian() as attacker:  # a loopback port of the editor's choosing
        attacker.fail_next(
            400, route="POST /oauth/token", body={"error": "invalid_request", "error_description": marker}
        )
        edited = api.fake.connection(
            conn, state_store="connection", redirect_uri=CALLBACK, grant_url=attacker.token_url
        )
        put_connection(conn, edited)
        editor = api.browser("alice")  # may edit connections; sees *** for the secret
        page = editor.get(f"/confluence-oauth/connect/{conn}")
        if page.status_code == 302:
            state = parse_qs(urlsplit(page.headers["location"]).query)["state"][0]
            page = editor.get(f"/confluence-oauth/callback?code=x&state={state}")
        reached = attacker.counters["token_requests"]
    assert reached == 0, "the API server posted the client secret to the editor's host"
    assert marker not in page.text
    assert page.status_code == 400
    assert "[confluence] allowed_endpoint_hosts" in page.text


# -- the status page ------------------------------------------------------------------------------


def test_the_status_page_lists_every_connection_without_tokens(api, conn):
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    assert api.browser("admin").get(api.start(api.browser("admin"), conn)).status_code == 200
    ConfluenceOAuthHook(conn).get_access_token()
    fresh = api.fake.connection("never_connected", redirect_uri=CALLBACK)
    del fresh["extra"]["refresh_token"]
    put_connection("never_connected", fresh)
    put_connection("broken", api.fake.connection("broken", state_store="<script>alert(1)</script>"))
    page = api.browser("admin").get("/confluence-oauth/status")
    assert page.status_code == 200
    text = page.text
    row = text[text.index("<code>consent_conn</code>") :]
    row = row[: row.index("</tr>")]
    assert api.fake.site_url in row and ">connection (token broker)<" in row and ">database<" in row
    assert ">364<" in row or ">365<" in row
    assert 'href="connect/consent_conn" target="_top">Reconnect<' in row
    assert 'href="connect/never_connected" target="_top">Connect<' in text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    secrets = _secrets(api, read_connection_extra(conn)["access_token"], read_connection_extra(conn)["refresh_token"])
    assert scan_for_secrets(text, secrets) == []


def test_another_team_can_neither_connect_nor_see_a_teams_connection(api, conn, monkeypatch):
    """Multi-team mode: the plugin asks Airflow's auth manager about the connection's own team, for Connect and
    the status page; a user the auth manager does not authorize for that team sees and changes nothing.

    (The plugin's own connection lookups pass no team yet, so a team's connection cannot be connected here even
    by its team: it fails closed. SECURITY.md says so.)"""
    from airflow.models.connection import Connection
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW__CORE__MULTI_TEAM", "True")
    with create_session() as session:
        if session.get(Team, "team_a") is None:
            session.add(Team(name="team_a"))
            session.flush()
        session.query(Connection).filter(Connection.conn_id == conn).one().team_name = "team_a"
    team_of = {"admin": "team_a", "alice": "team_b"}
    asked: list[str | None] = []  # the team asked about for this connection (the page also lists others)

    def is_authorized_connection(*, method: str, details: Any, user: Any, **_: Any) -> bool:
        if details.conn_id == conn:
            asked.append(details.team_name)
        return details.team_name == team_of.get(user.get_name())

    monkeypatch.setattr(api._manager, "is_authorized_connection", is_authorized_connection)
    before = raw_extra(conn)
    other_team = api.browser("alice")
    refused = other_team.get(f"/confluence-oauth/connect/{conn}")
    assert refused.status_code == 403 and "location" not in refused.headers
    assert f"<code>{conn}</code>" not in other_team.get("/confluence-oauth/status").text
    assert raw_extra(conn) == before and api.fake.counters["token_requests"] == 0
    assert asked and set(asked) == {"team_a"}


def test_the_status_page_shows_only_what_the_user_may_see(api, conn):
    assert "consent_conn" not in api.browser("viewer").get("/confluence-oauth/status").text
    page = api.browser("alice").get("/confluence-oauth/status")
    assert "consent_conn" in page.text and "Connect<" in page.text


def test_a_state_whose_last_character_changed_is_refused_even_when_it_decodes_to_the_same_bytes():
    """The HMAC's base64 text has unused low bits in its last character: every textual change must count."""
    import base64

    from airflow_provider_confluence.auth.consent_state import ConsentStates
    from airflow_provider_confluence.exceptions import ConfluenceAuthError

    def decode(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    states = ConsentStates(b"k" * 32, clock=lambda: 1_000_000.0)
    body, _, mac = states.issue(conn_id="c", user="u", binding="b").rpartition(".")
    alike = [
        c
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        if c != mac[-1] and decode(mac[:-1] + c) == decode(mac)
    ]
    assert alike, "the last character carries unused bits"
    with pytest.raises(ConfluenceAuthError) as info:
        states.verify(f"{body}.{mac[:-1]}{alike[0]}", user="u")
    assert info.value.error == "forged_state"
