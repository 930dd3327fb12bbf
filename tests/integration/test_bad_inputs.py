"""The catalogue of bad inputs: what a user gets wrong, and the exact error they see.

``BAD_INPUTS`` is the ONE list: each row runs its scenario against the emulator and a real connection (a row of
the session's SQLite metadata database unless it says otherwise), checks that nothing was lost (the stored
token untouched, or the rotated one saved; no page created or overwritten; no request sent when the input is
refused up front), and returns the error. The generic test checks the exception class and that the message
says both what is wrong and what to do. The docs' "Bad inputs" page (``docs/bad-inputs.md``) holds the table
rendered from this list, and a test fails when the two differ (``python tests/integration/test_bad_inputs.py``
prints the table).

The token broker's row runs on Airflow 3 only (the broker lives in the Airflow 3 API server).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceAuthError,
    ConfluenceBrokerError,
    ConfluenceConfigError,
    ConfluenceNotFound,
    ConfluencePageExists,
    ConfluencePageMissing,
    ConfluenceReauthorizationRequired,
    ConfluenceScopeError,
    ConfluenceSpaceMissing,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.notifications.confluence import ConfluenceNotifier
from airflow_provider_confluence.operators.confluence import (
    ConfluenceAddCommentOperator,
    ConfluenceCreatePageOperator,
    ConfluenceDownloadAttachmentOperator,
    ConfluenceExportPageOperator,
    ConfluenceGetPageOperator,
    ConfluenceGetSpacesOperator,
    ConfluenceSearchOperator,
    ConfluenceUpdatePageOperator,
    ConfluenceUploadAttachmentOperator,
)
from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import AIRFLOW_HOME, airflow_major, put_connection, read_connection_extra, read_variable

pytestmark = pytest.mark.airflow2

REPO = next(p for p in Path(__file__).resolve().parents if (p / "mkdocs.yml").is_file())
BAD_INPUTS_PAGE = REPO / "docs" / "bad-inputs.md"
WARNING = "warning in the task log"
PAGE = "page in the browser (400)"
COMMAND = "airflow-confluence exits 1"
TEXT_OUTCOMES = (WARNING, PAGE, COMMAND)  # rows whose outcome is a text someone reads, not an exception
DAY = 86400


@dataclass(frozen=True)
class Env:
    """What a row's scenario works with."""

    fake: Any
    monkeypatch: pytest.MonkeyPatch
    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]

    def put(
        self,
        conn_id: str = "bad_input",
        *,
        fields: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        grant: str = DEFAULT_SCOPES,
        **extra: Any,
    ) -> str:
        """A connection row for the emulator (connection store) with these fields and extras changed.

        :param grant: the scopes the person consented to (the grant's, whatever the ``scopes`` extra says).
        """
        refresh_token = self.fake.issue_grant(grant, label=conn_id)
        conn = self.fake.connection(conn_id, refresh_token, **{"state_store": "connection", **extra})
        conn.update(fields or {})
        for name in drop:
            del conn["extra"][name]
        put_connection(conn_id, conn)
        return conn_id

    def put_raw_extra(self, conn_id: str, text: str) -> str:
        """A connection whose Extra is ``text`` verbatim (not JSON, or not an object).

        Airflow 2 stores it as it is. Airflow 3 refuses to save such a row, but a task still gets it from a
        secrets backend, through the Task SDK's ``Connection``: that is what the hook is given here.
        """
        conn = self.fake.connection(conn_id)
        if airflow_major() >= 3:
            from airflow.sdk import Connection

            sdk_conn = Connection(
                conn_id=conn_id,
                conn_type=conn["conn_type"],
                host=conn["host"],
                login=conn["login"],
                password=conn["password"],
                extra=text,
            )
            self.monkeypatch.setattr(
                "airflow_provider_confluence.hooks.confluence.get_connection", lambda wanted: sdk_conn
            )
            return conn_id
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            session.add(
                Connection(
                    conn_id=conn_id,
                    conn_type=conn["conn_type"],
                    host=conn["host"],
                    login=conn["login"],
                    password=conn["password"],
                    extra=text,
                )
            )
        return conn_id

    @contextmanager
    def nothing_sent(self, conn_id: str | None = None) -> Iterator[None]:
        """Refused before any request: no token request, no API call, and the stored extra byte-identical."""
        before = raw_extra(conn_id) if conn_id else None
        counters = self.fake.counters
        yield
        after = self.fake.counters
        assert after["token_requests"] == counters["token_requests"]
        assert after["api_calls"] == counters["api_calls"]
        if conn_id:
            assert raw_extra(conn_id) == before

    @contextmanager
    def token_untouched(self, conn_id: str) -> Iterator[None]:
        """The grant failed: the stored extra is byte-identical afterwards (nothing deleted or rewritten)."""
        before = raw_extra(conn_id)
        yield
        assert raw_extra(conn_id) == before

    @contextmanager
    def no_page_written(self, conn_id: str) -> Iterator[None]:
        """No page created or changed, and the rotated token (if any) saved: the store holds the newest one."""
        pages = [(p["id"], p["title"], p["version"]["number"]) for p in self.fake.pages]
        yield
        assert [(p["id"], p["title"], p["version"]["number"]) for p in self.fake.pages] == pages
        assert read_connection_extra(conn_id)["refresh_token"] == self.fake.latest_refresh_token
        assert self.fake.counters["invalid_grants"] == 0

    @contextmanager
    def no_label_added(self) -> Iterator[None]:
        """Every page carries the same labels afterwards, and no label was sent (no v1 label POST)."""
        before = {page["id"]: self.fake.page_labels(page["id"]) for page in self.fake.pages}
        yield
        assert {page["id"]: self.fake.page_labels(page["id"]) for page in self.fake.pages} == before
        assert not [r for r in self.fake.requests if r.get("method") == "POST" and "/label" in str(r.get("path"))]

    @contextmanager
    def nothing_attached(self) -> Iterator[None]:
        """No attachment created or given a new version on any page."""

        def attachments() -> dict[str, list[tuple[str, int]]]:
            return {
                page["id"]: [(att["id"], att["version"]["number"]) for att in self.fake.attachments(page["id"])]
                for page in self.fake.pages
            }

        before = attachments()
        yield
        assert attachments() == before


def raw_extra(conn_id: str) -> str | None:
    """The stored extra as it is in the database (ciphertext: it changes on any write)."""
    with sqlite3.connect(AIRFLOW_HOME / "airflow.db") as db:
        row = db.execute("SELECT extra FROM connection WHERE conn_id = ?", (conn_id,)).fetchone()
    return row[0] if row else None


def raises(kind: type[Exception], call: Callable[[], Any]) -> Exception:
    with pytest.raises(kind) as info:
        call()
    return info.value


def token_of(conn_id: str) -> Callable[[], str]:
    return lambda: ConfluenceOAuthHook(conn_id).get_access_token()


def create_page(conn_id: str, **kwargs: Any) -> Callable[[], Any]:
    kwargs = {"space_key": "DEMO", "title": "Report", "body": "<p>x</p>", **kwargs}
    return lambda: ConfluenceOAuthHook(conn_id).create_page(**kwargs)


# -- the scenarios ------------------------------------------------------------------------------------


def refused_settings(fields: dict[str, Any] | None = None, **extra: Any) -> Callable[[Env], Exception]:
    """A connection refused when its settings are read: nothing is sent, nothing is written."""

    def run(env: Env) -> Exception:
        conn_id = env.put(fields=fields, **extra)
        with env.nothing_sent(conn_id):
            return raises(ConfluenceConfigError, token_of(conn_id))

    return run


