"""The token broker in a real ``airflow api-server`` on PostgreSQL, asked by worker processes that race.

The API server loads the provider's plugin through the ``airflow.plugins`` entry point of the installed wheel
(nothing is put in its plugins folder) and mounts it at ``/confluence-oauth``. No provider setting is made: the
broker is on by default, and the connections keep ``state_store=auto``.

Each worker is an OS process that plays an Airflow 3 task worker: it blocks its ORM the way the Task SDK's
supervisor does (``block_orm_access``), and sees the connection through an env var holding what the execution
API would give it (the connection's fields and extra, its broker key among them), so that ``auto`` must send it
to the broker, whose address it derives from ``[core] execution_api_server_url``. (The first-use path, where the
broker itself writes the connection's key, runs through the real execution API in test_deployment.py.) The emulator's access tokens live one second, so they
expire several times while the workers call Confluence through the hook. The claims, as in
test_concurrency.py: one token request per expiry (no refresh while a fresh token was there to adopt), zero
``invalid_grant``, no reuse of an older refresh token, and the store holds the refresh token issued last: the
connection row in PostgreSQL, or, for a connection that only exists as an env var, the Variable row (locked
with ``SELECT ... FOR UPDATE`` and created by whichever request came first). Then the refusals, over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_confluence.auth.broker.protocol import GATE_VARIABLE, signed_request
from airflow_provider_confluence.testing import FakeAtlassian, find_leaks
from helpers.airflow_env import airflow_major
from helpers.api_server import answers, api_server
from helpers.deployment import helper
from helpers.processes import api_server_env, free_port, fresh_postgres_database, served, stop_group

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow_server,
    pytest.mark.skipif(airflow_major() < 3, reason="the token broker runs in the Airflow 3 API server"),
]

ROW_CONN = "confluence_broker_row"
ENV_CONN = "confluence_broker_env"
WORKERS = 6
MIN_CALLS = 15
MIN_REFRESHES = 4
LIFETIME = 1.0
LEEWAY = LIFETIME / 4  # the TokenManager's leeway for tokens this short
SERVER_START_TIMEOUT = 120.0
RACE_TIMEOUT = 180.0

# One worker: blocks its ORM like a forked task, then calls Confluence through the hook until the emulator has
# refreshed MIN_REFRESHES times (bounded); prints what it saw on its last line.
WORKER = r"""
import json, os, sys, time
import requests
import airflow.settings
from airflow.sdk.execution_time.supervisor import block_orm_access

block_orm_access()
from airflow_provider_confluence.version_compat import orm_available
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

conn_id, min_calls, ready, go, emulator, min_refreshes = sys.argv[1:7]
hook = ConfluenceOAuthHook(conn_id)
source = hook.token_manager  # chosen before the start line
open(ready, "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > deadline:
        raise SystemExit("never told to go")
    time.sleep(0.005)
calls = 0
while calls < int(min_calls) * 40:
    hook.get_space_id("DEMO")
    calls += 1
    if calls >= int(min_calls):
        state = requests.get(f"{emulator}/_emulator/state", timeout=5).json()
        if state["counters"]["refreshes"] >= int(min_refreshes):
            break
print("WORKER-RESULT " + json.dumps({"calls": calls, "orm": orm_available(), "store": source.store.name,
                                     "broker_url": getattr(source, "url", None),
                                     "broker_requests": getattr(source, "requests_sent", None)}))
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAtlassian]:
    """One emulator for the module: the API server is started with connections that point at it."""
    with FakeAtlassian() as emulator:
        emulator.add_space("DEMO")
        yield emulator


