"""The token broker and Airflow's secrets maskers in the long-lived API server: bounded, and still no leak.

Airflow's ``SecretsMasker`` keeps every value it is given for the life of the process and recompiles one regex of
all of them on each new one; nothing removes a value. The broker rotates two tokens per connection about every
hour, so registering them made the API server's maskers grow without end. It registers none of them now: in the
API server Airflow's maskers filter no log record (the premise test below), and the broker's code paths carry no
token into a log, an exception text, an answer or a URL (the leak tests below, each of a path that the registration
was supposed to cover).

The API server's app runs under FastAPI's TestClient, on this session's SQLite metadata database and the emulator.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_confluence.auth.broker.protocol import token_fingerprint
from airflow_provider_confluence.testing import find_leaks, issued_secrets
from helpers.airflow_env import airflow_major, put_connection
from helpers.broker import ask, broker_app_client

pytestmark = [
    pytest.mark.every_line,
    pytest.mark.skipif(airflow_major() < 3, reason="the token broker runs in the Airflow 3 API server"),
]

REFRESHES = 12


@pytest.fixture
def broker(airflow_db: Any) -> Iterator[Any]:
    pytest.importorskip("fastapi")
    with broker_app_client(raise_server_exceptions=False) as client:
        yield client


#: Where each Airflow 3 line keeps its maskers: 3.3 has Airflow core's (access log, API models) and the Task SDK's;
#: 3.0 has one, the Task SDK's (``airflow.sdk.execution_time.secrets_masker``, a re-export on later lines).
MASKER_MODULES = {
    "core": "airflow._shared.secrets_masker",
    "task sdk": "airflow.sdk._shared.secrets_masker",
    "execution time": "airflow.sdk.execution_time.secrets_masker",
}


def airflow_maskers() -> dict[str, Any]:
    """Every secrets masker of this process, each once."""
    found: dict[str, Any] = {}
    for name, module in MASKER_MODULES.items():
        try:
            masker = importlib.import_module(module)._secrets_masker()
        except (ImportError, AttributeError):
            continue
        if all(masker is not other for other in found.values()):
            found[name] = masker
    assert found, "no secrets masker found"
    return found


def pattern_counts() -> dict[str, int]:
    return {name: len(masker.patterns) for name, masker in airflow_maskers().items()}


def registered(secrets: set[str]) -> int:
    """How many of ``secrets`` either masker holds (a count: never the values)."""
    patterns = set().union(*(masker.patterns for masker in airflow_maskers().values()))
    return sum(1 for secret in secrets if re.escape(secret) in patterns)


def forced_refreshes(broker: Any, conn_id: str, times: int, last: str | None = None) -> list[str]:
    """``times`` broker answers, each after a refresh: the caller says the current token (after ``last``, the
    token answered before, if any) was rejected."""
    tokens: list[str] = [last] if last else []
    for _ in range(times):
        rejected = token_fingerprint(tokens[-1]) if tokens else None
        response = ask(broker, conn_id, rejected_token=rejected)
        assert response.status_code == 200, response.text
        tokens.append(response.json()["access_token"])
    return tokens[1:] if last else tokens


@pytest.mark.parametrize("where", ["connection row", "variable row"])
def test_refreshes_through_the_broker_leave_airflows_maskers_bounded(fake_atlassian, broker, monkeypatch, where):
    fake = fake_atlassian
    conn_id = "masker_row" if where == "connection row" else "masker_env"
    if where == "connection row":
        put_connection(conn_id, fake.connection(conn_id, state_store="broker"))
    else:  # no row to write: the state goes to the Variable row
        from airflow.models.connection import Connection
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()
            session.query(Variable).filter(Variable.key == f"confluence_oauth_token_state__{conn_id}").delete()
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fake.connection(conn_id)))
    before_tokens = set(issued_secrets())
    first = forced_refreshes(broker, conn_id, 2)  # the connection's own secrets, the first lookups are registered
    settled = pattern_counts()
    forced_refreshes(broker, conn_id, REFRESHES, last=first[-1])
    after = pattern_counts()
    assert fake.counters["refreshes"] == REFRESHES + 2 and fake.counters["stale_refresh_reuses"] == 0
    assert after == settled, f"the maskers grew over {REFRESHES} refreshes: {settled} -> {after}"
    minted = set(issued_secrets()) - before_tokens
    assert len(minted) >= 2 * REFRESHES
    assert registered(minted) == 0


def test_a_token_endpoint_error_that_echoes_the_rotated_token_reaches_no_answer_and_no_log(
    fake_atlassian, broker, caplog
):
    """A refusal whose ``error_description`` quotes what was sent: the rotated refresh token, the client secret."""
    fake = fake_atlassian
    put_connection("echo_conn", fake.connection("echo_conn", state_store="broker"))
    first = forced_refreshes(broker, "echo_conn", 1)[0]  # rotates: the row now holds a new refresh token
    rotated = fake.latest_refresh_token
    fake.fail_next(
        400,
        route="POST /oauth/token",
        body={
            "error": "invalid_request",
            "error_description": f"{rotated} was sent by client_secret {fake.client_secret} ({rotated})",
        },
    )
    with caplog.at_level(logging.DEBUG):
        response = ask(broker, "echo_conn", rejected_token=token_fingerprint(first))
    assert response.status_code == 502 and response.json()["error"] == "auth_error"
    assert "invalid_request" in response.json()["detail"]  # what Atlassian said is still there
    secrets = {rotated, fake.client_secret, first}
    in_answer = bool(find_leaks(response.text, secrets))
    in_log = bool(find_leaks(caplog.text, secrets))
    assert in_answer is False
    assert in_log is False


def test_the_access_log_of_a_broker_request_holds_no_token(fake_atlassian, airflow_db):
    """Airflow's own access log (``HttpAccessLogMiddleware``): method, path, query string, status; never a body."""
    pytest.importorskip("fastapi")
    pytest.importorskip(
        "airflow.api_fastapi.common.http_access_log", reason="this Airflow has no HttpAccessLogMiddleware"
    )
    import structlog.testing
    from airflow.api_fastapi.common.http_access_log import HttpAccessLogMiddleware
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_confluence.plugins.app import create_app

    fake = fake_atlassian
    put_connection("access_log_conn", fake.connection("access_log_conn", state_store="broker"))
    root = FastAPI()
    root.mount("/confluence-oauth", create_app())
    with TestClient(HttpAccessLogMiddleware(root)) as client, structlog.testing.capture_logs() as events:
        first = forced_refreshes(client, "access_log_conn", 2)
    lines = [event for event in events if event.get("event") == "request finished"]
    assert len(lines) >= 2 and all(event["path"] == "/confluence-oauth/token" for event in lines)
    leaked = find_leaks(json.dumps(lines, default=str), {*first, fake.latest_refresh_token, fake.client_secret})
    assert bool(leaked) is False


