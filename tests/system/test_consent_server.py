"""The consent flow end to end through a real ``airflow api-server`` on PostgreSQL, against the emulator.

test_consent.py drives the plugin's routes in-process (TestClient); here the test is the browser of two real
Airflow users in front of a real API server process, which loads the provider's plugin through the
``airflow.plugins`` entry point of the installed wheel, and of the emulator playing ``auth.atlassian.com``.
Every redirect is followed by hand, so that each hop is checked.

How a user logs in (Airflow 3.3 source, read for this test):

* ``SimpleAuthManager.get_users`` (``airflow/api_fastapi/auth/managers/simple/simple_auth_manager.py``) reads
  ``[core] simple_auth_manager_users`` as ``user:role`` pairs; ``init()`` (run by the API server at start)
  writes a random password for each user not yet in ``[core] simple_auth_manager_passwords_file`` into that
  JSON file (``{"user": "password"}``); ``get_passwords`` reads it back.
* ``GET /api/v2/auth/login`` (core API, ``routes/public/auth.py``) redirects to the auth manager's login page,
  ``/auth/login`` of the SimpleAuthManager's own app (``get_url_login``), a JavaScript page. Its script posts
  ``{"username", "password"}`` as JSON to ``POST /auth/token`` (``simple/routes/login.py`` ->
  ``SimpleAuthManagerLogin.create_token``: 201 with ``access_token``, a JWT signed by the auth manager, 401 on
  a wrong password), then sets the ``_token`` cookie itself (path ``/``, no ``Set-Cookie`` from the server).
  This test does the same: the POST, then the cookie in its ``requests.Session``.
* ``airflow.api_fastapi.core_api.security.get_user``, which every route of the plugin depends on, takes the
  user from ``Authorization: Bearer`` or else from the ``_token`` cookie (401 without either); the
  ``JWTRefreshMiddleware`` of the root app reads the same cookie first.
* ``SimpleAuthManager.is_authorized_connection`` allows ``OP`` and ``ADMIN`` (any method); a ``viewer``
  may not even read a connection, so Connect answers it 403.

The emulator only accepts this server's callback URL (``registered_redirect_uris``), as the developer console
does. The connection row is compared as stored (its Fernet-encrypted ``extra`` column, read with psycopg2):
every refusal must leave it byte-identical. The decrypted extra is read through tests/helpers/airflow_worker.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from airflow_provider_confluence.testing import FakeAtlassian, find_leaks
from helpers.airflow_env import airflow_major, airflow_version
from helpers.api_server import answers, api_server
from helpers.deployment import helper as run_helper
from helpers.processes import api_server_env, free_port, fresh_postgres_database, libpq_url

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow_server,
    pytest.mark.skipif(airflow_major() < 3, reason="the consent flow runs in the Airflow 3 API server"),
]

USERS = {"admin": "admin", "viewer": "viewer"}
SERVER_START_TIMEOUT = 180.0
HTTP_TIMEOUT = 30.0
CONFIG_KEYS = ("scopes", "redirect_uri", "grant_url", "auth_url", "api_url", "state_store")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAtlassian]:
    with FakeAtlassian() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def server(fake: FakeAtlassian, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh PostgreSQL metadata DB and a real ``airflow api-server`` with two users; stopped after the module."""
    home = tmp_path_factory.mktemp("consent-server-home")
    (home / "plugins").mkdir()
    passwords_file = home / "simple_auth_manager_passwords.json"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **api_server_env(home, port),  # conftest's FERNET_KEY: the helper processes decrypt what the server encrypts
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # empty: the plugin comes from the entry point
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{user}:{role}" for user, role in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": fake.allowed_endpoint_hosts,
    }
    with fresh_postgres_database(f"apc_consent_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        import psycopg2

        def ready() -> bool:
            """The plugin is mounted (its status page wants a login) and the passwords are written."""
            if not (answers("GET", f"{base}/confluence-oauth/status", 401) and passwords_file.exists()):
                return False
            try:
                passwords.update(json.loads(passwords_file.read_text() or "{}"))
            except ValueError:
                return False
            return set(USERS) <= set(passwords)

        passwords: dict[str, str] = {}
        with api_server(env, home, port, ready, SERVER_START_TIMEOUT, "plugin served with its users") as log_path:
            db = psycopg2.connect(libpq_url(database_url))
            db.autocommit = True
            callback = f"{base}/confluence-oauth/callback"
            fake.registered_redirect_uris = [callback]  # the app's Callback URL in the developer console
            try:
                yield {
                    "env": env,
                    "base": base,
                    "callback": callback,
                    "passwords": passwords,
                    "log": log_path,
                    "db": db,
                }
            finally:
                db.close()


def helper(server: dict[str, Any], *args: str) -> str:
    """One command of tests/helpers/airflow_worker.py against the server's database."""
    return run_helper(server["env"], *args)


def read_extra(server: dict[str, Any], conn_id: str) -> dict[str, Any]:
    """The connection's extra, decrypted by an Airflow process on the same database."""
    return json.loads(helper(server, "read-extra", conn_id))


def raw_extra(server: dict[str, Any], conn_id: str) -> str:
    """The extra column as stored: Fernet ciphertext, different after any write."""
    with server["db"].cursor() as cursor:
        cursor.execute("SELECT extra FROM connection WHERE conn_id = %s", (conn_id,))
        row = cursor.fetchone()
    assert row is not None, f"no connection row {conn_id!r}"
    return str(row[0])


def put_connection(server: dict[str, Any], fake: FakeAtlassian, conn_id: str) -> None:
    """A connection row of a grant made earlier: the connection store and this server's callback URL."""
    connection = fake.connection(conn_id, redirect_uri=server["callback"])
    helper(server, "put-connection", conn_id, json.dumps(connection))


def login(server: dict[str, Any], username: str) -> requests.Session:
    """A browser session of ``username``, logged in as Airflow's login page does it (see the module docstring)."""
    base = server["base"]
    browser = requests.Session()
    start = browser.get(
        f"{base}/api/v2/auth/login",
        params={"next": f"{base}/confluence-oauth/status"},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert start.status_code == 307, start.text
    assert start.headers["location"].startswith("/auth/login?next="), start.headers["location"]
    page = browser.get(base + start.headers["location"], allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert page.status_code == 200 and "<html" in page.text.lower(), page.text[:500]
    wrong = browser.post(
        f"{base}/auth/token", json={"username": username, "password": "not-the-password"}, timeout=HTTP_TIMEOUT
    )
    assert wrong.status_code == 401, wrong.text
    answer = browser.post(
        f"{base}/auth/token",
        json={"username": username, "password": server["passwords"][username]},
        timeout=HTTP_TIMEOUT,
    )
    assert answer.status_code == 201, answer.text
    assert "_token" not in answer.cookies  # the login page's script sets the cookie, not the server
    browser.cookies.set("_token", answer.json()["access_token"], domain="127.0.0.1", path="/")
    if airflow_version() < (3, 1):
        # Airflow 3.0's get_user reads only the Authorization header (no cookie), and its UI moves the cookie into
        # the browser's local storage: a browser cannot reach the plugin's pages there (docs/compatibility.md). An
        # API client can, which is how the server side of the flow is still checked on 3.0.
        browser.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return browser


@pytest.fixture(scope="module")
def admin(server: dict[str, Any]) -> requests.Session:
    return login(server, "admin")


@pytest.fixture(scope="module")
def viewer(server: dict[str, Any]) -> requests.Session:
    return login(server, "viewer")


def connect(browser: requests.Session, server: dict[str, Any], conn_id: str) -> str:
    """``/connect`` of the plugin: the consent URL it redirects the browser to."""
    response = browser.get(
        f"{server['base']}/confluence-oauth/connect/{conn_id}", allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 302, response.text
    assert response.headers.get("cache-control") == "no-store"
    return response.headers["location"]


def consent_screen(fake: FakeAtlassian, server: dict[str, Any], consent_url: str) -> str:
    """The emulator's ``/authorize`` (no Airflow cookie goes there): the callback URL it sends the browser to."""
    assert consent_url.startswith(fake.auth_url + "?"), consent_url
    answer = requests.get(consent_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 302, answer.text
    back = answer.headers["location"]
    assert back.startswith(server["callback"] + "?"), back
    return back


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode({**query_of(url), "state": state})))


def deliver(browser: requests.Session, url: str) -> requests.Response:
    """The browser arriving at the callback URL; the plugin answers a page, never a redirect."""
    page = browser.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert "location" not in page.headers
    return page


def server_log(server: dict[str, Any], offset: int = 0) -> str:
    return server["log"].read_text(errors="replace")[offset:]


# -- who may start a consent ------------------------------------------------------------------------


def test_no_login_is_401_and_a_viewer_gets_403(server, fake, admin, viewer):
    conn_id = "consent_e2e_rights"
    put_connection(server, fake, conn_id)
    before = raw_extra(server, conn_id)
    base = server["base"]
    for path in (
        f"/confluence-oauth/connect/{conn_id}",
        "/confluence-oauth/callback?code=x&state=y",
        "/confluence-oauth/status",
    ):
        response = requests.get(base + path, allow_redirects=False, timeout=HTTP_TIMEOUT)
        assert response.status_code == 401, (path, response.text)
    forged_jwt = requests.get(
        f"{base}/confluence-oauth/connect/{conn_id}",
        allow_redirects=False,
        headers={"Authorization": "Bearer not.a.jwt"},
        timeout=HTTP_TIMEOUT,
    )
    assert forged_jwt.status_code in (401, 403) and "location" not in forged_jwt.headers

    authorize_calls = [r for r in fake.requests if r["path"] == "/authorize"]
    refused = viewer.get(f"{base}/confluence-oauth/connect/{conn_id}", allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert refused.status_code == 403, refused.text
    assert "location" not in refused.headers
    assert "may not edit connection" in refused.text and conn_id in refused.text
    assert [r for r in fake.requests if r["path"] == "/authorize"] == authorize_calls  # never sent to Atlassian
    listing = viewer.get(f"{base}/confluence-oauth/status", timeout=HTTP_TIMEOUT)
    assert listing.status_code == 200 and conn_id not in listing.text  # a viewer may not even read it

    # The viewer cannot finish the admin's consent either, and trying does not use the admin's state up.
    exchanges = fake.counters["code_exchanges"]
    back = consent_screen(fake, server, connect(admin, server, conn_id))
    hijack = deliver(viewer, back)
    assert hijack.status_code == 403, hijack.text
    assert "another Airflow user" in hijack.text
    assert raw_extra(server, conn_id) == before
    assert fake.counters["code_exchanges"] == exchanges
    status = deliver(admin, back).status_code  # (not in the assert: pytest would print the URL, code included)
    assert status == 200
    assert raw_extra(server, conn_id) != before

    # The bearer token of the same login works as well as the cookie (the CLI's and scripts' way).
    token = admin.cookies.get("_token")
    bearer = requests.get(
        f"{base}/confluence-oauth/connect/{conn_id}",
        allow_redirects=False,
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT,
    )
    assert bearer.status_code == 302 and bearer.headers["location"].startswith(fake.auth_url)


# -- the happy path ---------------------------------------------------------------------------------


def test_connect_consent_and_callback_save_the_new_grant(server, fake, admin):
    conn_id = "consent_e2e_happy"
    put_connection(server, fake, conn_id)
    helper(server, "refresh", conn_id)  # the old grant was used: an access token and a rotation are on record
    old = read_extra(server, conn_id)
    assert old["access_token"] and old["expires_at"] and old["refresh_token"] == fake.latest_refresh_token
    offset = len(server_log(server))
    exchanges = fake.counters["code_exchanges"]
    started = time.time()

    consent_url = connect(admin, server, conn_id)
    parts = urlsplit(consent_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == fake.auth_url
    query = query_of(consent_url)
    assert set(query) == {"audience", "client_id", "scope", "redirect_uri", "state", "response_type", "prompt"}
    assert query["audience"] == "api.atlassian.com"
    assert query["client_id"] == fake.client_id
    assert query["scope"].split() == old["scopes"].split() and "offline_access" in query["scope"].split()
    assert query["redirect_uri"] == server["callback"]
    assert (query["response_type"], query["prompt"]) == ("code", "consent")
    state = query["state"]
    assert len(state) > 40 and "." in state

    back = consent_screen(fake, server, consent_url)
    answer = query_of(back)
    assert answer["state"] == state and answer["code"]

    page = deliver(admin, back)
    assert page.status_code == 200, page.text
    assert "Connected to Confluence" in page.text
    assert fake.site_url in page.text
    for scope in query["scope"].split():
        assert f"<code>{scope}</code>" in page.text
    assert fake.counters["code_exchanges"] == exchanges + 1

    extra = read_extra(server, conn_id)
    new_token = fake.latest_refresh_token
    assert extra["refresh_token"] == new_token != old["refresh_token"]
    assert started - 1 <= extra["grant_issued_at"] <= time.time() + 1
    assert "offline_access" in extra["scope"].split()
    assert extra["cloud_id"] == fake.cloud_id
    assert not {"access_token", "expires_at", "rotated_at"} & extra.keys(), "a token of the old grant stayed"
    assert {k: extra.get(k) for k in CONFIG_KEYS} == {k: old.get(k) for k in CONFIG_KEYS}

    secrets_seen = {fake.client_secret, new_token, answer["code"], old["refresh_token"], old["access_token"]}
    clean_page = not find_leaks(page.text, secrets_seen)  # a bare bool: a failure must not print the secret
    assert clean_page, "a secret in clear text in the success page"
    logged = server_log(server, offset)
    assert f"connected '{conn_id}' to {fake.site_url}" in logged
    clean_log = not find_leaks(logged, secrets_seen)
    assert clean_log, "a token or the client secret in clear text in the api-server output"


def test_the_authorization_code_is_not_in_the_api_servers_access_log(server, fake, admin):
    """Airflow's access log prints each request's query string, redacting only sensitive-looking keys and
    values registered with the core ``mask_secret``; ``code`` is neither unless the callback masks it first."""
    conn_id = "consent_e2e_access_log"
    put_connection(server, fake, conn_id)
    offset = len(server_log(server))
    back = consent_screen(fake, server, connect(admin, server, conn_id))
    code = query_of(back)["code"]
    status = deliver(admin, back).status_code  # (not in the assert: pytest would print the URL, code included)
    assert status == 200
    deadline = time.monotonic() + 10
    while "/confluence-oauth/callback" not in server_log(server, offset) and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = server_log(server, offset)
    assert "/confluence-oauth/callback" in logged
    clean = not find_leaks(logged, {code})  # a bare bool: the failure must not print the code
    assert clean, "the authorization code is in clear text in the api-server's access log"


# -- refusals ---------------------------------------------------------------------------------------


def _tampered(state: str) -> str:
    """The same state with one character of its signature changed."""
    last = state[-1]
    return state[:-1] + ("A" if last != "A" else "B")


def _moved(state: str, conn_id: str) -> str:
    """The same signature over a payload that names another connection."""
    import base64

    header, body, signature = state.split(".")  # a JWT
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["conn_id"] = conn_id
    moved = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{header}.{moved}.{signature}"


@pytest.mark.every_line
def test_a_forged_or_replayed_state_is_refused_and_changes_nothing(server, fake, admin):
    conn_id, other = "consent_e2e_forged", "consent_e2e_other"
    put_connection(server, fake, conn_id)
    put_connection(server, fake, other)
    before, other_before = raw_extra(server, conn_id), raw_extra(server, other)
    back = consent_screen(fake, server, connect(admin, server, conn_id))
    state = query_of(back)["state"]
    exchanges, token_requests = fake.counters["code_exchanges"], fake.counters["token_requests"]

    for forged, words in [
        (_tampered(state), "not issued by this Airflow"),
        (_moved(state, other), "not issued by this Airflow"),
        ("nonsense", "malformed"),
        ("", "missing or malformed"),
    ]:
        page = deliver(admin, with_state(back, forged))
        assert page.status_code == 400, page.text
        assert "Consent refused" in page.text and words in page.text
        assert (raw_extra(server, conn_id), raw_extra(server, other)) == (before, other_before)
        assert fake.counters["code_exchanges"] == exchanges  # refused before the code reached Atlassian

    # The forgeries used nothing up: the real answer still goes through, once.
    status = deliver(admin, back).status_code  # (not in the assert: pytest would print the URL, code included)
    assert status == 200
    after = raw_extra(server, conn_id)
    assert after != before and raw_extra(server, other) == other_before
    assert read_extra(server, conn_id)["refresh_token"] == fake.latest_refresh_token
    token_requests = fake.counters["token_requests"]

    replay = deliver(admin, back)
    assert replay.status_code == 400, replay.text
    assert "already used once" in replay.text and "nothing was changed" in replay.text
    assert raw_extra(server, conn_id) == after
    assert fake.counters["token_requests"] == token_requests  # the used code never went to Atlassian again


def test_a_declined_consent_changes_nothing(server, fake, admin):
    conn_id = "consent_e2e_declined"
    put_connection(server, fake, conn_id)
    before = raw_extra(server, conn_id)
    exchanges = fake.counters["code_exchanges"]
    fake.deny_consent = True
    try:
        back = consent_screen(fake, server, connect(admin, server, conn_id))
    finally:
        fake.deny_consent = False
    answer = query_of(back)
    assert answer["error"] == "access_denied" and "code" not in answer
    page = deliver(admin, back)
    assert page.status_code == 400, page.text
    assert "Consent declined" in page.text and "Nothing was changed" in page.text
    assert raw_extra(server, conn_id) == before
    assert fake.counters["code_exchanges"] == exchanges
