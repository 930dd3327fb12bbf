"""Test in the connection form, through a real Airflow 3 ``api-server`` on PostgreSQL.

``POST /api/v2/connections/test`` (enabled with ``[core] test_connection = Enabled``) runs the hook's
``test_connection()`` in the API server under a random temporary connection id. With a valid access token saved in
the real store of that grant, the test makes one live request through the gateway (the emulator counts it) and
never refreshes; with none, it says so and what to do; a form that points an endpoint elsewhere gets no live
request, and the saved token goes nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_confluence.testing import FakeAtlassian
from helpers.airflow_env import airflow_major
from helpers.deployment import Deployment, helper
from helpers.processes import api_server_env, free_port, fresh_postgres_database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow_server,
    pytest.mark.skipif(airflow_major() < 3, reason="the Airflow 3 API server"),
]

CONN_ID = "confluence_button"
ROUTE = "GET /wiki/api/v2/spaces"
SERVER_START_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeAtlassian, FakeAtlassian]]:
    """The connection's emulator, and another allowed host that an editor of the form points an endpoint at."""
    with FakeAtlassian() as fake, FakeAtlassian() as elsewhere:
        fake.add_space("DEMO")
        yield fake, elsewhere


@pytest.fixture(scope="module")
def server(
    fakes: tuple[FakeAtlassian, FakeAtlassian], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    fake, elsewhere = fakes
    home = tmp_path_factory.mktemp("test-button-home")
    (home / "plugins").mkdir()
    port = free_port()
    env = {
        **api_server_env(home, port),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": f"{fake.allowed_endpoint_hosts},{elsewhere.allowed_endpoint_hosts}",
    }
    env.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
    with fresh_postgres_database(f"apc_button_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        deployment = Deployment(env, home, port)
        try:
            deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
            deployment.wait_for_api_server(SERVER_START_TIMEOUT)
            yield deployment
        finally:
            deployment.stop()


def press_test(server: Deployment, conn: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """What the UI's Test button sends: the form's fields, under the connection's id."""
    body = {
        "connection_id": CONN_ID,
        "conn_type": conn["conn_type"],
        "host": conn["host"],
        "login": conn["login"],
        "password": conn["password"],
        "extra": json.dumps(extra),
    }
    response = server.api("POST", "/connections/test", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def saved_extra(server: Deployment) -> dict[str, Any]:
    return json.loads(helper(server.env, "read-extra", CONN_ID))


def spaces_calls(fake: FakeAtlassian) -> int:
    return fake.counters["api_calls_by_route"].get(ROUTE, 0)


def test_without_a_valid_saved_token_the_test_says_what_to_do_and_sends_nothing(server, fakes):
    fake, _ = fakes
    conn = fake.connection(CONN_ID)
    helper(server.env, "put-connection", CONN_ID, json.dumps(conn))
    fake.reset_counters()
    answer = press_test(server, conn, conn["extra"])
    assert answer["status"] is True and "holds no valid access token" in answer["message"]
    assert f"airflow-confluence refresh --conn-id {CONN_ID}" in answer["message"]
    assert fake.counters["token_requests"] == fake.counters["api_calls"] == 0


def test_a_valid_saved_token_makes_one_live_request_through_the_gateway_and_no_refresh(server, fakes):
    fake, _ = fakes
    conn = fake.connection(CONN_ID)
    helper(server.env, "put-connection", CONN_ID, json.dumps(conn))
    helper(server.env, "refresh", CONN_ID)  # a task ran: the row holds a rotated grant and a valid access token
    extra = saved_extra(server)
    refreshes, token_requests, calls = fake.counters["refreshes"], fake.counters["token_requests"], spaces_calls(fake)

    answer = press_test(server, conn, extra)
    assert answer["status"] is True, answer["message"]
    assert f"saved in connection {CONN_ID!r}" in answer["message"] and fake.cloud_id in answer["message"]
    assert spaces_calls(fake) == calls + 1  # the live request reached the emulator
    assert (fake.counters["refreshes"], fake.counters["token_requests"]) == (refreshes, token_requests)
    assert (saved_extra(server)["refresh_token"] == extra["refresh_token"]) is True  # the grant did not move

    stale = press_test(server, conn, conn["extra"])  # an edit form opened before the task rotated the token
    assert stale["status"] is True and spaces_calls(fake) == calls + 2
    assert fake.counters["token_requests"] == token_requests


def test_a_form_pointing_the_gateway_elsewhere_gets_no_live_request(server, fakes):
    fake, elsewhere = fakes
    conn = fake.connection(CONN_ID)
    helper(server.env, "put-connection", CONN_ID, json.dumps(conn))
    helper(server.env, "refresh", CONN_ID)
    extra = saved_extra(server)
    calls, token_requests = fake.counters["api_calls"], fake.counters["token_requests"]
    answer = press_test(server, conn, {**extra, "api_url": elsewhere.api_url})
    assert answer["status"] is True and "changes the api_url" in answer["message"]
    assert elsewhere.counters["api_calls"] == elsewhere.counters["accessible_resources_calls"] == 0
    assert (fake.counters["api_calls"], fake.counters["token_requests"]) == (calls, token_requests)
