"""Fault injection: processes killed in the middle of a rotation, and every way the network can fail.

1. A real OS process (helpers/fault_worker.py) uses the hook on a connection row in the session's SQLite
   metadata database and kills itself with SIGKILL at one exact point of a rotation: (a) after Atlassian's
   token response and before the save, (b) during the save (the UPDATE is in the open transaction, never
   committed), (c) after the save. A new process then runs the same task. Within the 10-minute reuse leeway
   it recovers without a new consent; after it, it raises ``ConfluenceReauthorizationRequired`` and writes
   nothing (the stored extra stays byte-identical, ciphertext included). After (c) the next run just works.
2. The token endpoint answers 500, times out, sends malformed JSON or an HTML page, with and without the
   request having landed; the gateway answers bursts of 502/503/504; the connection resets in the middle of
   pagination. Each ends in success after retries, or in a ConfluenceError subclass with a useful message;
   a listing is never returned truncated. Sleeps are recorded, never slept.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceAuthError,
    ConfluenceConnectionError,
    ConfluenceReauthorizationRequired,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import ConfluenceGetSpacesOperator
from helpers.airflow_env import AIRFLOW_HOME, put_connection, read_connection_extra
from helpers.fault_proxy import FaultProxy

pytestmark = pytest.mark.airflow2

WORKER = Path(__file__).resolve().parents[1] / "helpers" / "fault_worker.py"
TOKEN_ROUTE = "POST /oauth/token"
SPACES_ROUTE = "GET /wiki/api/v2/spaces"
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
    "<p>The server encountered a temporary error and could not complete your request.</p></body></html>"
)


def raw_extra(conn_id: str) -> str:
    """The connection's extra as stored: Fernet ciphertext, which changes on any write (a fresh IV)."""
    with sqlite3.connect(AIRFLOW_HOME / "airflow.db") as db:
        (value,) = db.execute("SELECT extra FROM connection WHERE conn_id = ?", (conn_id,)).fetchone()
    return value