def raw_extra_refused(text: str) -> Callable[[Env], Exception]:
    def run(env: Env) -> Exception:
        conn_id = env.put_raw_extra("raw_extra", text)
        with env.nothing_sent():
            return raises(ConfluenceConfigError, token_of(conn_id))

    return run


def unlisted_allow_list_entry(env: Env) -> Exception:
    env.monkeypatch.setenv(
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS", f"{env.fake.allowed_endpoint_hosts},https://proxy.example"
    )
    conn_id = env.put()
    with env.nothing_sent(conn_id):
        return raises(ConfluenceConfigError, token_of(conn_id))


def edited_after_rotations(env: Env) -> Exception:
    """The site (or the client ID, token URL, API URL) was edited and the token state cleared: the rotation
    journal's newest token belongs to the old settings and is not handed over."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = env.put("edited_conn")
    ConfluenceOAuthHook(conn_id).get_access_token()
    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one()
        row.host = "https://other-site.atlassian.net"
        row.set_extra(
            json.dumps(
                {
                    k: v
                    for k, v in json.loads(row.get_extra()).items()
                    if k in ("scopes", "auth_url", "grant_url", "api_url", "state_store")
                }
            )
        )
    with env.nothing_sent(conn_id):
        return raises(ConfluenceReauthorizationRequired, token_of(conn_id))


def connect_to_unlisted_token_url(env: Env) -> str:
    """Connect in the Airflow 3 UI, on a connection whose grant_url the deployment does not list: the page says
    why, and the API server sends nothing (no consent starts, no code is ever exchanged there)."""
    if airflow_major() < 3:
        pytest.skip("Connect is a page of the Airflow 3 API server")
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from helpers.consent_app import BASE, USERS, _app

    env.monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    env.monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
    conn_id = env.put(
        "connect_unlisted",
        grant_url="https://attacker.example/oauth/token",
        redirect_uri=f"{BASE}/confluence-oauth/callback",
    )
    purge_cached_app()
    try:
        jwt = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="alice", role=USERS["alice"]))
        browser = TestClient(_app(), base_url=BASE, follow_redirects=False, cookies={"_token": jwt})
        with env.nothing_sent(conn_id):
            page = browser.get(f"/confluence-oauth/connect/{conn_id}")
    finally:
        purge_cached_app()
    assert page.status_code == 400 and "location" not in page.headers
    return page.text


def silent_callback_client(env: Env) -> str:
    """``authorize --timeout 1`` while a local process holds a silent connection to its callback port."""
    import socket
    import threading

    from airflow_provider_confluence.cli import main
    from helpers.processes import free_port

    port = free_port()
    conn_id = env.put("cli_silent", redirect_uri=f"http://127.0.0.1:{port}/callback")
    done = threading.Event()

    def hold_a_silent_connection() -> None:
        while not done.is_set():  # until the command listens; then connected, silent, until it has returned
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    done.wait(60)  # bounded, so that a regression cannot hang the run (test_security.py times it)
                return
            except OSError:
                done.wait(0.05)

    client = threading.Thread(target=hold_a_silent_connection, daemon=True)
    client.start()
    try:
        with env.nothing_sent(conn_id):
            code = main(["authorize", "--conn-id", conn_id, "--timeout", "1"])
    finally:
        done.set()
        client.join(timeout=10)
    assert code == 1
    return env.capsys.readouterr().err


def redirected(route: str, status: int, call: Callable[[str], Callable[[], Any]]) -> Callable[[Env], Exception]:
    """Confluence (or something in between) answers with a redirect to another host: nothing is sent there."""

    def run(env: Env) -> Exception:
        from helpers.capture import CaptureServer

        env.fake.add_space("DEMO")
        conn_id = env.put()
        ConfluenceOAuthHook(conn_id).get_space_id("DEMO")  # the cloud id and a token, on record
        with CaptureServer(status=200, body={"results": []}) as elsewhere, env.no_page_written(conn_id):
            env.fake.fail_next(status, route=route, headers={"Location": f"{elsewhere.url}/wiki/moved"})
            error = raises(ConfluenceApiError, call(conn_id))
        assert elsewhere.requests == []
        return error

    return run


def another_site(env: Env) -> Exception:
    env.fake.add_space("DEMO")
    conn_id = env.put(fields={"host": "https://other-site.atlassian.net"})
    with env.no_page_written(conn_id):
        return raises(ConfluenceAuthError, lambda: ConfluenceOAuthHook(conn_id).get_space_id("DEMO"))


def broker_refuses_the_signature(env: Env) -> Exception:
    """A worker whose connection has another client secret than the API server's: the broker answers 401."""
    if airflow_major() < 3:
        pytest.skip("the token broker runs in the Airflow 3 API server")
    from airflow.models.connection import Connection

    from airflow_provider_confluence.auth.stores import choice as stores
    from helpers.broker import running_broker

    with running_broker() as url:
        conn_id = env.put("bad_broker", state_store="broker", broker_url=url)
        seen_by_worker = env.fake.connection(conn_id, state_store="broker", broker_url=url)
        worker_conn = Connection(
            conn_id=conn_id,
            conn_type=seen_by_worker["conn_type"],
            host=seen_by_worker["host"],
            login=seen_by_worker["login"],
            password="a-different-client-secret-0123456789",
            extra=json.dumps(seen_by_worker["extra"]),
        )
        env.monkeypatch.setattr(stores, "orm_available", lambda: False)  # this process plays a task worker
        env.monkeypatch.setattr(
            "airflow_provider_confluence.hooks.confluence.get_connection", lambda wanted: worker_conn
        )
        with env.nothing_sent(conn_id):
            return raises(ConfluenceBrokerError, token_of(conn_id))


def classic_scopes_warning(env: Env) -> str:
    conn_id = env.put(scopes="offline_access read:confluence-space.summary write:confluence-content")
    with env.nothing_sent(conn_id), env.caplog.at_level(logging.WARNING):
        ConfluenceOAuthHook(conn_id).settings  # noqa: B018 - reading the settings logs the advice
    captured = env.capsys.readouterr()  # Airflow 3 logs through structlog, to stdout
    return "\n".join((env.caplog.text, captured.out, captured.err))


def classic_scopes_call(env: Env) -> Exception:
    env.fake.add_space("DEMO")
    classic = "offline_access read:confluence-space.summary"
    conn_id = env.put(grant=classic, scopes=classic)
    with env.no_page_written(conn_id):
        return raises(ConfluenceScopeError, lambda: ConfluenceOAuthHook(conn_id).get_space_id("DEMO"))


def env_var_with_connection_store(env: Env) -> Exception:
    conn = env.fake.connection("from_env_var", state_store="connection")
    env.monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV_VAR", json.dumps(conn))
    before = read_variable("confluence_oauth_token_state__from_env_var")  # another module's test may have left one
    with env.nothing_sent():
        error = raises(ConfluenceConfigError, token_of("from_env_var"))
    assert read_variable("confluence_oauth_token_state__from_env_var") == before and raw_extra("from_env_var") is None
    return error


def wrong_client_secret(env: Env) -> Exception:
    conn_id = env.put(fields={"password": "not-the-client-secret"})
    with env.token_untouched(conn_id):
        error = raises(ConfluenceAuthError, token_of(conn_id))
    assert env.fake.counters["client_auth_failures"] == 1 and env.fake.counters["refreshes"] == 0
    return error


def no_refresh_token(env: Env) -> Exception:
    conn_id = env.put(drop=("refresh_token",))
    with env.nothing_sent(conn_id):
        return raises(ConfluenceReauthorizationRequired, token_of(conn_id))