@pytest.fixture(scope="module")
def server(fake: FakeAtlassian, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh PostgreSQL metadata DB and a real ``airflow api-server`` on it; stopped after the module."""
    home = tmp_path_factory.mktemp("broker-server-home")
    (home / "plugins").mkdir()
    port = free_port()
    env = {
        **api_server_env(home, port),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # empty: the plugin comes from the entry point
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": fake.allowed_endpoint_hosts,
    }
    env.pop(f"AIRFLOW_CONN_{ROW_CONN.upper()}", None)
    with fresh_postgres_database(f"apc_broker_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        # Both sides read this one from the environment (a secrets backend in real life).
        env_connection = json.dumps(fake.connection(ENV_CONN))
        server_env = {**env, f"AIRFLOW_CONN_{ENV_CONN.upper()}": env_connection}
        broker = f"http://127.0.0.1:{port}/confluence-oauth/token"
        # healthy, and the plugin's broker answers (an unsigned request gets a JSON 422)
        with api_server(
            server_env, home, port, lambda: answers("POST", broker, 422, json={}), SERVER_START_TIMEOUT, "token broker"
        ) as log_path:
            yield {"env": env, "broker": broker, "log": log_path, "home": home, "env_connection": env_connection}


def deployment_key(server: dict[str, Any]) -> str:
    """The Variable the API server creates on the first request (an unsigned one is refused, after that)."""
    requests.post(server["broker"], json=signed_request("x", "x", timestamp=int(time.time())), timeout=30)
    return helper(server["env"], "read-variable", GATE_VARIABLE).strip()


def race(
    server: dict[str, Any], fake: FakeAtlassian, connection: str, conn_id: str, tmp_path: Path
) -> list[dict[str, Any]]:
    """Start the worker processes, release them together, and return what each printed.

    :param connection: the connection's JSON as the workers see it.
    """
    env = {
        **server["env"],
        f"AIRFLOW_CONN_{conn_id.upper()}": connection,
        # what a task reads through the execution API: the deployment's broker key
        f"AIRFLOW_VAR_{GATE_VARIABLE.upper()}": deployment_key(server),
    }
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(WORKERS)]
    outputs = [tmp_path / f"worker-{i}.out" for i in range(WORKERS)]
    procs: list[subprocess.Popen[Any]] = []
    try:
        for i in range(WORKERS):
            with open(outputs[i], "w") as out:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-c",
                            WORKER,
                            conn_id,
                            str(MIN_CALLS),
                            str(ready[i]),
                            str(go),
                            fake.url,
                            str(MIN_REFRESHES),
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=str(tmp_path),
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            dead = [o.read_text()[-3000:] for p, o in zip(procs, outputs, strict=True) if p.poll() is not None]
            assert not dead, f"a worker died before the start line:\n{dead[0]}"
            assert time.monotonic() < deadline, "the workers did not get ready"
            time.sleep(0.05)
        go.touch()
        deadline = time.monotonic() + RACE_TIMEOUT
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            stop_group(proc, timeout=5)
    texts = [o.read_text(errors="replace") for o in outputs]
    for proc, text in zip(procs, texts, strict=True):
        assert proc.returncode == 0, text[-3000:]
    server["worker_output"] = "\n".join(texts)
    return [
        json.loads(
            next(line for line in reversed(t.splitlines()) if line.startswith("WORKER-RESULT ")).split(" ", 1)[1]
        )
        for t in texts
    ]


def assert_rotation_was_perfect(fake: FakeAtlassian, server: dict[str, Any], results: list[dict[str, Any]]) -> None:
    assert all(r["calls"] >= MIN_CALLS for r in results), results
    # Every worker was an ORM-less worker that asked the broker where Airflow's config says the API server is.
    assert {(r["orm"], r["store"], r["broker_url"]) for r in results} == {(False, "broker", server["broker"])}
    assert all(r["broker_requests"] >= 1 for r in results), results
    counters = fake.counters
    assert counters["invalid_grants"] == 0
    assert counters["grant_revocations"] == 0
    assert counters["stale_refresh_reuses"] == 0, "someone presented an older refresh token"
    log = fake.refresh_log
    assert len(log) == counters["refreshes"] == counters["token_requests"] >= MIN_REFRESHES
    assert all(entry["ok"] and entry["was_latest"] for entry in log)
    # One token request per expiry: the broker never refreshed while a fresh token was there to adopt.
    early = [e["latest_access_remaining"] for e in log if (e["latest_access_remaining"] or 0) > LEEWAY + 0.05]
    assert early == [], f"refreshes while the newest token still had {early} s to live"


def assert_nothing_leaked(server: dict[str, Any], fake: FakeAtlassian) -> None:
    canaries = {fake.client_secret, *getattr(fake._auth, "_refresh", {}), *getattr(fake._auth, "_access", {})}
    for where, text in [
        ("api-server output", server["log"].read_text(errors="replace")),
        ("worker output", server["worker_output"]),
    ]:
        leaked = find_leaks(text, canaries)
        clean = not leaked  # a bool: pytest would print the list itself
        assert clean, f"{len(leaked)} token(s) in clear text in the {where}"  # never say which


@pytest.fixture
def race_emulator(fake: FakeAtlassian) -> FakeAtlassian:
    fake.latency = 0.01
    fake.access_token_lifetime = LIFETIME  # real time on every side: the processes compute expiry themselves
    fake.reset_counters()
    return fake


@pytest.mark.every_line
def test_workers_share_one_rotation_per_expiry_through_the_connection_row(server, race_emulator, tmp_path):
    fake = race_emulator
    connection = fake.connection(ROW_CONN, broker_secret="the-connections-own-broker-key")  # state_store=auto
    planted = connection["extra"]["refresh_token"]
    helper(server["env"], "put-connection", ROW_CONN, json.dumps(connection))
    offset = server["log"].stat().st_size

    results = race(server, fake, json.dumps(connection), ROW_CONN, tmp_path)

    assert_rotation_was_perfect(fake, server, results)
    extra = json.loads(helper(server["env"], "read-extra", ROW_CONN))
    assert extra["refresh_token"] == fake.latest_refresh_token != planted
    assert extra["cloud_id"] == fake.cloud_id and extra["access_token"]
    assert fake.counters["accessible_resources_calls"] == 1  # found once, kept in the state
    server_log = server["log"].read_text(errors="replace")[offset:]
    assert served(server_log, "POST", "/confluence-oauth/token") >= WORKERS, server_log[-3000:]
    assert_nothing_leaked(server, fake)


def test_an_env_var_connection_rotates_in_the_variable_row(server, race_emulator, tmp_path):
    """No connection row: the broker creates the Variable on the first request (the workers race to it) and
    locks its row for every refresh."""
    fake = race_emulator
    with pytest.raises(AssertionError):
        helper(server["env"], "read-variable", f"confluence_oauth_token_state__{ENV_CONN}")  # not there yet

    results = race(server, fake, server["env_connection"], ENV_CONN, tmp_path)

    assert_rotation_was_perfect(fake, server, results)
    state = json.loads(helper(server["env"], "read-variable", f"confluence_oauth_token_state__{ENV_CONN}"))
    assert state["refresh_token"] == fake.latest_refresh_token and state["cloud_id"] == fake.cloud_id
    assert_nothing_leaked(server, fake)


def test_the_refusals_over_http(server, fake):
    from airflow_provider_confluence.auth.broker.protocol import broker_key
    from airflow_provider_confluence.config.connection import ConnectionSettings

    fake.reset_counters()
    fake.access_token_lifetime = 3600  # (the races before made it 1 s)
    connection = fake.connection(ROW_CONN)
    helper(server["env"], "put-connection", ROW_CONN, json.dumps(connection))
    key = broker_key(
        ConnectionSettings.from_connection_fields(
            ROW_CONN,
            host=connection["host"],
            login=connection["login"],
            password=connection["password"],
            extra=connection["extra"],
            allowed_endpoint_hosts=fake.allowed_endpoint_hosts,
        )
    )
    assert key
    url, now = server["broker"], int(time.time())

    def post(body: dict[str, Any]) -> requests.Response:
        return requests.post(url, json=body, timeout=30)

    outsider = post(signed_request(key, ROW_CONN, timestamp=now))
    gate = deployment_key(server)
    wrong = post(signed_request("not-the-connections-key", ROW_CONN, timestamp=now, gate_key=gate))
    app_secret = post(signed_request(fake.client_secret, ROW_CONN, timestamp=now, gate_key=gate))
    unknown = post(signed_request(key, "no_such_connection", timestamp=now, gate_key=gate))
    stale = post(signed_request(key, ROW_CONN, timestamp=now - 600, gate_key=gate))
    first = post(signed_request(key, ROW_CONN, timestamp=now, gate_key=gate))
    # The first save gave the connection its own random key: the derived one is retired, the new one works once.
    saved = json.loads(helper(server["env"], "read-extra", ROW_CONN))["broker_secret"]
    retired = post(signed_request(key, ROW_CONN, timestamp=now, gate_key=gate))
    good = signed_request(saved, ROW_CONN, timestamp=now, gate_key=gate)
    second, replayed = post(good), post(good)
    for response, error in [
        (outsider, "invalid_gate"),
        (wrong, "invalid_signature"),
        (app_secret, "invalid_signature"),
        (unknown, "invalid_signature"),
        (stale, "stale_timestamp"),
        (retired, "invalid_signature"),
        (replayed, "replayed_nonce"),
    ]:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == error and response.json()["detail"]
        assert "access_token" not in response.text
    assert unknown.json() == wrong.json()
    assert first.status_code == 200 and set(first.json()) == {"access_token", "expires_at", "cloud_id"}
    same_token = second.status_code == 200 and second.json() == first.json()
    assert same_token, "the second answer is not the token the first one got"  # never print a token
    assert fake.counters["token_requests"] == 1


FLIGHT_CONN = "confluence_broker_flight"
FLIGHT_REQUESTS = 6


def test_requests_due_a_refresh_wait_in_the_api_server_not_on_the_row_lock(server, fake):
    """Single flight: while the connection row is locked (here by the test, as by another API-server process
    in its refresh), requests that all need a refresh wait inside the API server; only one of them holds a
    database connection waiting on the row's lock. When the lock goes, one refresh serves them all."""
    import psycopg2

    fake.reset_counters()
    fake.access_token_lifetime = 3600
    key = "the-flight-connections-broker-key"
    helper(server["env"], "put-connection", FLIGHT_CONN, json.dumps(fake.connection(FLIGHT_CONN, broker_secret=key)))
    gate = deployment_key(server)
    dsn = server["env"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    holder, watcher = psycopg2.connect(dsn), psycopg2.connect(dsn)
    watcher.autocommit = True

    def scalar(sql: str) -> int:
        with watcher.cursor() as cursor:
            cursor.execute(sql)
            return int(cursor.fetchone()[0] or 0)

    def claimed() -> int:  # the broker claims each request's nonce before it looks at the token
        if not scalar("SELECT count(*) FROM pg_class WHERE relname = 'confluence_oauth_single_use'"):
            return 0
        return scalar("SELECT count(*) FROM confluence_oauth_single_use")

    def lock_waiters() -> int:
        return scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )

    answers: list[requests.Response] = []
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM connection WHERE conn_id = %s FOR UPDATE", (FLIGHT_CONN,))
        before = claimed()
        threads = [
            threading.Thread(
                target=lambda: answers.append(
                    requests.post(
                        server["broker"],
                        json=signed_request(key, FLIGHT_CONN, timestamp=int(time.time()), gate_key=gate),
                        timeout=120,
                    )
                )
            )
            for _ in range(FLIGHT_REQUESTS)
        ]
        for thread in threads:
            thread.start()
        most_waiting, deadline = 0, time.monotonic() + 60
        while claimed() - before < FLIGHT_REQUESTS or lock_waiters() < 1:
            most_waiting = max(most_waiting, lock_waiters())
            assert time.monotonic() < deadline, "the requests did not reach the broker"
            time.sleep(0.02)
        # Every request is past its nonce check. Without the in-process gate each one would be on the row lock
        # within milliseconds; watch a little longer, so that such a queue could not go unseen.
        grace = time.monotonic() + 1.0
        while time.monotonic() < grace:
            most_waiting = max(most_waiting, lock_waiters())
            time.sleep(0.02)
    finally:
        holder.rollback()  # releases the row
        holder.close()
    for thread in threads:
        thread.join(120)
    watcher.close()
    assert most_waiting == 1
    assert [response.status_code for response in answers] == [200] * FLIGHT_REQUESTS
    same = len({response.json()["access_token"] for response in answers}) == 1
    assert same, "the requests got different tokens"  # never print a token
    assert fake.counters["token_requests"] == 1
