"""The three ways to sign in (``auth_type``) through Airflow, against the emulator's service accounts and scoped API
tokens: a publish and the sensor in ``dag.test()`` runs, ``test_connection``'s live checks, the macros, the
refusals with their messages, and that nothing is stored and no secret is shown.

The emulator mints every client secret and API token as a canary: the session's leak audit (conftest.py) scans
every captured output, task log, XCom and rendered field for them. The tests below also look for the Basic
header's base64 form, which is no canary. Secrets are compared as booleans, so that a failure never prints one.
"""

from __future__ import annotations

import base64
import datetime
import logging
import sqlite3
from typing import Any

import pytest
import requests

from airflow_provider_confluence.auth.signin import expiry_text
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceConfigError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator
from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor
from helpers.airflow_env import AIRFLOW_HOME, put_connection, read_variable
from helpers.dags import new_dag, run_dag

pytestmark = pytest.mark.airflow2

TYPES = ("client_credentials", "api_token")


def raw_extra(conn_id: str) -> str | None:
    """The stored extra as it is in the database (ciphertext: it changes on any write)."""
    with sqlite3.connect(AIRFLOW_HOME / "airflow.db") as db:
        row = db.execute("SELECT extra FROM connection WHERE conn_id = ?", (conn_id,)).fetchone()
    return row[0] if row else None


def put_signin(fake: Any, auth_type: str, conn_id: str, **extra: Any) -> dict[str, Any]:
    """A connection row of this ``auth_type`` for a new credential; the credential's secrets for leak checks."""
    if auth_type == "client_credentials":
        cred = fake.add_service_account()
        conn = fake.service_account_connection(cred, **extra)
        secrets = [cred.client_secret]
    else:
        cred = fake.add_api_token("robot@example.com")
        conn = fake.api_token_connection(cred, **extra)
        secrets = [cred.token, base64.b64encode(f"{cred.email}:{cred.token}".encode()).decode()]
    put_connection(conn_id, conn)
    return {"conn": conn, "cred": cred, "secrets": secrets}


def shown(secrets: list[str], *texts: str) -> bool:
    return any(secret in text for secret in secrets for text in texts)


def nothing_stored(conn_id: str, before: str | None) -> bool:
    """The connection row is byte-identical and no Variable store or journal appeared."""
    untouched = raw_extra(conn_id) == before
    no_variables = (
        read_variable(f"confluence_oauth__{conn_id}") is None
        and read_variable(f"confluence_oauth_token_journal__{conn_id}") is None
    )
    return untouched and no_variables


@pytest.fixture(params=TYPES)
def signin(request, fake_atlassian, airflow_db) -> dict[str, Any]:
    conn_id = f"signin_{request.param}"
    made = put_signin(fake_atlassian, request.param, conn_id)
    return {"type": request.param, "conn_id": conn_id, **made}


# -- through Airflow ----------------------------------------------------------------------------------


def test_a_publish_in_a_dag_run(fake_atlassian, signin, caplog):
    fake, conn_id = fake_atlassian, signin["conn_id"]
    fake.add_space("DEMO")
    before = raw_extra(conn_id)
    dag = new_dag(f"publish_{signin['type']}")
    ConfluenceCreatePageOperator(
        task_id="publish",
        dag=dag,
        confluence_conn_id=conn_id,
        space_key="DEMO",
        title="Nightly report",
        body="# Nightly\n\nAll green.",
        representation="markdown",
    )
    stored = run_dag(dag)
    page = next(p for p in fake.pages if p["title"] == "Nightly report")
    assert stored["return_value"]["publish"]["id"] == page["id"]
    assert stored["confluence_page_url"]["publish"] == f"{fake.site_url}/wiki{page['_links']['webui']}"
    assert nothing_stored(conn_id, before)
    counters = fake.counters
    assert counters.get("refreshes", 0) == 0
    if signin["type"] == "client_credentials":
        assert counters["client_credentials_grants"] == 1  # one token for the whole run, from this process's cache
        assert counters["accessible_resources_calls"] == 1
    else:
        assert counters["token_requests"] == 0  # HTTP Basic: no token at all
        assert counters["tenant_info_calls"] == 1
    assert shown(signin["secrets"], caplog.text) is False


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_the_sensor_in_a_dag_run(fake_atlassian, signin, mode):
    fake, conn_id = fake_atlassian, signin["conn_id"]
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook")
    fake.fail_next(404, times=1, route="GET /wiki/api/v2/pages/{id}")  # the first look: not there yet
    dag = new_dag(f"sensor_{signin['type']}_{mode}")
    ConfluencePageSensor(
        task_id="wait",
        dag=dag,
        confluence_conn_id=conn_id,
        page_id=page["id"],
        poke_interval=0.1,
        timeout=60,
        deferrable=mode == "deferrable",
    )
    stored = run_dag(dag)
    assert stored["return_value"]["wait"]["id"] == page["id"]
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/pages/{id}"] == 2