def dead_grant(reason: str) -> Callable[[Env], Exception]:
    """The grant died (``reason`` in the emulator's refresh log); the next refresh asks for a new consent."""

    def run(env: Env) -> Exception:
        fake = env.fake
        conn_id = env.put()
        hook = ConfluenceOAuthHook(conn_id)
        token = hook.get_access_token()
        if reason == "absolute_expiry":  # used every 80 days, so never idle for 90: only the 365 days end it
            for _ in range(4):
                fake.advance(80 * DAY)
                token = hook.token_manager.refresh_rejected(token)
            fake.advance(46 * DAY)
        elif reason == "inactivity_expiry":
            fake.advance(91 * DAY)
        else:  # a copy of the refresh token was redeemed elsewhere, then reused after the 10-minute leeway
            copy = read_connection_extra(conn_id)["refresh_token"]
            body = {
                "grant_type": "refresh_token",
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "refresh_token": copy,
            }
            assert requests.post(fake.token_url, json=body, timeout=10).status_code == 200
            fake.advance(601)
            assert requests.post(fake.token_url, json=body, timeout=10).status_code == 403
        later = ConfluenceOAuthHook(conn_id)  # the next task; the access token was refused (401), so it refreshes
        with env.token_untouched(conn_id):
            error = raises(ConfluenceReauthorizationRequired, lambda: later.token_manager.refresh_rejected(token))
        assert fake.refresh_log[-1]["reason"] == reason
        return error

    return run


def unknown_space_key(env: Env) -> Exception:
    env.fake.add_space("DEMO")
    conn_id = env.put()
    with env.no_page_written(conn_id):
        return raises(ConfluenceSpaceMissing, create_page(conn_id, space_key="NOPE"))


def refused_page(kind: type[Exception], prepare: Callable[[Any], dict[str, Any]]) -> Callable[[Env], Exception]:
    """Confluence refuses the page: the error names why; no page is created or changed."""

    def run(env: Env) -> Exception:
        env.fake.add_space("DEMO")
        kwargs = prepare(env.fake)
        conn_id = env.put()
        with env.no_page_written(conn_id):
            return raises(kind, create_page(conn_id, **kwargs))

    return run


def parent_in_other_space(fake: Any) -> dict[str, Any]:
    fake.add_space("OTHER")
    return {"parent_id": fake.add_page("OTHER", "Elsewhere")["id"]}


def duplicate_title(fake: Any) -> dict[str, Any]:
    fake.add_page("DEMO", "Report", "<p>old</p>")
    return {"body": "<p>new</p>"}


def operator_refused(make: Callable[[], Any]) -> Callable[[Env], Exception]:
    def run(env: Env) -> Exception:
        with env.nothing_sent():
            return raises(ConfluenceConfigError, make)

    return run


def both_space_key_and_id(env: Env) -> Exception:
    space = env.fake.add_space("DEMO")
    conn_id = env.put()
    with env.nothing_sent(conn_id):
        return raises(ConfluenceConfigError, create_page(conn_id, space_id=space["id"]))


# -- the DAG-author toolkit: operators and the sensor, run as a task runs them (execute) --------------------

#: the emulator's search route also takes read:content-details:confluence (Atlassian's granular scope for it)
WITHOUT_SEARCH = " ".join(
    scope for scope in DEFAULT_SCOPES.split() if scope not in ("search:confluence", "read:content-details:confluence")
)
WITHOUT_WRITE_ATTACHMENT = " ".join(scope for scope in DEFAULT_SCOPES.split() if scope != "write:attachment:confluence")


def demo_page(env: Env, grant: str = DEFAULT_SCOPES) -> tuple[str, dict[str, Any]]:
    """Space DEMO with a page "Report" labelled "existing", and a connection (of ``grant``) to the emulator."""
    env.fake.add_space("DEMO")
    page = env.fake.add_page("DEMO", "Report", "<p>old</p>", labels=["existing"])
    return env.put(grant=grant, scopes=grant), page


def page_untouched(
    make: Callable[[str, dict[str, Any]], Any],
    kind: type[Exception] = ConfluenceConfigError,
    grant: str = DEFAULT_SCOPES,
) -> Callable[[Env], Exception]:
    """The task runs against a space with one labelled page: no page, label or attachment is written."""

    def run(env: Env) -> Exception:
        conn_id, page = demo_page(env, grant)
        with env.no_page_written(conn_id), env.no_label_added(), env.nothing_attached():
            return raises(kind, lambda: make(conn_id, page).execute({}))

    return run


def refused_at_run_start(make: Callable[[str], Any]) -> Callable[[Env], Exception]:
    """The task's input is refused before any request: not even a token refresh."""

    def run(env: Env) -> Exception:
        env.fake.add_space("DEMO")
        conn_id = env.put()
        with env.nothing_sent(conn_id), env.no_label_added(), env.nothing_attached():
            return raises(ConfluenceConfigError, lambda: make(conn_id).execute({}))

    return run


def missing_upload_file(env: Env) -> Exception:
    conn_id, page = demo_page(env)
    missing = AIRFLOW_HOME / "no-such-dir" / "report.csv"
    with env.nothing_sent(conn_id), env.nothing_attached():
        return raises(
            ConfluenceConfigError,
            lambda: ConfluenceUploadAttachmentOperator(
                task_id="t", page_id=page["id"], file_path=str(missing), confluence_conn_id=conn_id
            ).execute({}),
        )


def upload_under_roots(file_path: str, roots: str) -> Callable[[Env], Exception]:
    """``[confluence] attachment_roots`` is ``roots``: the upload of ``file_path`` is refused before any request."""

    def run(env: Env) -> Exception:
        env.monkeypatch.setenv("AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS", roots)
        conn_id, page = demo_page(env)
        with env.nothing_sent(conn_id), env.nothing_attached():
            return raises(
                ConfluenceConfigError,
                lambda: ConfluenceUploadAttachmentOperator(
                    task_id="t", page_id=page["id"], file_path=file_path, confluence_conn_id=conn_id
                ).execute({}),
            )

    return run


def download_under_roots(env: Env) -> Exception:
    """``[confluence] attachment_roots`` is a reports folder: a download into the DAGs folder is refused up front."""
    env.monkeypatch.setenv("AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS", str(AIRFLOW_HOME / "reports"))
    conn_id, page = demo_page(env)
    with env.nothing_sent(conn_id):
        return raises(
            ConfluenceConfigError,
            lambda: ConfluenceDownloadAttachmentOperator(
                task_id="t",
                page_id=page["id"],
                filename="report.csv",
                output_path=str(AIRFLOW_HOME / "report.csv"),
                confluence_conn_id=conn_id,
            ).execute({}),
        )


def sensor_in_missing_space(env: Env) -> Exception:
    """A title in a space that does not exist: the first poke fails the task, it does not poke until timeout."""
    env.fake.add_space("DEMO")
    conn_id = env.put()
    sensor = ConfluencePageSensor(
        task_id="t",
        space_key="NOPE",
        title="Report",
        poke_interval=1,
        timeout=3600,
        mode="poke",
        confluence_conn_id=conn_id,
    )
    with env.no_page_written(conn_id):
        error = raises(ConfluenceSpaceMissing, lambda: sensor.execute({}))
    space_lookups = [r for r in env.fake.requests if "/spaces" in str(r.get("path"))]
    assert len(space_lookups) == 1, space_lookups  # one look, not a poke loop
    return error


# -- the other ways to sign in (auth_type) ------------------------------------------------------------