PROBE = r"""
import logging, sys
import airflow  # configures logging as the api-server does (settings.initialize -> configure_logging)
from airflow_provider_confluence.version_compat import mask_secret

value = sys.argv[1]
mask_secret(value)
logging.getLogger("airflow_provider_confluence.plugins.broker").warning("probe %s", value)
print("PROBE-DONE", flush=True)
"""


def test_in_the_api_servers_logging_airflows_maskers_filter_no_record():
    """The premise: registering a value in the API server does not hide it from the server's log records.

    Airflow masks task logs (and the triggerer's): ``SecretsMasker.filter`` does nothing until
    ``enable_log_masking()``, which only ``airflow tasks run`` and ``airflow triggerer`` call, and Airflow's
    component logging gives the root logger a handler without the masking filter. If a later Airflow masks its
    API server's records, this fails and the broker's choice (docs/security.md) must be looked at again.
    """
    probe = "not-a-secret-probe-" + os.urandom(8).hex()  # a made-up value, printed on purpose
    result = subprocess.run(
        [sys.executable, "-c", PROBE, probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "PROBE-DONE" in output, output[-3000:]
    assert f"probe {probe}" in output, output[-3000:]


def test_the_status_page_reads_connections_without_registering_their_tokens(fake_atlassian, broker):
    """The status page (``auth/status.py``) runs in the API server too: after each rotation it shows the
    connection, and reading the row must not leave that rotation's tokens in the maskers for good."""
    from airflow_provider_confluence.auth.status import connection_status

    fake = fake_atlassian
    put_connection("status_conn", fake.connection("status_conn", state_store="broker"))
    last = forced_refreshes(broker, "status_conn", 2)[-1]
    assert connection_status("status_conn") is not None
    settled = pattern_counts()
    for _ in range(4):
        last = forced_refreshes(broker, "status_conn", 1, last=last)[-1]
        status = connection_status("status_conn")
        assert status is not None and status.problem is None
    assert pattern_counts() == settled


def test_a_backend_that_denies_access_with_a_subclass_of_airflows_error_stops_the_lookup(monkeypatch, airflow_db):
    """Airflow's own lookup treats ``AirflowSecretsBackendAccessDenied`` with ``isinstance``: a backend's subclass
    of it is authoritative too, and the lookup must not fall through to the next backend."""
    import airflow.configuration

    from airflow_provider_confluence.version_compat import get_connection_in_server

    try:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied
    except ImportError:  # Airflow 3.0 has none; its later models define this stand-in by the same name

        class AirflowSecretsBackendAccessDenied(PermissionError):  # type: ignore[no-redef]
            pass

    class VaultDenied(AirflowSecretsBackendAccessDenied):
        pass

    class Denying:
        def get_connection(self, conn_id: str) -> Any:
            raise VaultDenied(f"no access to {conn_id}")

    class Failing:
        def get_connection(self, conn_id: str) -> Any:
            raise ConnectionError("backend down")

    class Answering:
        def get_connection(self, conn_id: str) -> Any:
            return f"connection {conn_id}"

    monkeypatch.setattr(airflow.configuration, "ensure_secrets_loaded", lambda: [Denying(), Answering()])
    with pytest.raises(VaultDenied):
        get_connection_in_server("denied_conn")
    monkeypatch.setattr(airflow.configuration, "ensure_secrets_loaded", lambda: [Failing(), Answering()])
    assert get_connection_in_server("next_conn") == "connection next_conn"  # a failing backend is skipped