def test_no_store_and_no_broker_even_where_a_3lo_connection_would_need_the_broker(fake_atlassian, signin, monkeypatch):
    """In an Airflow 3 worker (no ORM) a 3LO connection asks the token broker; these two never do."""
    from airflow_provider_confluence.auth.broker import client as broker_client
    from airflow_provider_confluence.auth.stores import choice

    monkeypatch.setattr(choice, "orm_available", lambda: False)

    def no_broker(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the token broker was asked")

    monkeypatch.setattr(broker_client.BrokerTokenSource, "get_access_token", no_broker)
    fake_atlassian.add_space("DEMO")
    hook = ConfluenceOAuthHook(signin["conn_id"])
    assert hook.get_space_id("DEMO")
    assert isinstance(hook.authorization, object)
    assert choice.uses_broker(hook.settings) is False


def test_test_connection_makes_a_live_check(fake_atlassian, signin):
    fake = fake_atlassian
    ok, message = ConfluenceOAuthHook(signin["conn_id"]).test_connection()
    assert ok, message
    assert f"cloud id {fake.cloud_id}" in message
    if signin["type"] == "client_credentials":
        assert fake.counters["client_credentials_grants"] == 1
        assert "service account" in message
    else:
        assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces"] == 1
        assert expiry_text(signin["cred"].expires_on) in message
    assert shown(signin["secrets"], message) is False


def test_the_macros(fake_atlassian, signin):
    from airflow_provider_confluence import macros

    fake = fake_atlassian
    header = macros.authorization_header(signin["conn_id"])
    answer = requests.get(
        f"{fake.api_url}/ex/confluence/{fake.cloud_id}/wiki/api/v2/spaces",
        headers={"Authorization": header},
        timeout=10,
    )
    assert answer.status_code == 200
    if signin["type"] == "client_credentials":
        token = macros.access_token(signin["conn_id"])
        assert (header == f"Bearer {token}") is True
    else:
        with pytest.raises(ConfluenceConfigError, match="authorization_header"):
            macros.access_token(signin["conn_id"])


# -- refusals -----------------------------------------------------------------------------------------


def test_a_wrong_client_secret_is_invalid_client_with_what_to_do(fake_atlassian, airflow_db, caplog):
    fake = fake_atlassian
    fake.add_space("DEMO")
    made = put_signin(fake, "client_credentials", "sa_wrong")
    conn = dict(made["conn"], password=made["cred"].client_secret[::-1])
    put_connection("sa_wrong", conn)
    with pytest.raises(ConfluenceAuthError) as caught:
        ConfluenceOAuthHook("sa_wrong").get_space_id("DEMO")
    assert caught.value.error == "invalid_client"
    assert "Service accounts" in caught.value.message
    ok, message = ConfluenceOAuthHook("sa_wrong").test_connection()
    assert ok is False
    assert "rejected the client credentials" in message
    assert fake.counters["client_auth_failures"] == 2
    assert shown(made["secrets"] + [conn["password"]], str(caught.value), message, caplog.text) is False


def test_a_failed_service_account_task_fails_the_run(fake_atlassian, airflow_db):
    fake = fake_atlassian
    fake.add_space("DEMO")
    made = put_signin(fake, "client_credentials", "sa_revoked")
    fake.revoke_service_account(made["cred"].client_id)
    dag = new_dag("sa_revoked")
    ConfluenceCreatePageOperator(
        task_id="publish", dag=dag, confluence_conn_id="sa_revoked", space_key="DEMO", title="Never", body="<p>x</p>"
    )
    with pytest.raises(AssertionError, match="failed"):
        run_dag(dag)
    assert [p for p in fake.pages if p["title"] == "Never"] == []


@pytest.mark.parametrize("wrong", ["email", "token"])
def test_a_wrong_email_or_token_is_a_clear_error(fake_atlassian, airflow_db, caplog, wrong):
    fake = fake_atlassian
    fake.add_space("DEMO")
    made = put_signin(fake, "api_token", "api_wrong")
    conn = dict(made["conn"])
    if wrong == "email":
        conn["login"] = "someone.else@example.com"
    else:
        conn["password"] = made["cred"].token[::-1]
    put_connection("api_wrong", conn)
    with pytest.raises(ConfluenceAuthError) as caught:
        ConfluenceOAuthHook("api_wrong").get_space_id("DEMO")
    assert caught.value.status_code == 401
    assert "the e-mail (Login) or the API token (Password) is wrong" in caught.value.message
    assert "Create a scoped API token" in caught.value.message
    assert fake.counters["api_token_failures"] == 1  # refused once: no retry with the same credentials
    ok, message = ConfluenceOAuthHook("api_wrong").test_connection()
    assert ok is False
    assert "Atlassian refused the e-mail and API token" in message
    secrets = made["secrets"] + [
        conn["password"],
        base64.b64encode(f"{conn['login']}:{conn['password']}".encode()).decode(),
    ]
    assert shown(secrets, str(caught.value), repr(caught.value.__cause__), message, caplog.text) is False


def test_an_expired_api_token_says_so(fake_atlassian, airflow_db, caplog):
    fake = fake_atlassian
    fake.add_space("DEMO")
    cred = fake.add_api_token("robot@example.com", expires=fake.now() + 60)
    fake.advance(120)
    yesterday = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).date()
    put_connection("api_expired", fake.api_token_connection(cred, credential_expires=yesterday.isoformat()))
    with caplog.at_level(logging.WARNING), pytest.raises(ConfluenceAuthError) as caught:
        ConfluenceOAuthHook("api_expired").get_space_id("DEMO")
    assert f"the token expired on {expiry_text(yesterday)}" in caught.value.message
    assert fake.counters["api_token_expired_uses"] == 1
    assert any(r.levelno == logging.ERROR and "expired on" in r.getMessage() for r in caplog.records)


