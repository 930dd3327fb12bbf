"""The ``airflow-confluence`` command: authorize (loopback and paste modes), status, refresh.

``authorize`` runs as the installed console script in a child process while the test plays the browser: it
reads the consent URL the command prints, opens it on the emulator, and follows the emulator's redirect to
the command's loopback callback (or pastes it). The other commands run in-process through ``main``.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_confluence.auth.fingerprint import fingerprint
from airflow_provider_confluence.cli import main
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from helpers.airflow_env import airflow_major, put_connection, read_connection_extra, read_variable, scan_for_secrets
from helpers.cli import Cli, raw_extra

pytestmark = pytest.mark.airflow2

PASTED_CALLBACK = "https://airflow.example.com/confluence-oauth/callback"


def result_line(out: str, start: str) -> bool:
    """Whether a line of the command's output starts with ``start``."""
    return any(line.startswith(start) for line in out.splitlines())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def consent_url(cli: Cli, fake: Any) -> str:
    return cli.wait_for(re.escape(fake.auth_url) + r"\?\S+").group(0)


def atlassian(url: str) -> str:
    """Open the consent screen; return where Atlassian sends the browser."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


# -- authorize ------------------------------------------------------------------------------------


def test_authorize_in_loopback_mode_end_to_end(fake_atlassian, airflow_db):
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    callback = f"http://127.0.0.1:{free_port()}/callback"
    put_connection("cli_loop", fake_atlassian.connection("cli_loop", redirect_uri=callback))
    old = read_connection_extra("cli_loop")
    started = time.time()
    cli = Cli("authorize", "--conn-id", "cli_loop", "--timeout", "60")
    url = consent_url(cli, fake_atlassian)
    cli.wait_for("Waiting up to")
    forged = requests.get(f"{callback}?code=stolen&state=forged.state", timeout=10)
    assert forged.status_code == 400  # a page on this machine cannot feed the command a state it did not issue
    location = atlassian(url)
    assert location.startswith(callback + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    browser = requests.get(location, timeout=30)
    assert browser.status_code == 200 and "return to the terminal" in browser.text
    exit_code, out, err = cli.finish()
    assert exit_code == 0, err
    new_token = fake_atlassian.latest_refresh_token
    extra = read_connection_extra("cli_loop")
    assert extra["refresh_token"] == new_token != old["refresh_token"]
    assert started <= extra["grant_issued_at"] <= time.time()
    assert extra["cloud_id"] == fake_atlassian.cloud_id
    assert not {"access_token", "expires_at", "rotated_at"} & extra.keys()
    assert fingerprint(new_token) in out
    assert scan_for_secrets(out + err, [new_token, old["refresh_token"], fake_atlassian.client_secret, code]) == []
    ConfluenceOAuthHook("cli_loop").get_access_token()
    assert fake_atlassian.refresh_log[-1]["grant"] == "consent" and fake_atlassian.refresh_log[-1]["ok"]
    assert fake_atlassian.counters["code_exchanges"] == 1


def test_authorize_in_paste_mode_refuses_a_forged_state(fake_atlassian, airflow_db):
    put_connection("cli_paste", fake_atlassian.connection("cli_paste", redirect_uri=PASTED_CALLBACK))
    before = raw_extra("cli_paste")
    cli = Cli("authorize", "--conn-id", "cli_paste")
    location = atlassian(consent_url(cli, fake_atlassian))
    cli.wait_for("paste the whole URL")
    state = parse_qs(urlsplit(location).query)["state"][0]
    forged = location.replace(state, state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB"))
    exit_code, out, err = cli.finish(forged + "\n")
    assert exit_code == 2
    assert "not issued by this Airflow" in err
    assert raw_extra("cli_paste") == before
    assert fake_atlassian.counters["code_exchanges"] == 0


def test_authorize_in_paste_mode_saves_the_grant(fake_atlassian, airflow_db):
    put_connection("cli_paste_ok", fake_atlassian.connection("cli_paste_ok", redirect_uri=PASTED_CALLBACK))
    cli = Cli("authorize", "--conn-id", "cli_paste_ok")
    location = atlassian(consent_url(cli, fake_atlassian))
    exit_code, out, err = cli.finish(location + "\n")
    assert exit_code == 0, err
    assert read_connection_extra("cli_paste_ok")["refresh_token"] == fake_atlassian.latest_refresh_token
    assert scan_for_secrets(out + err, [fake_atlassian.latest_refresh_token, fake_atlassian.client_secret]) == []


def test_a_declined_consent_exits_1_and_changes_nothing(fake_atlassian, airflow_db):
    put_connection("cli_denied", fake_atlassian.connection("cli_denied", redirect_uri=PASTED_CALLBACK))
    before = raw_extra("cli_denied")
    fake_atlassian.deny_consent = True
    cli = Cli("authorize", "--conn-id", "cli_denied")
    exit_code, _out, err = cli.finish(atlassian(consent_url(cli, fake_atlassian)) + "\n")
    assert exit_code == 1
    assert "access_denied" in err
    assert raw_extra("cli_denied") == before


def test_authorize_a_connection_from_an_environment_variable_prints_its_new_extra(fake_atlassian, airflow_db):
    conn = fake_atlassian.connection("cli_env", redirect_uri=PASTED_CALLBACK, access_token="old-access-token")
    cli = Cli("authorize", "--conn-id", "cli_env", env={"AIRFLOW_CONN_CLI_ENV": json.dumps(conn)})
    exit_code, out, err = cli.finish(atlassian(consent_url(cli, fake_atlassian)) + "\n")
    assert exit_code == 0, err
    extra = json.loads(out)
    new_token = fake_atlassian.latest_refresh_token
    assert extra["refresh_token"] == new_token != conn["extra"]["refresh_token"]
    assert extra["scopes"] == conn["extra"]["scopes"] and extra["cloud_id"] == fake_atlassian.cloud_id
    assert "access_token" not in extra
    assert "environment variable" in err
    assert new_token not in err  # the token is on stdout only, for the secrets backend
    assert (
        scan_for_secrets(out + err, [fake_atlassian.client_secret, conn["extra"]["refresh_token"], "old-access-token"])
        == []
    )


def test_bad_input_exits_2(fake_atlassian, airflow_db, capfd):
    put_connection("cli_no_cb", fake_atlassian.connection("cli_no_cb", redirect_uri=None))
    put_connection(
        "cli_http", {"conn_type": "http", "host": "https://example.com", "login": "", "password": "", "extra": {}}
    )
    assert main(["authorize"]) == 2
    assert main(["authorize", "--conn-id", "cli_missing"]) == 2
    assert "no connection 'cli_missing'" in capfd.readouterr().err
    assert main(["authorize", "--conn-id", "cli_no_cb"]) == 2
    assert "has no redirect_uri" in capfd.readouterr().err
    assert main(["authorize", "--conn-id", "cli_http"]) == 2
    assert "not confluence_oauth" in capfd.readouterr().err
    assert main(["authorize", "--conn-id", "cli_no_cb", "--timeout", "0"]) == 2
    assert main(["status", "--conn-id", "cli_missing"]) == 2
    assert main(["refresh", "--conn-id", "cli_missing"]) == 2
    assert fake_atlassian.counters["token_requests"] == 0


# -- status and refresh ---------------------------------------------------------------------------


def test_status_shows_the_facts_of_every_connection_and_no_token(fake_atlassian, confluence_conn, capfd):
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    ConfluenceOAuthHook(confluence_conn).get_access_token()
    put_connection("cli_broken", fake_atlassian.connection("cli_broken", state_store="nowhere"))
    capfd.readouterr()
    assert main(["status"]) == 0
    out, err = capfd.readouterr()
    header = out.splitlines()[0].split()
    assert header[:4] == ["CONNECTION", "SITE", "SOURCE", "STORE"]
    row = next(line for line in out.splitlines() if line.startswith(confluence_conn + " "))
    extra = read_connection_extra(confluence_conn)
    assert fake_atlassian.site_url in row and " database " in row and " connection " in row
    assert fingerprint(extra["refresh_token"]) in row
    assert row.split()[-1] in ("364", "365")
    assert "cli_broken: Connection 'cli_broken' has state_store='nowhere'" in out
    assert (
        scan_for_secrets(out + err, [extra["refresh_token"], extra["access_token"], fake_atlassian.client_secret]) == []
    )

    assert main(["status", "--conn-id", confluence_conn, "--json"]) == 0
    [facts] = json.loads(capfd.readouterr().out)
    store = "connection (token broker)" if airflow_major() >= 3 else "connection"  # Airflow 3 tasks ask the broker
    assert facts["conn_id"] == confluence_conn and facts["store"] == store
    assert facts["access_token_expires_at"] == extra["expires_at"] and 364 < facts["days_left"] <= 365


def test_refresh_rotates_and_stores_now(fake_atlassian, confluence_conn, capfd):
    for round_ in (1, 2):  # the second time the access token is still valid: refresh anyway
        before = read_connection_extra(confluence_conn)
        assert main(["refresh", "--conn-id", confluence_conn]) == 0
        out, err = capfd.readouterr()
        after = read_connection_extra(confluence_conn)
        assert fake_atlassian.counters["refreshes"] == round_
        assert after["refresh_token"] == fake_atlassian.latest_refresh_token != before["refresh_token"]
        assert f"{fingerprint(before['refresh_token'])} -> {fingerprint(after['refresh_token'])}" in out
        assert (
            scan_for_secrets(
                out + err,
                [before["refresh_token"], after["refresh_token"], after["access_token"], fake_atlassian.client_secret],
            )
            == []
        )
    assert all(entry["was_latest"] for entry in fake_atlassian.refresh_log)


def test_refresh_refuses_the_memory_store_and_reports_a_dead_grant(fake_atlassian, airflow_db, capfd):
    put_connection("cli_memory", fake_atlassian.connection("cli_memory", state_store="memory"))
    assert main(["refresh", "--conn-id", "cli_memory"]) == 2
    assert "saves nothing" in capfd.readouterr().err
    assert fake_atlassian.counters["token_requests"] == 0
    put_connection(
        "cli_dead", fake_atlassian.connection("cli_dead", refresh_token="not-a-live-token", state_store="connection")
    )
    assert main(["refresh", "--conn-id", "cli_dead"]) == 1
    assert "authorize the app again" in capfd.readouterr().err
    assert read_connection_extra("cli_dead")["refresh_token"] == "not-a-live-token"


# -- migrate-store ------------------------------------------------------------------------------------


def test_migrate_store_moves_the_variable_stores_state_into_the_connection_once(fake_atlassian, airflow_db, capfd):
    """A deployment that ran the Variable store (Airflow 3's default before 0.2) moves its state explicitly."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    conn = fake_atlassian.connection("cli_moving", state_store="variable")
    put_connection("cli_moving", conn)
    ConfluenceOAuthHook("cli_moving").get_access_token()
    rotated = fake_atlassian.latest_refresh_token
    with create_session() as session:  # the upgrade: back to the default store
        row = session.query(Connection).filter(Connection.conn_id == "cli_moving").one()
        row.set_extra(json.dumps({k: v for k, v in conn["extra"].items() if k != "state_store"}))
    fake_atlassian.advance(7200)  # the access token has expired: the next use must redeem
    with pytest.raises(ConfluenceConfigError, match="airflow-confluence migrate-store cli_moving"):
        ConfluenceOAuthHook("cli_moving").get_access_token()
    assert fake_atlassian.counters["refreshes"] == 1  # the retired token in the row was not redeemed
    capfd.readouterr()

    assert main(["migrate-store", "cli_moving", "--dry-run"]) == 0
    out, _ = capfd.readouterr()
    # Its own result line; Airflow's logging may print the store's log line on stdout too, depending on how an
    # earlier test in the session left structlog configured.
    assert result_line(out, "Would move the token state of Variable 'confluence_oauth_token_state__cli_moving'")
    assert f"{fingerprint(conn['extra']['refresh_token'])} -> {fingerprint(rotated)}" in out
    assert read_variable("confluence_oauth_token_state__cli_moving") is not None

    assert main(["migrate-store", "cli_moving"]) == 0
    out, err = capfd.readouterr()
    assert result_line(out, "Moved the token state of Variable") and "was deleted" in out
    assert read_variable("confluence_oauth_token_state__cli_moving") is None
    assert read_connection_extra("cli_moving")["refresh_token"] == rotated
    assert scan_for_secrets(out + err, [rotated, conn["extra"]["refresh_token"], fake_atlassian.client_secret]) == []

    hook = ConfluenceOAuthHook("cli_moving")
    hook.token_manager._clock = fake_atlassian.now
    hook.get_access_token()  # continues the chain from the moved token
    assert fake_atlassian.counters["stale_refresh_reuses"] == 0 and fake_atlassian.counters["invalid_grants"] == 0
    assert main(["migrate-store", "cli_moving"]) == 0
    assert "nothing to move" in capfd.readouterr().out


def test_migrate_store_leaves_a_variable_that_does_not_descend_from_the_connection(fake_atlassian, airflow_db, capfd):
    from airflow.models.variable import Variable

    put_connection("cli_foreign", fake_atlassian.connection("cli_foreign"))
    planted = json.dumps({"refresh_token": "planted-by-a-task", "seed_fingerprint": "0123456789abcdef"})
    Variable.set("confluence_oauth_token_state__cli_foreign", planted)
    assert main(["migrate-store", "cli_foreign"]) == 0
    assert "Nothing was changed" in capfd.readouterr().out
    assert read_variable("confluence_oauth_token_state__cli_foreign") == planted
    assert read_connection_extra("cli_foreign")["refresh_token"] != "planted-by-a-task"
    assert main(["migrate-store", "no_such_conn"]) == 2
