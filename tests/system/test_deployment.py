"""A real Airflow 3 deployment on PostgreSQL: 16 parallel tasks share one rotating grant through the broker.

The deployment, started by this module in a private AIRFLOW_HOME on a fresh, migrated PostgreSQL database:

* ``airflow api-server`` (one worker): the REST API, the execution API of the task workers, and this provider's
  plugin (loaded through the ``airflow.plugins`` entry point of the installed wheel) with the token broker at
  ``/confluence-oauth/token``;
* ``airflow scheduler`` with the LocalExecutor (``[core] parallelism`` 16, so all 16 tasks run at once): its
  forked workers supervise task processes whose ORM is blocked; they reach the execution API at ``[core]
  execution_api_server_url``, with workload JWTs signed with the shared ``[api_auth] jwt_secret``;
* ``airflow dag-processor``, which parses the DAG generated into the home's own dags folder.

No provider setting is made (the broker is on by default) and the connection keeps ``state_store=auto``, so
the tasks must ask the broker, which rotates the grant in the connection row under ``SELECT ... FOR
UPDATE``. The DAG's 16 tasks call Confluence through the hook for several seconds each while the emulator's
access tokens live 3 s, so the grant is rotated many times under concurrency. The DAG is unpaused and
triggered through the REST API (``simple_auth_manager_all_admins``), and the run is awaited with bounded polls.

The claims: every task succeeds; each one went through the broker (its result, its log line, the API server's
access log); one token request per expiry (every refresh happened while the newest access token was in the second
half of its life: inside its leeway, ``min(60, lifetime / 4)``, by the refresher's clock, which counts the token's
life from when the refresh was sent, so the emulator sees up to the request's transit time more left), and every
refresh happened in the API server; zero
``invalid_grant``, zero reuse of an older refresh token; the connection row in PostgreSQL holds the refresh
token issued last; no secret the emulator issued (nor the client secret) in any task log file or in the
output of the three servers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from helpers.airflow_env import airflow_major
from helpers.broker_dags import USE_CONFLUENCE, dag_file
from helpers.deployment import Deployment, events, helper
from helpers.processes import (
    api_server_env,
    free_port,
    fresh_postgres_database,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow_server,
    pytest.mark.skipif(
        airflow_major() < 3,
        reason="the token broker runs in the Airflow 3 API server; Airflow 2 has no api-server or dag-processor",
    ),
]

CONN_ID = "confluence_default"
DAG_ID = "confluence_deployment_broker"
RUN_ID = "deployment_test_run"
TASKS = 16
PARALLELISM = 16
LIFETIME = 3.0  # seconds an access token lives: it expires several times during the run
LEEWAY = min(60.0, LIFETIME / 4)  # the TokenManager's leeway for tokens this short
EXPIRY_WINDOW = LIFETIME / 2  # a second refresh for one expiry would find the newest token younger than this
TASK_SECONDS = 5 * LIFETIME  # each task calls Confluence this long, so it spans at least four expiries
MIN_CALLS = 8  # and at least this many calls
MIN_REFRESHES = 5
SERVER_START_TIMEOUT = 180.0
PARSE_TIMEOUT = 180.0
RUN_TIMEOUT = 240.0
RESULT = "APC-DEPLOY-RESULT"

# The DAG, written into the home's dags folder: TASKS tasks that use the hook like a user's task would.
DAG_BODY = (
    USE_CONFLUENCE
    + """
    for i in range(__TASKS__):
        use_confluence.override(task_id=f"call_{i:02d}")(i)