def test_an_api_token_that_expires_soon_is_warned_about(fake_atlassian, airflow_db, caplog):
    fake = fake_atlassian
    fake.add_space("DEMO")
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)).date()
    cred = fake.add_api_token("robot@example.com", expires=soon)
    put_connection("api_soon", fake.api_token_connection(cred))
    with caplog.at_level(logging.WARNING):
        hook = ConfluenceOAuthHook("api_soon")
        hook.get_space_id("DEMO")
        hook.get_space_id("DEMO")
    warnings = [r for r in caplog.records if f"expires on {expiry_text(soon)}" in r.getMessage()]
    assert len(warnings) == 1


def test_the_cloud_id_extra_spares_the_tenant_info_call(fake_atlassian, airflow_db):
    fake = fake_atlassian
    fake.add_space("DEMO")
    put_signin(fake, "api_token", "api_cloud", cloud_id=fake.cloud_id)
    assert ConfluenceOAuthHook("api_cloud").get_space_id("DEMO")
    assert fake.counters.get("tenant_info_calls", 0) == 0


# -- consent, the CLI and the form: only 3LO has a consent and a refresh token -----------------------------


def test_the_cli_refuses_to_authorize_or_refresh_and_status_shows_no_store(fake_atlassian, signin, capfd):
    from airflow_provider_confluence.cli import main

    conn_id = signin["conn_id"]
    before = raw_extra(conn_id)
    capfd.readouterr()
    assert main(["authorize", "--conn-id", conn_id, "--timeout", "1"]) == 2
    assert main(["refresh", "--conn-id", conn_id]) == 2
    _out, err = capfd.readouterr()
    assert f"auth_type={signin['type']}, which signs in without a person's consent" in err
    assert "there is nothing to refresh or save" in err
    assert main(["status"]) == 0
    out, _err = capfd.readouterr()
    row = next(line for line in out.splitlines() if line.startswith(conn_id + " "))
    assert f"none ({signin['type']})" in row
    assert nothing_stored(conn_id, before)
    assert fake_atlassian.counters["token_requests"] == 0
    assert shown(signin["secrets"], out, err) is False