def put_service_account(env: Env, conn_id: str, **fields: Any) -> tuple[str, Any]:
    """A ``client_credentials`` connection row for a new service account, with these fields changed."""
    cred = env.fake.add_service_account()
    conn = env.fake.service_account_connection(cred)
    conn.update(fields)
    put_connection(conn_id, conn)
    return conn_id, cred


def put_api_token(
    env: Env, conn_id: str, *, expires: Any = None, fields: dict[str, Any] | None = None, **extra: Any
) -> str:
    """An ``api_token`` connection row for a new scoped API token, with these fields and extras changed."""
    cred = env.fake.add_api_token("robot@example.com", expires=expires)
    conn = env.fake.api_token_connection(cred, **extra)
    conn.update(fields or {})
    put_connection(conn_id, conn)
    return conn_id


def refresh_token_with_client_credentials(env: Env) -> str:
    conn_id = "sa_with_refresh_token"
    put_connection(
        conn_id, env.fake.service_account_connection(env.fake.add_service_account(), refresh_token="rt-left-from-3lo")
    )
    with env.caplog.at_level(logging.WARNING):
        ConfluenceOAuthHook(conn_id).settings  # noqa: B018 - reading the settings logs the advice
    assert env.fake.counters["token_requests"] == 0
    captured = env.capsys.readouterr()  # Airflow 3 logs through structlog, to stdout
    return "\n".join((env.caplog.text, captured.out, captured.err))


def service_account_wrong_secret(env: Env) -> Exception:
    env.fake.add_space("DEMO")
    conn_id, _cred = put_service_account(env, "sa_wrong_secret", password="not-the-client-secret")
    before = raw_extra(conn_id)
    error = raises(ConfluenceAuthError, lambda: ConfluenceOAuthHook(conn_id).get_space_id("DEMO"))
    assert env.fake.counters["client_auth_failures"] == 1 and env.fake.counters["api_calls"] == 0
    assert raw_extra(conn_id) == before
    return error


def api_token_refused(**fields: Any) -> Callable[[Env], Exception]:
    """Atlassian answers 401 to the e-mail and token: one request, no retry, no page written."""

    def run(env: Env) -> Exception:
        env.fake.add_space("DEMO")
        conn_id = put_api_token(env, "api_refused", fields=fields)
        pages = len(env.fake.pages)
        error = raises(ConfluenceAuthError, create_page(conn_id))
        assert env.fake.counters["api_token_failures"] == 1 and len(env.fake.pages) == pages
        return error

    return run


def api_token_expired(env: Env) -> Exception:
    import datetime

    env.fake.add_space("DEMO")
    yesterday = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
    conn_id = put_api_token(env, "api_expired", expires=env.fake.now() + 60, credential_expires=yesterday.isoformat())
    env.fake.advance(120)
    error = raises(ConfluenceAuthError, create_page(conn_id))
    assert env.fake.counters["api_token_expired_uses"] == 1
    return error


def access_token_macro_on_api_token(env: Env) -> Exception:
    from airflow_provider_confluence.macros import access_token

    conn_id = put_api_token(env, "api_macro")
    with env.nothing_sent():
        return raises(ConfluenceConfigError, lambda: access_token(conn_id))


def api_token_settings_refused(fields: dict[str, Any] | None = None, **extra: Any) -> Callable[[Env], Exception]:
    def run(env: Env) -> Exception:
        conn_id = put_api_token(env, "api_bad_settings", fields=fields, **extra)
        with env.nothing_sent(conn_id):
            return raises(ConfluenceConfigError, lambda: ConfluenceOAuthHook(conn_id).get_space_id("DEMO"))

    return run


def service_account_settings_refused(**fields: Any) -> Callable[[Env], Exception]:
    def run(env: Env) -> Exception:
        conn_id, _cred = put_service_account(env, "sa_bad_settings", **fields)
        with env.nothing_sent(conn_id):
            return raises(ConfluenceConfigError, token_of(conn_id))

    return run


def scopes_with_client_credentials(env: Env) -> str:
    """The extra is ignored with a warning, and never sent: the token request names no scope."""
    env.fake.add_space("DEMO")
    conn_id = "sa_with_scopes"
    cred = env.fake.add_service_account()
    put_connection(conn_id, env.fake.service_account_connection(cred, scopes="read:page:confluence"))
    with env.caplog.at_level(logging.WARNING):
        assert ConfluenceOAuthHook(conn_id).get_space_id("DEMO")
    assert env.fake.counters["client_credentials_with_scope"] == 0
    assert env.fake.counters["client_credentials_grants"] == 1
    captured = env.capsys.readouterr()  # Airflow 3 logs through structlog, to stdout
    return "\n".join((env.caplog.text, captured.out, captured.err))


def api_token_expiry_past(env: Env) -> str:
    """A past ``credential_expires`` with a token Atlassian still accepts: the call goes through, the log says."""
    env.fake.add_space("DEMO")
    conn_id = put_api_token(env, "api_expiry_past", credential_expires="2020-01-01")
    with env.caplog.at_level(logging.WARNING):
        assert ConfluenceOAuthHook(conn_id).get_space_id("DEMO")
    captured = env.capsys.readouterr()
    return "\n".join((env.caplog.text, captured.out, captured.err))


def default_deferrable_not_a_boolean(env: Env) -> Exception:
    """Airflow's own check, when the DAG is parsed: no request."""
    env.monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "maybe")
    with env.nothing_sent():  # Airflow 3's configuration raises its own class of the same name
        return raises(Exception, lambda: ConfluenceSearchOperator(task_id="s", cql="type = page"))


def update_operator(**kwargs: Any) -> Callable[[], Any]:
    return lambda: ConfluenceUpdatePageOperator(task_id="t", **{"body": "<p>x</p>", **kwargs})


@dataclass(frozen=True)
class BadInput:
    """One row of the docs' table: the input, the error class, what the message says is wrong, what to do."""

    what: str
    error: str
    says: str
    fix: str
    run: Callable[[Env], Exception | str]
    id: str