def run_worker(
    conn_id: str, tmp_path: Path, *, kill_at: str | None = None, force_refresh: bool = False
) -> tuple[int, dict, str | None]:
    """Run one task-like process; return (exit code, its JSON line or {}, the point it died at)."""
    marker = tmp_path / f"marker-{kill_at}"
    env = {**os.environ, "FAULT_MARKER": str(marker), "FORCE_REFRESH": "1" if force_refresh else "0"}
    env.pop("FAULT_KILL_AT", None)
    if kill_at:
        env["FAULT_KILL_AT"] = kill_at
    result = subprocess.run(
        [sys.executable, str(WORKER), "run", conn_id, "DEMO"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(WORKER.parent),
    )
    lines = result.stdout.strip().splitlines()
    output = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    died_at = marker.read_text() if marker.exists() else None
    if result.returncode not in (0, 3, -signal.SIGKILL):
        pytest.fail(f"the worker failed unexpectedly ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.returncode, output, died_at


@pytest.fixture
def killed_worker(fake_atlassian, airflow_db, tmp_path, request) -> Iterator[dict]:
    """A connection whose first task process was SIGKILLed at ``request.param``; what was seen around it."""
    point = request.param
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    conn_id = f"killed_{point}"
    put_connection(conn_id, fake.connection(conn_id))
    planted = fake.latest_refresh_token
    before = raw_extra(conn_id)
    code, _, died_at = run_worker(conn_id, tmp_path, kill_at=point)
    assert (code, died_at) == (-signal.SIGKILL, point), "the process must die exactly at the injected point"
    assert fake.counters["refreshes"] == 1
    rotated = fake.latest_refresh_token
    assert rotated != planted  # Atlassian did rotate: the planted token is superseded
    stored = read_connection_extra(conn_id)
    if point == "after_save":
        assert stored["refresh_token"] == rotated and stored["access_token"]
    else:
        assert raw_extra(conn_id) == before  # nothing was written; (b): the open transaction was rolled back
        assert stored["refresh_token"] == planted
    yield {
        "fake": fake,
        "conn_id": conn_id,
        "planted": planted,
        "rotated": rotated,
        "space_id": space["id"],
        "point": point,
    }


@pytest.mark.parametrize("killed_worker", ["after_response", "during_save", "after_save"], indirect=True)
def test_the_next_run_within_the_leeway_recovers_without_consent(killed_worker, tmp_path):
    fake, conn_id = killed_worker["fake"], killed_worker["conn_id"]
    code, output, _ = run_worker(conn_id, tmp_path)
    assert code == 0, output
    assert output["space_id"] == killed_worker["space_id"] and output["store"] == "connection"
    counters = fake.counters
    assert counters["invalid_grants"] == counters["grant_revocations"] == counters["code_exchanges"] == 0
    stored = read_connection_extra(conn_id)
    assert stored["refresh_token"] == fake.latest_refresh_token  # the store holds the newest token
    if killed_worker["point"] == "after_save":
        assert counters["refreshes"] == 1  # the saved access token was simply used
        assert counters["stale_refresh_reuses"] == 0
    else:
        # the superseded token, still inside Atlassian's leeway, was accepted and gave a new pair
        assert counters["refreshes"] == 2
        last = fake.refresh_log[-1]
        assert last["ok"] and last["within_leeway"] and not last["was_latest"]
        assert stored["refresh_token"] not in (killed_worker["planted"], killed_worker["rotated"])


@pytest.mark.parametrize("killed_worker", ["after_response", "during_save"], indirect=True)
def test_the_next_run_after_the_leeway_asks_for_consent_and_deletes_nothing(killed_worker, tmp_path):
    fake, conn_id = killed_worker["fake"], killed_worker["conn_id"]
    fake.advance(601)
    before = raw_extra(conn_id)
    code, output, _ = run_worker(conn_id, tmp_path)
    assert code == 3
    assert output["error"] == ConfluenceReauthorizationRequired.__name__ and output["conn_id"] == conn_id
    assert "authorize the app again" in output["message"] and repr(conn_id) in output["message"]
    assert "left as it is" in output["message"]
    assert raw_extra(conn_id) == before  # byte-identical: not even re-encrypted
    assert read_connection_extra(conn_id)["refresh_token"] == killed_worker["planted"]
    assert fake.refresh_log[-1]["reason"] == "reuse_outside_leeway"


@pytest.mark.parametrize("killed_worker", ["after_save"], indirect=True)
def test_a_kill_after_the_save_is_harmless_after_the_leeway_too(killed_worker, tmp_path):
    fake, conn_id = killed_worker["fake"], killed_worker["conn_id"]
    fake.advance(601)
    code, output, _ = run_worker(conn_id, tmp_path, force_refresh=True)  # redeem the saved refresh token
    assert code == 0, output
    counters = fake.counters
    assert counters["refreshes"] == 2
    assert counters["invalid_grants"] == counters["stale_refresh_reuses"] == counters["grant_revocations"] == 0
    assert read_connection_extra(conn_id)["refresh_token"] == fake.latest_refresh_token


# -- in-process: the token endpoint, the gateway and pagination failing ---------------------------------


@pytest.fixture
def client_sleeps(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("airflow_provider_confluence.client.confluence._sleep", slept.append)
    return slept


@pytest.fixture
def proxy(fake_atlassian, monkeypatch) -> Iterator[FaultProxy]:
    """The fault proxy in front of the emulator; the deployment lists both as endpoint hosts."""
    with FaultProxy(fake_atlassian.url) as running:
        monkeypatch.setenv(
            "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS",
            f"{fake_atlassian.allowed_endpoint_hosts},{running.url.split('//', 1)[1]}",
        )
        yield running


def make_hook(fake, conn_id: str, **extra) -> tuple[ConfluenceOAuthHook, list[float]]:
    """A hook on a fresh connection row (connection store); the token manager's sleeps are recorded."""
    put_connection(conn_id, fake.connection(conn_id, **extra))
    hook = ConfluenceOAuthHook(conn_id)
    slept: list[float] = []
    hook.token_manager._sleep = slept.append
    return hook, slept


def assert_rotation_kept(fake, conn_id: str) -> None:
    counters = fake.counters
    assert counters["invalid_grants"] == counters["grant_revocations"] == 0
    assert read_connection_extra(conn_id)["refresh_token"] == fake.latest_refresh_token


TOKEN_FAILURES = {
    "500": (500, None),
    "malformed JSON": (200, '{"access_token": "x", "expires_in": '),
    "JSON nested too deep": (200, "[" * 5000),
    "HTML error page": (502, HTML_PAGE),
    "504 with no body": (504, ""),
}


@pytest.mark.parametrize("landed", [False, True], ids=["not-landed", "landed"])
@pytest.mark.parametrize("failure", list(TOKEN_FAILURES))
def test_token_endpoint_failures_are_retried_with_the_same_token(
    fake_atlassian, airflow_db, client_sleeps, failure, landed
):
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    status, body = TOKEN_FAILURES[failure]
    hook, slept = make_hook(fake, "token_flaky")
    fake.fail_next(status, times=2, route=TOKEN_ROUTE, body=body, landed=landed)
    assert hook.get_space_id("DEMO") == space["id"]
    assert fake.counters["token_requests"] == 3 and len(slept) == 2
    assert fake.counters["refreshes"] == (3 if landed else 1)  # landed: each lost answer had rotated the grant
    assert_rotation_kept(fake, "token_flaky")


@pytest.mark.parametrize("failure", ["500", "HTML error page", "JSON nested too deep"])
def test_a_token_endpoint_that_keeps_failing_is_a_clean_transient_error(fake_atlassian, airflow_db, failure):
    fake = fake_atlassian
    status, body = TOKEN_FAILURES[failure]
    hook, slept = make_hook(fake, "token_down")
    before = raw_extra("token_down")
    fake.fail_next(status, times=50, route=TOKEN_ROUTE, body=body)
    with pytest.raises(ConfluenceAuthError) as info:
        hook.get_access_token()
    error = info.value
    assert type(error) is ConfluenceAuthError and error.transient and error.status_code == status
    assert f"answered {status}" in error.message and "may be retried" in error.message
    assert "<html" not in error.message.lower()  # an HTML page is described, not echoed
    assert fake.counters["token_requests"] == 4 and sum(slept) <= 150  # 4 tries, well inside the leeway
    assert raw_extra("token_down") == before


def test_lost_answers_until_giving_up_then_the_next_run_recovers(fake_atlassian, airflow_db):
    """Every try landed (the grant rotated 4 times) but no answer came back: the task fails cleanly, nothing is
    saved, and a rerun inside the leeway redeems the stored (superseded) token without a new consent."""
    fake = fake_atlassian
    fake.add_space("DEMO")
    hook, _ = make_hook(fake, "token_lost")
    planted = read_connection_extra("token_lost")["refresh_token"]
    fake.fail_next(503, times=4, route=TOKEN_ROUTE, landed=True)
    with pytest.raises(ConfluenceAuthError, match="may be retried"):
        hook.get_access_token()
    assert fake.counters["refreshes"] == 4 and read_connection_extra("token_lost")["refresh_token"] == planted
    fake.advance(300)
    rerun = ConfluenceOAuthHook("token_lost")
    assert rerun.get_space_id("DEMO")
    assert_rotation_kept(fake, "token_lost")


def test_a_token_request_that_times_out_after_landing_is_retried(fake_atlassian, airflow_db, proxy):
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    proxy.add("hang_after_forward", method="POST", path_prefix="/oauth/token")
    hook, slept = make_hook(fake, "token_slow", grant_url=proxy.url + "/oauth/token", timeout=1)
    assert hook.get_space_id("DEMO") == space["id"]
    assert proxy.injected == [("hang_after_forward", "POST", "/oauth/token")]
    assert fake.counters["refreshes"] == 2 and len(slept) == 1
    assert_rotation_kept(fake, "token_slow")


def test_a_token_endpoint_that_never_answers_is_a_clean_error(fake_atlassian, airflow_db, proxy):
    fake = fake_atlassian
    proxy.add("hang", method="POST", path_prefix="/oauth/token", times=10)
    hook, _ = make_hook(fake, "token_hangs", grant_url=proxy.url + "/oauth/token", timeout=1)
    before = raw_extra("token_hangs")
    with pytest.raises(ConfluenceAuthError) as info:
        hook.get_access_token()
    assert info.value.transient and "could not be reached (ReadTimeout)" in info.value.message
    assert len(proxy.injected) == 4 and fake.counters["token_requests"] == 0
    assert raw_extra("token_hangs") == before


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_bursts_are_retried(fake_atlassian, airflow_db, client_sleeps, status):
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    hook, _ = make_hook(fake, "gateway_burst")
    fake.fail_next(status, times=4, route=SPACES_ROUTE)
    assert hook.get_space_id("DEMO") == space["id"]
    assert fake.counters["api_calls_by_route"][SPACES_ROUTE] == 5 and len(client_sleeps) == 4


def test_a_503_burst_with_retry_after_is_waited_out(fake_atlassian, airflow_db, client_sleeps):
    fake = fake_atlassian
    fake.add_space("DEMO")
    hook, _ = make_hook(fake, "gateway_503")
    fake.throttle(times=3, retry_after="7", status=503)
    assert hook.get_space_id("DEMO")
    assert len(client_sleeps) == 3 and all(7 <= s <= 8 for s in client_sleeps)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_that_keeps_failing_is_a_clean_api_error(fake_atlassian, airflow_db, client_sleeps, status):
    fake = fake_atlassian
    fake.add_space("DEMO")
    hook, _ = make_hook(fake, "gateway_down")
    fake.fail_next(status, times=50, route=SPACES_ROUTE)
    with pytest.raises(ConfluenceApiError) as info:
        hook.get_space_id("DEMO")
    assert type(info.value) is ConfluenceApiError and info.value.status_code == status
    assert "Confluence or the Atlassian gateway failed" in info.value.message
    assert fake.counters["api_calls_by_route"][SPACES_ROUTE] == 6 and sum(client_sleeps) <= 180


def test_a_create_that_failed_before_landing_says_so_and_is_not_resent(fake_atlassian, airflow_db, client_sleeps):
    fake = fake_atlassian
    fake.add_space("DEMO")
    hook, _ = make_hook(fake, "create_502")
    fake.fail_next(502, route="POST /wiki/api/v2/pages")
    with pytest.raises(ConfluenceApiError, match="The page was not created; the POST was not re-sent"):
        hook.create_page(space_key="DEMO", title="Report", body="<p>x</p>")
    assert not [p for p in fake.pages if p["title"] == "Report"]
    assert fake.counters["api_calls_by_route"]["POST /wiki/api/v2/pages"] == 1


def test_a_create_whose_answer_timed_out_after_landing_is_found_not_resent(
    fake_atlassian, airflow_db, proxy, client_sleeps
):
    fake = fake_atlassian
    fake.add_space("DEMO")
    hook, _ = make_hook(fake, "create_lost", api_url=proxy.url, timeout=2)
    proxy.add("hang_after_forward", method="POST", path_prefix="/ex/confluence/")
    page = hook.create_page(space_key="DEMO", title="Report", body="<p>x</p>")
    assert [p["id"] for p in fake.pages if p["title"] == "Report"] == [page["id"]]  # one page: checked, not re-sent
    assert fake.counters["api_calls_by_route"]["POST /wiki/api/v2/pages"] == 1


# -- pagination broken half-way --------------------------------------------------------------------------


@pytest.fixture
def many_spaces(fake_atlassian, airflow_db, proxy, client_sleeps) -> tuple[str, set[str]]:
    """600 spaces (3 pages of 250) behind the proxy; the connection's API calls go through it."""
    spaces = fake_atlassian.add_spaces(600)
    conn_id = "paged"
    put_connection(conn_id, fake_atlassian.connection(conn_id, api_url=proxy.url, timeout=2))
    return conn_id, {s["id"] for s in spaces}


def get_spaces(conn_id: str) -> list[dict]:
    return ConfluenceGetSpacesOperator(task_id="spaces", confluence_conn_id=conn_id).execute(context={})


@pytest.mark.parametrize(("kind", "times"), [("reset", 2), ("reset_mid_body", 2), ("hang_after_forward", 1)])
def test_a_broken_connection_in_the_middle_of_pagination_is_retried(many_spaces, proxy, client_sleeps, kind, times):
    conn_id, expected = many_spaces
    proxy.add(kind, method="GET", path_prefix="/ex/confluence/", query_contains="cursor=", times=times)
    spaces = get_spaces(conn_id)
    assert [s["id"] for s in spaces] == sorted(expected, key=int)  # all, once each, in order
    assert proxy.pending() == 0 and len(client_sleeps) == times


def test_a_listing_that_keeps_breaking_half_way_is_an_error_not_a_short_list(many_spaces, proxy, fake_atlassian):
    conn_id, _ = many_spaces
    proxy.add("reset", method="GET", path_prefix="/ex/confluence/", query_contains="cursor=", times=100)
    with pytest.raises(ConfluenceConnectionError, match="failed after 6 tries"):
        get_spaces(conn_id)
    assert len([k for k, _, _ in proxy.injected]) == 6


def test_a_second_page_that_keeps_failing_is_an_error_not_a_short_list(fake_atlassian, airflow_db, client_sleeps):
    fake = fake_atlassian
    fake.add_spaces(300)
    hook, _ = make_hook(fake, "paged_500")
    spaces = hook.iter_spaces()
    first_page = [next(spaces) for _ in range(250)]
    fake.fail_next(500, times=50, route=SPACES_ROUTE)
    with pytest.raises(ConfluenceApiError) as info:
        first_page.extend(spaces)
    assert info.value.status_code == 500 and "cursor=" in info.value.url
    assert len(first_page) == 250