"""
)


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, emulator_port: int) -> Iterator[Deployment]:
    """A fresh PostgreSQL metadata DB and a running api-server, scheduler and dag-processor; all gone after."""
    home = tmp_path_factory.mktemp("deployment-home")
    for folder in ("dags", "plugins", "logs"):
        (home / folder).mkdir()
    values = {"TASKS": TASKS, "MIN_CALLS": MIN_CALLS, "TASK_SECONDS": TASK_SECONDS, "RESULT": RESULT}
    (home / "dags" / f"{DAG_ID}.py").write_text(dag_file(DAG_ID, DAG_BODY, max_active_tasks=TASKS, values=values))
    port = free_port()
    env = {
        # os.environ with conftest's fixed Fernet key: the helper processes decrypt what the servers wrote
        **api_server_env(home, port),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # empty: the plugin comes from the entry point
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(TASKS),
        # Where the supervisors of the forked tasks reach the execution API, and where the hook finds the broker.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # The REST API without a login (GET /auth/token answers an admin token): unpause, trigger, poll.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",  # parsed once; no re-parsing during the run
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": f"127.0.0.1:{emulator_port}",
    }
    env.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
    with fresh_postgres_database(f"apc_deployment_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        deployment = Deployment(env, home, port)
        try:
            deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
            deployment.start("scheduler", "scheduler")
            deployment.start("dag-processor", "dag-processor")
            deployment.wait_for_api_server(SERVER_START_TIMEOUT)
            yield deployment
        finally:
            deployment.stop()


# -- the test -----------------------------------------------------------------------------------------


def test_sixteen_parallel_tasks_rotate_one_grant_through_the_broker(deployment, fake_atlassian):
    fake = fake_atlassian
    fake.add_space("DEMO")
    fake.add_spaces(30)  # iter_spaces pages through 31 spaces
    fake.latency = 0.01
    fake.access_token_lifetime = LIFETIME  # real time on every side: each process computes expiry itself
    connection = fake.connection(CONN_ID)  # state_store=auto
    planted = connection["extra"]["refresh_token"]
    helper(deployment.env, "put-connection", CONN_ID, json.dumps(connection))
    fake.reset_counters()

    deployment.wait_for_parsed_dag(DAG_ID, TASKS, PARSE_TIMEOUT)
    unpaused = deployment.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    assert unpaused.status_code == 200 and unpaused.json()["is_paused"] is False, unpaused.text
    server_offset = deployment.output("api-server").stat().st_size
    triggered = deployment.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": RUN_ID, "logical_date": None})
    assert triggered.status_code == 200, triggered.text
    state, tasks = deployment.wait_for_run(DAG_ID, RUN_ID, RUN_TIMEOUT)

    # Every task succeeded.
    logs = deployment.task_logs(DAG_ID, RUN_ID)
    failed = {task: s for task, s in tasks.items() if s != "success"}
    assert state == "success" and len(tasks) == TASKS and not failed, f"run {state}, tasks {tasks}\n" + "\n".join(
        f"--- {t}\n{logs.get(t, '(no log)')[-3000:]}" for t in failed
    )
    assert sorted(logs) == sorted(tasks), f"task logs for {sorted(logs)}"

    # Every task ran with its ORM blocked and asked the broker where Airflow's config says the API server is.
    results, spans = [], []
    for task, text in sorted(logs.items()):
        task_events = events(text)
        lines = [str(e.get("event")) for e in task_events]
        ends = [e for e in task_events if str(e.get("event")).startswith(f"{RESULT} ")]
        assert len(ends) == 1, f"no result line in the log of {task}:\n{text[-3000:]}"
        results.append(json.loads(str(ends[0]["event"]).split(" ", 1)[1]))
        starts = [
            e
            for e in task_events
            if str(e.get("event")).startswith(
                f"Connection {CONN_ID!r} gets its access tokens from the token broker at {deployment.broker}"
            )
        ]
        assert len(starts) == 1, lines
        spans.append((str(starts[0]["timestamp"]), str(ends[0]["timestamp"])))
        assert not any(line.startswith("Refreshed the Confluence access token") for line in lines), (
            f"{task} refreshed the grant itself instead of asking the broker"
        )
    assert {(r["orm"], r["store"], r["broker_url"]) for r in results} == {(False, "broker", deployment.broker)}
    # The tasks really ran side by side (ISO timestamps of one clock compare as text): the most that were
    # between their first hook call and their result at one moment. Reported; only "more than one" is asserted.
    peak = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert peak >= 2, spans
    space_id = {s["key"]: s["id"] for s in fake.spaces}["DEMO"]
    assert all(r["space_ids"] == [space_id] and r["listed"] == 31 for r in results), results
    assert all(r["calls"] >= MIN_CALLS and r["broker_requests"] >= 1 for r in results), results
    with open(deployment.output("api-server"), "rb") as handle:
        handle.seek(server_offset)
        run_output = handle.read().decode(errors="replace")
    broker_posts = run_output.count("method=POST path=/confluence-oauth/token ")
    assert broker_posts == sum(r["broker_requests"] for r in results), (broker_posts, results)

    # One token request per expiry, all of them in the API server; no invalid_grant, no stale refresh token.
    counters = fake.counters
    log = fake.refresh_log
    assert counters["invalid_grants"] == 0
    assert counters["grant_revocations"] == 0
    assert counters["stale_refresh_reuses"] == 0, "someone presented an older refresh token"
    assert counters["code_exchanges"] == 0
    assert len(log) == counters["refreshes"] == counters["token_requests"] >= MIN_REFRESHES, (len(log), counters)
    assert all(entry["ok"] and entry["was_latest"] for entry in log), log
    early = [e["latest_access_remaining"] for e in log if (e["latest_access_remaining"] or 0) > EXPIRY_WINDOW]
    assert early == [], f"refreshes while the newest token still had {early} s to live"
    refreshed = (
        f"Refreshed the Confluence access token of connection {CONN_ID!r}; the rotated refresh token is "
        "saved in the connection store."
    )
    assert run_output.count(refreshed) == counters["refreshes"], (run_output.count(refreshed), counters)
    assert counters["accessible_resources_calls"] == 1  # the broker found the cloud id once and kept it
    assert counters["api_calls"] >= sum(r["calls"] for r in results)

    # The connection row in PostgreSQL holds the refresh token issued last.
    extra = json.loads(helper(deployment.env, "read-extra", CONN_ID))
    assert extra["refresh_token"] == fake.latest_refresh_token != planted
    assert extra["cloud_id"] == fake.cloud_id and extra["access_token"]

    # No token text anywhere: the client secret and every secret the emulator issued, in every task log file
    # and the output of each server (the scheduler's includes the task log lines its LocalExecutor relays,
    # unmasked).
    from airflow_provider_confluence.testing import find_leaks, issued_secrets

    canaries = set(issued_secrets()) | {fake.client_secret, planted, extra["refresh_token"], extra["access_token"]}
    texts = deployment.texts_to_scan()
    assert sum(name.endswith(".log") and f"dag_id={DAG_ID}" in name for name in texts) >= TASKS
    for where, text in texts.items():
        leaked = find_leaks(text, canaries)
        clean = not leaked  # a bool: pytest would print the list itself
        assert clean, f"{len(leaked)} token(s) in clear text in {where}"  # say where, never what
    print(
        f"\n{TASKS} tasks, {sum(r['calls'] for r in results)} hook calls, "
        f"{sum(r['broker_requests'] for r in results)} broker requests, {counters['refreshes']} refreshes "
        f"(access tokens living {LIFETIME:.0f} s); at most {peak} tasks calling Confluence at once"
    )