BAD_INPUTS: list[BadInput] = [
    BadInput(
        "Client ID (Login) missing",
        "ConfluenceConfigError",
        "has no Client ID (the Login field)",
        "Copy it from the Atlassian developer console",
        refused_settings({"login": ""}),
        "no-client-id",
    ),
    BadInput(
        "Client secret (Password) empty or blank",
        "ConfluenceConfigError",
        "has no Client secret (the Password field)",
        "Copy it from the Atlassian developer console",
        refused_settings({"password": "   "}),
        "blank-client-secret",
    ),
    BadInput(
        "Site URL (Host) missing",
        "ConfluenceConfigError",
        "has no Confluence site URL (the Host field)",
        "set it to https://your-site.atlassian.net",
        refused_settings({"host": ""}),
        "no-host",
    ),
    BadInput(
        "Site URL without a scheme (`fake-site.atlassian.net`)",
        "ConfluenceConfigError",
        "has no scheme",
        "write it as https://fake-site.atlassian.net",
        refused_settings({"host": "fake-site.atlassian.net"}),
        "host-without-scheme",
    ),
    BadInput(
        "Site URL with a path (`https://fake-site.atlassian.net/wiki/spaces/ENG`)",
        "ConfluenceConfigError",
        "has a path",
        "use only the site, such as https://fake-site.atlassian.net",
        refused_settings({"host": "https://fake-site.atlassian.net/wiki/spaces/ENG"}),
        "host-with-path",
    ),
    BadInput(
        "Site URL over plain http",
        "ConfluenceConfigError",
        "got http://fake-site.atlassian.net",
        "the site URL (Host) must use https://",
        refused_settings({"host": "http://fake-site.atlassian.net"}),
        "host-over-http",
    ),
    BadInput(
        "Site URL of a site the grant does not cover",
        "ConfluenceAuthError",
        "The grant does not cover the site other-site.atlassian.net",
        "authorize the app again and pick that site on the consent screen",
        another_site,
        "another-site",
    ),
    BadInput(
        "`grant_url` over plain http",
        "ConfluenceConfigError",
        "got http://auth.example.com",
        "grant_url must use https://",
        refused_settings(grant_url="http://auth.example.com/oauth/token"),
        "token-url-over-http",
    ),
    BadInput(
        "`grant_url` that is not a URL (`auth.atlassian.com/oauth/token`)",
        "ConfluenceConfigError",
        "is not an absolute http(s) URL",
        "leave grant_url empty for Atlassian's default",
        refused_settings(grant_url="auth.atlassian.com/oauth/token"),
        "token-url-not-a-url",
    ),
    BadInput(
        "`api_url` over plain http",
        "ConfluenceConfigError",
        "got http://api.example.com",
        "api_url must use https://",
        refused_settings(api_url="http://api.example.com"),
        "api-url-over-http",
    ),
    BadInput(
        "`grant_url` with a backslash (`http://attacker.example:8080\\@127.0.0.1/oauth/token`)",
        "ConfluenceConfigError",
        "grant_url contains a backslash, which urllib3 (sending the request) reads as the end of the host",
        "leave grant_url empty for Atlassian's default",
        refused_settings(grant_url="http://attacker.example:8080\\@127.0.0.1/oauth/token"),
        "token-url-backslash",
    ),
    BadInput(
        "`api_url` with a user name or password (`https://user:password@api.atlassian.com`)",
        "ConfluenceConfigError",
        "api_url contains '@', which puts a user name or password into the URL",
        "leave api_url empty for Atlassian's default",
        refused_settings(api_url="https://user:password@api.atlassian.com"),
        "api-url-userinfo",
    ),
    BadInput(
        "`auth_url` that urllib3 reads differently (`https://\uff41uth.atlassian.com/authorize`: a full-width a)",
        "ConfluenceConfigError",
        "auth_url cannot be read by urllib3, which sends the request",
        "write the host in ASCII",
        refused_settings(auth_url="https://\uff41uth.atlassian.com/authorize"),
        "auth-url-read-differently",
    ),
    BadInput(
        "`broker_url` with whitespace or a control character",
        "ConfluenceConfigError",
        "broker_url contains whitespace or a control character",
        "give the Airflow API server's base URL",
        refused_settings(broker_url="http://127.0.0.1:8080/\texecution"),
        "broker-url-control-character",
    ),
    BadInput(
        "`grant_url` on a host that is not Atlassian's (`https://attacker.example/oauth/token`)",
        "ConfluenceConfigError",
        "grant_url points at attacker.example:443, which is neither Atlassian's",
        "ask the administrator of this Airflow deployment to add attacker.example:443 to [confluence] "
        "allowed_endpoint_hosts",
        refused_settings(grant_url="https://attacker.example/oauth/token"),
        "token-url-not-atlassian",
    ),
    BadInput(
        "`api_url` on a loopback port the deployment does not list (`http://127.0.0.1:9`)",
        "ConfluenceConfigError",
        "api_url points at 127.0.0.1:9",
        "Leave api_url empty for Atlassian's default",
        refused_settings(api_url="http://127.0.0.1:9"),
        "api-url-unlisted-loopback",
    ),
    BadInput(
        "`[confluence] allowed_endpoint_hosts` with an entry that is not `host` or `host:port` "
        "(`https://proxy.example`)",
        "ConfluenceConfigError",
        "has 'https://proxy.example', which is not a host or host:port",
        "list entries such as api.example.com or 127.0.0.1:8765",
        unlisted_allow_list_entry,
        "allow-list-entry-not-a-host",
    ),
    BadInput(
        "Connect (Airflow 3 UI) on a connection whose `grant_url` the deployment does not list",
        PAGE,
        "grant_url points at attacker.example:443",
        "add attacker.example:443 to [confluence] allowed_endpoint_hosts",
        connect_to_unlisted_token_url,
        "connect-unlisted-token-url",
    ),
    BadInput(
        "The site, client ID, `grant_url` or `api_url` edited and the token state cleared, after rotations",
        "ConfluenceReauthorizationRequired",
        "has no refresh token",
        "A person must authorize the app again",
        edited_after_rotations,
        "edited-after-rotations",
    ),
    BadInput(
        "`airflow-confluence authorize` while a local process holds its callback port silent",
        COMMAND,
        "No answer from the browser within 1 s; nothing was changed",
        "Run the command again and approve the consent within --timeout seconds",
        silent_callback_client,
        "authorize-silent-client",
    ),
    BadInput(
        "A write answered with a redirect (307 or 308) by Confluence or something in between",
        "ConfluenceApiError",
        "writes never follow redirects",
        "Check api_url",
        redirected("POST /wiki/api/v2/pages", 307, create_page),
        "write-redirected",
    ),
    BadInput(
        "A read redirected to another host",
        "ConfluenceApiError",
        "reads follow redirects only on their own host",
        "Check api_url",
        redirected(
            "GET /wiki/api/v2/spaces", 302, lambda conn_id: lambda: ConfluenceOAuthHook(conn_id).get_space_id("DEMO")
        ),
        "read-redirected-elsewhere",
    ),
    BadInput(
        "`scopes` without `offline_access`",
        "ConfluenceConfigError",
        "does not request the offline_access scope",
        "Add offline_access to the scopes extra",
        refused_settings(scopes="read:space:confluence read:page:confluence"),
        "no-offline-access",
    ),
    BadInput(
        "`scopes` with only classic scopes (`read:confluence-space.summary`, ...)",
        WARNING,
        "only has classic Confluence scopes",
        "Add the granular scopes read:space:confluence, write:page:confluence",
        classic_scopes_warning,
        "classic-scopes-warning",
    ),
    BadInput(
        "A grant with only classic scopes, used on the v2 API",
        "ConfluenceScopeError",
        "scope does not match",
        "add the granular scope read:space:confluence",
        classic_scopes_call,
        "classic-scopes-call",
    ),
    BadInput(
        "Extra that is not valid JSON",
        "ConfluenceConfigError",
        "has an Extra field that is not valid JSON",
        "Fix it in Admin -> Connections",
        raw_extra_refused('{"refresh_token": "x",'),
        "extra-not-json",
    ),
    BadInput(
        'Extra that is JSON but not an object (`["..."]`)',
        "ConfluenceConfigError",
        "has an Extra field that is JSON but not an object",
        'it must look like {"refresh_token"',
        raw_extra_refused('["offline_access"]'),
        "extra-not-an-object",
    ),
    BadInput(
        "Unknown `state_store` (`rows`)",
        "ConfluenceConfigError",
        "has state_store='rows'",
        "use one of auto, connection, broker, variable, memory",
        refused_settings(state_store="rows"),
        "unknown-token-store",
    ),
    BadInput(
        "`state_store=connection` on a connection from an environment variable",
        "ConfluenceConfigError",
        "comes from an environment variable or a secrets backend",
        "Set state_store to auto",
        env_var_with_connection_store,
        "env-var-connection-store",
    ),
    BadInput(
        "`timeout` that is not a number (`fast`)",
        "ConfluenceConfigError",
        "timeout 'fast' must be a number of seconds",
        "between 0 and 600",
        refused_settings(timeout="fast"),
        "timeout-not-a-number",
    ),
    BadInput(
        "`timeout` of 0",
        "ConfluenceConfigError",
        "timeout 0 must be a number of seconds",
        "between 0 and 600",
        refused_settings(timeout=0),
        "timeout-zero",
    ),
    BadInput(
        "Unknown `auth_type` (`saml`)",
        "ConfluenceConfigError",
        "has auth_type='saml'; use one of oauth2_3lo, client_credentials, api_token",
        "client_credentials for an Atlassian service account",
        refused_settings(auth_type="saml"),
        "unknown-auth-type",
    ),
    BadInput(
        "`auth_type=api_token` with a Login that is not an e-mail address",
        "ConfluenceConfigError",
        "its Login is not an e-mail address",
        "Put that e-mail in Login and the token in Password",
        api_token_settings_refused({"login": "robot"}),
        "api-token-login-not-email",
    ),
    BadInput(
        "`credential_expires` that is not a date (`next month`)",
        "ConfluenceConfigError",
        "credential_expires 'next month' is not a date",
        "write it as YYYY-MM-DD",
        api_token_settings_refused(credential_expires="next month"),
        "api-token-expires-not-a-date",
    ),
    BadInput(
        "`auth_type=client_credentials` without the Client secret (Password)",
        "ConfluenceConfigError",
        "has no Client secret (the Password field)",
        "Directory -> Service accounts -> your service account",
        service_account_settings_refused(password=""),
        "client-credentials-no-secret",
    ),
    BadInput(
        "`scopes` with `auth_type=client_credentials`",
        WARNING,
        "a scopes extra, which it ignores and never sends",
        "Remove the extra; for other scopes, create a new credential or token with them",
        scopes_with_client_credentials,
        "client-credentials-with-scopes",
    ),
    BadInput(
        "`auth_type=api_token` without the e-mail (Login)",
        "ConfluenceConfigError",
        "has no e-mail address (the Login field)",
        "Login is the Atlassian account's e-mail address and Password a scoped API token",
        api_token_settings_refused({"login": ""}),
        "api-token-no-email",
    ),
    BadInput(
        "`credential_expires` in the past (`2020-01-01`) while Atlassian still accepts the token",
        WARNING,
        "expired on 1 January 2020 (credential_expires)",
        "Create a new scoped API token at",
        api_token_expiry_past,
        "api-token-expiry-past",
    ),
    BadInput(
        "`cloud_id` that is not a cloud id (`https://fake-site.atlassian.net`)",
        "ConfluenceConfigError",
        "is not a cloud id, which is a UUID",
        "Leave cloud_id empty: the provider looks it up from the site URL",
        refused_settings(cloud_id="https://fake-site.atlassian.net"),
        "cloud-id-malformed",
    ),
    BadInput(
        "`[operators] default_deferrable` (which operators use to wait out a spent quota) that is not a boolean",
        "AirflowConfigException",
        "Failed to convert value to bool",
        'Please check "default_deferrable" key in "operators" section',
        default_deferrable_not_a_boolean,
        "default-deferrable-not-a-boolean",
    ),
    BadInput(
        "`refresh_token` left in the extra with `auth_type=client_credentials`",
        WARNING,
        "ignores: a service account gets no refresh token",
        "Remove them to avoid confusion",
        refresh_token_with_client_credentials,
        "client-credentials-with-refresh-token",
    ),
    BadInput(
        "Service account's wrong client secret, or a deleted credential (`invalid_client`)",
        "ConfluenceAuthError",
        "The token endpoint rejected the client credentials (invalid_client",
        "against the service account's OAuth 2.0 credential in Atlassian Administration",
        service_account_wrong_secret,
        "service-account-invalid-client",
    ),
    BadInput(
        "Wrong e-mail (Login) with `auth_type=api_token`",
        "ConfluenceAuthError",
        "Atlassian refused the e-mail and API token",
        "Create a scoped API token at",
        api_token_refused(login="someone.else@example.com"),
        "api-token-wrong-email",
    ),
    BadInput(
        "Wrong or revoked API token (Password)",
        "ConfluenceAuthError",
        "the e-mail (Login) or the API token (Password) is wrong",
        "Create a scoped API token at",
        api_token_refused(password="not-the-api-token"),
        "api-token-wrong-token",
    ),
    BadInput(
        "Expired API token (`credential_expires` has passed)",
        "ConfluenceAuthError",
        "the token expired on",
        "Create a scoped API token at",
        api_token_expired,
        "api-token-expired",
    ),
    BadInput(
        "`macros.confluence.access_token` on an `api_token` connection",
        "ConfluenceConfigError",
        "has auth_type=api_token, which has no bearer access token",
        "Use macros.confluence.authorization_header",
        access_token_macro_on_api_token,
        "api-token-access-token-macro",
    ),
    BadInput(
        "Wrong client secret",
        "ConfluenceAuthError",
        "The token endpoint rejected the client credentials",
        "Check the Client ID (Login) and Client secret (Password) against the developer console",
        wrong_client_secret,
        "wrong-client-secret",
    ),
    BadInput(
        "No `refresh_token` in the extra",
        "ConfluenceReauthorizationRequired",
        "has no refresh token",
        "A person must authorize the app again",
        no_refresh_token,
        "no-refresh-token",
    ),
    BadInput(
        "A grant older than 365 days",
        "ConfluenceReauthorizationRequired",
        "Atlassian no longer accepts the refresh token",
        "A person must authorize the app again",
        dead_grant("absolute_expiry"),
        "grant-365-days",
    ),
    BadInput(
        "A grant unused for 90 days",
        "ConfluenceReauthorizationRequired",
        "Atlassian no longer accepts the refresh token",
        "A person must authorize the app again",
        dead_grant("inactivity_expiry"),
        "grant-90-days-unused",
    ),
    BadInput(
        "A revoked grant (a copy of the token was used after the 10-minute leeway)",
        "ConfluenceReauthorizationRequired",
        "the grant was revoked, expired",
        "put the new refresh token into the refresh_token extra",
        dead_grant("revoked"),
        "grant-revoked",
    ),
    BadInput(
        "Unknown space key",
        "ConfluenceSpaceMissing",
        "No space with key 'NOPE'",
        "Check the key (keys are case-sensitive",
        unknown_space_key,
        "unknown-space-key",
    ),
    BadInput(
        "Page title over 255 characters",
        "ConfluenceApiError",
        "Title must not be longer than 255 characters",
        "Check the request's parameters and body",
        refused_page(ConfluenceApiError, lambda fake: {"title": "T" * 256}),
        "title-over-255",
    ),
    BadInput(
        "Page body over 5 MB",
        "ConfluenceApiError",
        "The request body is too large",
        "Confluence accepts up to 5 MB",
        refused_page(ConfluenceApiError, lambda fake: {"body": "<p>" + "x" * (5 * 1024 * 1024) + "</p>"}),
        "body-over-5mb",
    ),
    BadInput(
        "Malformed storage XHTML (`<p>unclosed`)",
        "ConfluenceApiError",
        "The storage format of the body is invalid",
        "Check the request's parameters and body",
        refused_page(ConfluenceApiError, lambda fake: {"body": "<p>unclosed"}),
        "malformed-xhtml",
    ),
    BadInput(
        "A parent page in another space",
        "ConfluenceApiError",
        "is not in space",
        "Check the request's parameters and body",
        refused_page(ConfluenceApiError, parent_in_other_space),
        "parent-in-another-space",
    ),
    BadInput(
        "A parent page that does not exist",
        "ConfluenceNotFound",
        "Parent page 999999 was not found",
        "No such object, or the app's user cannot see it",
        refused_page(ConfluenceNotFound, lambda fake: {"parent_id": "999999"}),
        "parent-missing",
    ),
    BadInput(
        'A title that exists, with `if_exists="fail"` (the default)',
        "ConfluencePageExists",
        "already exists in space",
        "Use if_exists='skip' to keep it or if_exists='update'",
        refused_page(ConfluencePageExists, duplicate_title),
        "title-exists",
    ),
    BadInput(
        "Both `space_key` and `space_id`",
        "ConfluenceConfigError",
        "Give exactly one of space_key and space_id",
        "Give exactly one",
        both_space_key_and_id,
        "space-key-and-id",
    ),
    BadInput(
        "`if_exists` typo (`overwrite`)",
        "ConfluenceConfigError",
        "if_exists='overwrite' is not one of",
        "fail, skip, update",
        operator_refused(
            lambda: ConfluenceCreatePageOperator(
                task_id="t", space_key="DEMO", title="T", body="<p>x</p>", if_exists="overwrite"
            )
        ),
        "if-exists-typo",
    ),
    BadInput(
        "`representation` typo (`html`)",
        "ConfluenceConfigError",
        "representation='html' is not one of",
        "storage, atlas_doc_format, wiki",
        operator_refused(
            lambda: ConfluenceCreatePageOperator(
                task_id="t", space_key="DEMO", title="T", body="<p>x</p>", representation="html"
            )
        ),
        "representation-typo",
    ),
    BadInput(
        "A token broker that answers 401 (the worker signs with another client secret)",
        "ConfluenceBrokerError",
        "(401 invalid_signature): The signature does not match",
        "Check that the worker and the API server see the same connection",
        broker_refuses_the_signature,
        "broker-401",
    ),
    BadInput(
        "`max_results=0`",
        "ConfluenceConfigError",
        "max_results=0 must be a positive number",
        "or None for all spaces",
        operator_refused(lambda: ConfluenceGetSpacesOperator(task_id="t", max_results=0)),
        "max-results-zero",
    ),
    # -- the DAG-author toolkit
    BadInput(
        "Update with neither `page_id` nor `title`",
        "ConfluenceConfigError",
        "Say which page",
        "give page_id, or title together with space_key or space_id",
        operator_refused(update_operator(space_key="DEMO")),
        "update-no-page",
    ),
    BadInput(
        "Update with both `page_id` and `title`",
        "ConfluenceConfigError",
        "not both: they could name different pages",
        "Give page_id, or a space (space_key or space_id) and title",
        operator_refused(update_operator(page_id="123", space_key="DEMO", title="Report")),
        "update-page-id-and-title",
    ),
    BadInput(
        "Update of a title that does not exist",
        "ConfluencePageMissing",
        "There is no current page titled 'Daily report' in space DEMO",
        "Use ConfluenceCreatePageOperator with if_exists='update' for an upsert",
        page_untouched(
            lambda conn_id, page: update_operator(space_key="DEMO", title="Daily report", confluence_conn_id=conn_id)(),
            ConfluencePageMissing,
        ),
        "update-missing-title",
    ),
    BadInput(
        "`mode` typo (`add`)",
        "ConfluenceConfigError",
        "mode='add' is not one of",
        "replace, append",
        operator_refused(update_operator(page_id="123", mode="add")),
        "mode-typo",
    ),
    BadInput(
        '`mode="append"` with `representation="wiki"` (or `atlas_doc_format`)',
        "ConfluenceConfigError",
        "mode='append' works on storage format only",
        "Use storage, markdown or table, or mode='replace'",
        operator_refused(update_operator(page_id="123", mode="append", representation="wiki")),
        "append-wiki",
    ),
    BadInput(
        "Both `parent_id` and `parent_title`",
        "ConfluenceConfigError",
        "Give parent_id or parent_title, not both",
        "drop one of them",
        operator_refused(
            lambda: ConfluenceCreatePageOperator(
                task_id="t", space_key="DEMO", title="T", body="<p>x</p>", parent_id="1", parent_title="Reports"
            )
        ),
        "parent-id-and-title",
    ),
    BadInput(
        "A `parent_title` that does not exist",
        "ConfluencePageMissing",
        "No page titled 'Reports' in space",
        "create the parent page first, or pass parent_id instead",
        page_untouched(
            lambda conn_id, page: ConfluenceCreatePageOperator(
                task_id="t",
                space_key="DEMO",
                title="Daily",
                body="<p>x</p>",
                parent_title="Reports",
                confluence_conn_id=conn_id,
            ),
            ConfluencePageMissing,
        ),
        "parent-title-missing",
    ),
    BadInput(
        "A label with a space (`daily report`)",
        "ConfluenceConfigError",
        "The label 'daily report' contains a space",
        "use '-' or '_' instead",
        page_untouched(
            lambda conn_id, page: ConfluenceCreatePageOperator(
                task_id="t",
                space_key="DEMO",
                title="Daily",
                body="<p>x</p>",
                labels=["daily report"],
                confluence_conn_id=conn_id,
            )
        ),
        "label-with-space",
    ),
    BadInput(
        "A label with a forbidden character (`q1:2024`)",
        "ConfluenceConfigError",
        "The label 'q1:2024' contains ':'",
        "use '-' or '_' instead",
        page_untouched(
            lambda conn_id, page: ConfluenceUpdatePageOperator(
                task_id="t", page_id=page["id"], body="<p>new</p>", labels="q1:2024", confluence_conn_id=conn_id
            )
        ),
        "label-forbidden-character",
    ),
    BadInput(
        "A `table` body that is a rendered template string (`[{'a': 1}]`)",
        "ConfluenceConfigError",
        "A table body must be a list of dicts",
        "set render_template_as_native_obj=True on the DAG",
        refused_at_run_start(
            lambda conn_id: ConfluenceCreatePageOperator(
                task_id="t",
                space_key="DEMO",
                title="T",
                body="[{'a': 1}]",
                representation="table",
                confluence_conn_id=conn_id,
            )
        ),
        "table-not-tabular",
    ),
    BadInput(
        "An empty `table` body (`[]`)",
        "ConfluenceConfigError",
        "has no rows",
        "pass at least one row",
        refused_at_run_start(
            lambda conn_id: ConfluenceCreatePageOperator(
                task_id="t", space_key="DEMO", title="T", body=[], representation="table", confluence_conn_id=conn_id
            )
        ),
        "table-empty",
    ),
    BadInput(
        "Get a page id that does not exist",
        "ConfluenceNotFound",
        "There is no page with id 999999",
        "check page_id",
        page_untouched(
            lambda conn_id, page: ConfluenceGetPageOperator(task_id="t", page_id="999999", confluence_conn_id=conn_id),
            ConfluenceNotFound,
        ),
        "get-missing-page",
    ),
    BadInput(
        "CQL the server cannot parse (`type === page`)",
        "ConfluenceApiError",
        "Could not parse cql",
        "Check the CQL query's syntax and field names",
        page_untouched(
            lambda conn_id, page: ConfluenceSearchOperator(
                task_id="t", cql="type === page", confluence_conn_id=conn_id
            ),
            ConfluenceApiError,
        ),
        "cql-unparsable",
    ),
    BadInput(
        "Search with a grant that lacks `search:confluence`",
        "ConfluenceScopeError",
        "scope does not match",
        "add the granular scope search:confluence",
        page_untouched(
            lambda conn_id, page: ConfluenceSearchOperator(task_id="t", cql="type = page", confluence_conn_id=conn_id),
            ConfluenceScopeError,
            WITHOUT_SEARCH,
        ),
        "search-without-scope",
    ),
    BadInput(
        "Search `limit=0`",
        "ConfluenceConfigError",
        "limit=0 must be a whole number",
        "between 1 and 250",
        operator_refused(lambda: ConfluenceSearchOperator(task_id="t", cql="type = page", limit=0)),
        "search-limit-zero",
    ),
    BadInput(
        "Search `limit=500`",
        "ConfluenceConfigError",
        "limit=500 must be a whole number",
        "between 1 and 250",
        operator_refused(lambda: ConfluenceSearchOperator(task_id="t", cql="type = page", limit=500)),
        "search-limit-500",
    ),
    BadInput(
        "Upload a `file_path` that does not exist",
        "ConfluenceConfigError",
        "is not a file: nothing was uploaded",
        "Check the path (it is read on the worker that runs the task)",
        missing_upload_file,
        "upload-missing-file",
    ),
    BadInput(
        "Upload a `file_path` outside `[confluence] attachment_roots` (`/proc/self/environ`)",
        "ConfluenceConfigError",
        "is outside [confluence] attachment_roots",
        "Use a file under one of those folders, or ask the administrator of this Airflow deployment to add its folder",
        upload_under_roots("/proc/self/environ", str(AIRFLOW_HOME / "reports")),
        "upload-outside-roots",
    ),
    BadInput(
        "Download to an `output_path` outside `[confluence] attachment_roots`",
        "ConfluenceConfigError",
        "is outside [confluence] attachment_roots",
        "Use a file under one of those folders",
        download_under_roots,
        "download-outside-roots",
    ),
    BadInput(
        "`[confluence] attachment_roots` with a relative folder (`reports`)",
        "ConfluenceConfigError",
        "has 'reports', which is not an absolute path",
        "List absolute folders",
        upload_under_roots("/proc/self/environ", "reports"),
        "attachment-root-relative",
    ),
    BadInput(
        "Upload with neither `file_path` nor `data`",
        "ConfluenceConfigError",
        "Say what to upload",
        "give exactly one of file_path (a local file) and data",
        operator_refused(lambda: ConfluenceUploadAttachmentOperator(task_id="t", page_id="123")),
        "upload-no-content",
    ),
    BadInput(
        "Upload `data` without `filename`",
        "ConfluenceConfigError",
        "filename is required with data",
        "say what to call the attachment",
        operator_refused(lambda: ConfluenceUploadAttachmentOperator(task_id="t", page_id="123", data=b"a,b")),
        "upload-data-no-filename",
    ),
    BadInput(
        "Upload with a grant that lacks `write:attachment:confluence`",
        "ConfluenceScopeError",
        "scope does not match",
        "add the granular scope write:attachment:confluence",
        page_untouched(
            lambda conn_id, page: ConfluenceUploadAttachmentOperator(
                task_id="t", page_id=page["id"], data=b"a,b\n1,2\n", filename="report.csv", confluence_conn_id=conn_id
            ),
            ConfluenceScopeError,
            WITHOUT_WRITE_ATTACHMENT,
        ),
        "upload-without-scope",
    ),
    BadInput(
        "Sensor with neither `page_id` nor `title`",
        "ConfluenceConfigError",
        "Give ConfluencePageSensor either page_id",
        "or title with space_key or space_id",
        operator_refused(lambda: ConfluencePageSensor(task_id="t")),
        "sensor-no-page",
    ),
    BadInput(
        "Sensor `title` without a space",
        "ConfluenceConfigError",
        "A title needs its space",
        "give exactly one of space_key and space_id",
        operator_refused(lambda: ConfluencePageSensor(task_id="t", title="Report")),
        "sensor-title-no-space",
    ),
    BadInput(
        "Sensor on a space key that does not exist (fails at the first poke)",
        "ConfluenceSpaceMissing",
        "Space 'NOPE' does not exist",
        "check space_key",
        sensor_in_missing_space,
        "sensor-missing-space",
    ),
    BadInput(
        "Comment with an empty `body`",
        "ConfluenceConfigError",
        "body is empty",
        "say what the comment should say",
        operator_refused(lambda: ConfluenceAddCommentOperator(task_id="t", page_id="123", body=" ")),
        "comment-empty-body",
    ),
    BadInput(
        "Comment with a grant that lacks `write:comment:confluence`",
        "ConfluenceScopeError",
        "scope does not match",
        "add the granular scope write:comment:confluence",
        page_untouched(
            lambda conn_id, page: ConfluenceAddCommentOperator(
                task_id="t", page_id=page["id"], body="<p>ok</p>", confluence_conn_id=conn_id
            ),
            ConfluenceScopeError,
            f"{DEFAULT_SCOPES} read:comment:confluence",
        ),
        "comment-without-scope",
    ),
    BadInput(
        "Download with an empty `filename`",
        "ConfluenceConfigError",
        "filename is empty",
        "say which attachment to download",
        operator_refused(lambda: ConfluenceDownloadAttachmentOperator(task_id="t", page_id="123", filename="")),
        "download-no-filename",
    ),
    BadInput(
        'Export `body_format="view"`',
        "ConfluenceConfigError",
        "body_format='view' is not one of",
        "storage, atlas_doc_format",
        operator_refused(lambda: ConfluenceExportPageOperator(task_id="t", page_id="123", body_format="view")),
        "export-body-format",
    ),
    BadInput(
        "Notifier with both `page_id` and a parent",
        "ConfluenceConfigError",
        "Give page_id (append to an incident-log page) or parent_id/parent_title",
        "drop one of them",
        operator_refused(lambda: ConfluenceNotifier(page_id="1", parent_id="2", space_key="OPS")),
        "notifier-page-and-parent",
    ),
    BadInput(
        "Notifier page per incident without a space",
        "ConfluenceConfigError",
        "A page per incident needs its space",
        "give space_key or space_id with parent_id or parent_title",
        operator_refused(lambda: ConfluenceNotifier(parent_title="Incidents")),
        "notifier-parent-no-space",
    ),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input(case: BadInput, fake_atlassian, airflow_db, monkeypatch, caplog, capsys) -> None:
    outcome = case.run(Env(fake_atlassian, monkeypatch, caplog, capsys))
    if case.error in TEXT_OUTCOMES:
        assert isinstance(outcome, str)
        text = outcome
    else:
        assert type(outcome).__name__ == case.error, f"{type(outcome).__name__}: {outcome}"
        text = str(outcome)
    assert case.says in text, text
    assert case.fix in text, text


# -- the docs table ----------------------------------------------------------------------------------

HEADER = "| Bad input | Error | The message says | What to do, as the message says it |\n|---|---|---|---|"


def table_row(case: BadInput) -> str:
    error = case.error if case.error in TEXT_OUTCOMES else f"`{case.error}`"
    return f"| {case.what} | {error} | {case.says} | {case.fix} |"


def docs_table() -> list[str]:
    """The table rows of the docs' "Bad inputs" page (header excluded)."""
    text = BAD_INPUTS_PAGE.read_text(encoding="utf-8")
    assert text.startswith("# Bad inputs\n")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert "\n".join(rows[:2]) == HEADER
    return rows[2:]


def test_the_list_is_long_enough_and_the_ids_unique() -> None:
    assert len(BAD_INPUTS) >= 25
    assert len({case.id for case in BAD_INPUTS}) == len(BAD_INPUTS)
    for case in BAD_INPUTS:
        assert not any("|" in cell for cell in (case.what, case.error, case.says, case.fix)), case.id  # table-safe


def test_the_docs_table_is_this_list() -> None:
    assert docs_table() == [table_row(case) for case in BAD_INPUTS]


def test_the_docs_page_follows_errors_and_troubleshooting() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert nav.index("errors.md") < nav.index("bad-inputs.md")


if __name__ == "__main__":  # print the docs table
    sys.stdout.write("\n".join([HEADER, *(table_row(case) for case in BAD_INPUTS)]) + "\n")