def test_the_connect_page_says_no_consent_is_needed(fake_atlassian, signin, monkeypatch):
    from helpers.airflow_env import airflow_major

    if airflow_major() < 3:
        pytest.skip("Connect is a page of the Airflow 3 API server")
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from helpers.consent_app import BASE, USERS, _app

    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
    purge_cached_app()
    try:
        jwt = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="alice", role=USERS["alice"]))
        browser = TestClient(_app(), base_url=BASE, follow_redirects=False, cookies={"_token": jwt})
        page = browser.get(f"/confluence-oauth/connect/{signin['conn_id']}")
        status = browser.get("/confluence-oauth/status").text
    finally:
        purge_cached_app()
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "No consent needed" in page.text
    row = status[status.index(f"<code>{signin['conn_id']}</code>") :]
    row = row[: row.index("</tr>")]
    assert f"No consent needed ({signin['type']})" in row
    assert "connect/" not in row
    assert shown(signin["secrets"], page.text, status) is False


def test_the_airflow2_form_has_the_new_fields():
    from helpers.airflow_env import airflow_major

    if airflow_major() >= 3:
        pytest.skip("Airflow 3 reads conn-fields (test_signin_settings.py checks them)")
    widgets = ConfluenceOAuthHook.get_connection_form_widgets()
    assert {"auth_type", "credential_expires"} <= set(widgets)
    behaviour = ConfluenceOAuthHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["login"] == "Client ID (or e-mail for api_token)"
    assert behaviour["placeholders"]["auth_type"] == "oauth2_3lo"


# -- several OS processes --------------------------------------------------------------------------------

WORKER_SCRIPT = """
import os, sys, time
sys.stdout = sys.stderr
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
conn_id, ready, go = sys.argv[1:4]
hook = ConfluenceOAuthHook(conn_id)
hook.get_space_id("DEMO")          # fetches this process's own token
open(ready, "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(go):      # until every process has fetched one
    if time.monotonic() > deadline:
        raise SystemExit("never told to go")
    time.sleep(0.01)
hook.get_conn().request("GET", "/wiki/api/v2/spaces", params={"limit": 1})  # the cached token still works
"""


def test_several_processes_fetching_service_account_tokens_at_once_is_harmless(fake_atlassian, tmp_path):
    """Each process gets its own token; none invalidates another's, because nothing rotates."""
    import json
    import os
    import subprocess
    import sys
    import time

    from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_ENV
    from helpers.airflow_env import AIRFLOW_ENV

    fake = fake_atlassian
    fake.add_space("DEMO")
    cred = fake.add_service_account()
    env = {
        **os.environ,
        **AIRFLOW_ENV,
        ALLOWED_HOSTS_ENV: fake.allowed_endpoint_hosts,
        "AIRFLOW_CONN_SA_PROCESSES": json.dumps(fake.service_account_connection(cred)),
    }
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{n}" for n in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, "sa_processes", str(ready), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ready in readies
    ]
    try:
        deadline = time.monotonic() + 120
        for proc, ready in zip(procs, readies, strict=True):
            while not ready.exists():  # each process has fetched its token and made a call
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                assert time.monotonic() < deadline
                time.sleep(0.02)
        go.touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err[-2000:] for _out, err in outputs]
    assert fake.counters["client_credentials_grants"] == 3  # one token per process, never stored or shared
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces"] == 6  # 3 lookups + 3 later calls
    assert shown([cred.client_secret], *(out + err for out, err in outputs)) is False
