"""A real DISTRIBUTED Airflow 3 deployment: CeleryExecutor, two workers with hostnames of their own, one grant.

The deployment, started once for this module in a private AIRFLOW_HOME on a fresh, migrated PostgreSQL database:

* ``airflow api-server`` (the REST API, the execution API, and this provider's token broker), ``airflow
  scheduler`` with the CeleryExecutor, ``airflow dag-processor`` and ``airflow triggerer``;
* Redis (Debian's ``redis-server``, started by ``scripts/ensure-services.sh`` on loopback) as the Celery broker,
  with a queue of this run's own, so that nothing else on the same Redis takes its tasks;
* two ``airflow celery worker`` processes, each in a UTS namespace of its own (``unshare --uts``) with its own
  hostname (``worker-a``, ``worker-b``) and its own TMPDIR: no host-local file lock is shared between them, as
  between two machines. Everything else (the database, the API server, the log folder) they share as a real
  deployment does.

The emulator (:class:`~airflow_provider_confluence.testing.FakeAtlassian`) issues access tokens that live 2 s.

The scenarios:

1. 32 tasks, spread over both workers, call Confluence through ``ConfluenceOAuthHook`` for several seconds
   each; a ``ConfluencePageSensor(deferrable=True)`` waits in the triggerer for the page that the last task
   publishes. Claims: every task succeeds; tasks ran on BOTH workers (the task instances' ``hostname``), side by
   side; every task and the trigger got their tokens from the broker; one refresh per expiry (each refresh
   happened while the newest access token was inside its last leeway window) over at least 3 expiries, every
   one in the API server; zero ``invalid_grant``, zero redemptions of a retired refresh token; the connection
   row holds the refresh token the emulator issued last; no secret in any log or server output.
2. The API server is restarted while tasks are calling Confluence; the grant stays safe, and the run succeeds.
3. In the same deployment, ``airflow-confluence refresh`` and an in-process ``dag.test()`` rotate the grant in
   the same connection row, with no reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.airflow_env import IN_CI, airflow_major
from helpers.broker_dags import USE_CONFLUENCE, dag_file
from helpers.deployment import Deployment, events, helper, redact, tail
from helpers.processes import api_server_env, free_port, fresh_postgres_database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow_server,
    pytest.mark.skipif(
        airflow_major() < 3,
        reason="the token broker runs in the Airflow 3 API server; Airflow 2 has no api-server or dag-processor",
    ),
]

CONN_ID = "confluence_default"
FANOUT_DAG, FANOUT_RUN = "confluence_celery_fanout", "celery_fanout_run"
RESTART_DAG, RESTART_RUN = "confluence_celery_restart", "celery_restart_run"
LOCAL_DAG = "confluence_celery_local"
WORKERS = ("worker-a", "worker-b")
CONCURRENCY = 8  # task slots per worker: 16 tasks at once on this 2-core machine
TASKS = 32
RESTART_TASKS = 6
LIFETIME = 2.0  # seconds an access token lives
LEEWAY = min(60.0, LIFETIME / 4)  # the TokenManager's leeway for tokens this short
# A refresh for an expiry comes once the newest token is inside its leeway by the refresher's clock, which counts
# its life from when the refresh was sent: the emulator, counting from when it issued the token, sees up to the
# request's transit time more left. A second refresh for the same expiry would come while the newest token is
# still young: every refresh must find it in the second half of its life.
EXPIRY_WINDOW = LIFETIME / 2
MIN_EXPIRIES = 3
TASK_SECONDS = 3 * LIFETIME  # each fan-out task calls Confluence this long: it outlives its own tokens
MIN_CALLS = 6
REPORT, RELEASE = "Celery report", "Celery release"
SERVER_START_TIMEOUT = 180.0
WORKER_START_TIMEOUT = 120.0
PARSE_TIMEOUT = 180.0
RUN_TIMEOUT = 240.0
RESULT = "APC-CELERY-RESULT"

# The bodies of the DAGs written into the home's dags folder (helpers/broker_dags.py adds the header; the
# placeholders __NAME__ are filled from DAG_VALUES). The pauses between calls only pace the load on a 2-core
# machine: nothing is timed.
FANOUT_BODY = (
    USE_CONFLUENCE
    + """
    @task
    def publish_report() -> str:
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        title = "__REPORT__ " + get_current_context()["run_id"]
        page = ConfluenceOAuthHook().create_page(space_key="DEMO", title=title, body="<p>Every call is done.</p>")
        return str(page["id"])

    calls = [use_confluence.override(task_id=f"call_{i:02d}")(i) for i in range(__TASKS__)]
    calls >> publish_report()
    ConfluencePageSensor(  # queued first, so that it waits in the triggerer while the calls run
        task_id="wait_for_report", space_key="DEMO", title="__REPORT__ {{ run_id }}", deferrable=True,
        poke_interval=1.0, timeout=__RUN_TIMEOUT__, priority_weight=1000, weight_rule="absolute",
    )
"""
)
FANOUT_IMPORTS = "from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor\n"

RESTART_BODY = '''
    @task
    def call_until_released(index: int) -> dict:
        """Call Confluence until the release page of this run exists (the test publishes it after the restart)."""
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        hook = ConfluenceOAuthHook()
        title = "__RELEASE__ " + get_current_context()["run_id"]
        deadline = time.monotonic() + __RUN_TIMEOUT__
        calls = 0
        while True:
            hook.get_space_id("DEMO")
            calls += 2
            if hook.find_page(space_key="DEMO", title=title) is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"page {title!r} did not appear within __RUN_TIMEOUT__ s")
            time.sleep(0.3)
        result = {"index": index, "calls": calls, "hostname": socket.gethostname(),
                  "broker_requests": getattr(hook.token_manager, "requests_sent", None)}
        log.info("__RESULT__ %s", json.dumps(result))
        return result

    for i in range(__RESTART_TASKS__):
        call_until_released.override(task_id=f"call_{i:02d}")(i)
'''

LOCAL_BODY = '''
    @task
    def outlive_a_token() -> dict:
        """Call Confluence until a second access token was needed (only digests are compared; none is kept)."""
        from airflow_provider_confluence.version_compat import orm_available
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        hook = ConfluenceOAuthHook()
        seen, calls = set(), 0
        deadline = time.monotonic() + __RUN_TIMEOUT__
        while len(seen) < 2:
            seen.add(hashlib.sha256(hook.get_access_token().encode()).hexdigest())
            hook.get_space_id("DEMO")
            calls += 1
            if time.monotonic() > deadline:
                raise RuntimeError("the access token never changed")
            time.sleep(0.2)
        result = {"calls": calls, "orm": orm_available(), "store": hook.token_manager.store.name}
        log.info("__RESULT__ %s", json.dumps(result))
        return result

    outlive_a_token()
'''
LOCAL_MAIN = """
if __name__ == "__main__":
    run = dag_object.test()
    print("__RESULT__ dag.test " + json.dumps({"state": str(run.state)}), flush=True)
"""

DAG_VALUES = {
    "TASKS": TASKS,
    "RESTART_TASKS": RESTART_TASKS,
    "MIN_CALLS": MIN_CALLS,
    "TASK_SECONDS": TASK_SECONDS,
    "REPORT": REPORT,
    "RELEASE": RELEASE,
    "RUN_TIMEOUT": RUN_TIMEOUT,
    "RESULT": RESULT,
}


def dag_files() -> dict[str, str]:
    """The source of each DAG file, by DAG id."""
    return {
        FANOUT_DAG: dag_file(
            FANOUT_DAG, FANOUT_BODY, max_active_tasks=TASKS + 2, values=DAG_VALUES, imports=FANOUT_IMPORTS
        ),
        RESTART_DAG: dag_file(RESTART_DAG, RESTART_BODY, max_active_tasks=RESTART_TASKS, values=DAG_VALUES),
        LOCAL_DAG: dag_file(LOCAL_DAG, LOCAL_BODY, max_active_tasks=16, values=DAG_VALUES, main=LOCAL_MAIN),
    }


# -- services and processes -----------------------------------------------------------------------------


def redis_url() -> str:
    """The Redis that `make test` starts (scripts/ensure-services.sh), checked; else a skip (a failure in CI)."""
    url = os.environ.get("CONFLUENCE_TEST_REDIS_URL")
    problem = None
    if not url:
        problem = "CONFLUENCE_TEST_REDIS_URL is not set; `make test` sets it and starts Redis"
    else:
        import redis

        try:
            redis.Redis.from_url(url, socket_timeout=5).ping()
        except redis.RedisError as exc:
            problem = f"Redis at {url} does not answer ({type(exc).__name__}); run `make services` as root"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return str(url)


def own_hostname(name: str) -> list[str]:
    """A command prefix that runs the rest in a UTS namespace of its own, whose hostname is ``name``."""
    unshare = ["unshare", "--uts"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--uts"]
    prefix = [*unshare, "sh", "-c", f'hostname {name} && exec "$0" "$@"']
    if shutil.which("unshare") is None:
        probe = subprocess.CompletedProcess(prefix, 127, "", "unshare (util-linux) is not installed")
    else:
        probe = subprocess.run([*prefix, "hostname"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or probe.stdout.strip() != name:
        problem = f"cannot give a worker a hostname of its own with unshare --uts: {probe.stderr.strip()[:300]}"
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return prefix


def read_extra(deployment: Deployment) -> dict[str, Any]:
    """The connection's extra as stored in the deployment's PostgreSQL database (decrypted)."""
    return dict(json.loads(helper(deployment.env, "read-extra", CONN_ID)))


def assert_no_leaks(texts: dict[str, str]) -> None:
    """No secret the emulator issued (client secret, refresh and access tokens) in any of ``texts``."""
    from airflow_provider_confluence.testing import find_leaks

    for where, text in texts.items():
        leaked = find_leaks(text)
        assert not leaked, f"{len(leaked)} token(s) in clear text in {where}"  # say where, never what


def results(logs: dict[str, str], tasks: list[str]) -> dict[str, dict[str, Any]]:
    """The result line that each of ``tasks`` logged, by task id."""
    found: dict[str, dict[str, Any]] = {}
    for task in tasks:
        ends = [e for e in events(logs.get(task, "")) if str(e.get("event")).startswith(f"{RESULT} ")]
        assert len(ends) == 1, f"no result line in the log of {task}:\n{redact(logs.get(task, '(no log)')[-3000:])}"
        found[task] = {**json.loads(str(ends[0]["event"]).split(" ", 1)[1]), "_at": str(ends[0]["timestamp"])}
    return found


def refresh_lines(text: str) -> int:
    return text.count(
        f"Refreshed the Confluence access token of connection {CONN_ID!r}; the rotated refresh token "
        "is saved in the connection store."
    )


def assert_grant_safe(fake: Any) -> None:
    """The emulator saw no invalid_grant, no retired refresh token, no revoked family; every refresh used the
    latest refresh token."""
    counters = fake.counters
    assert counters["invalid_grants"] == 0, counters
    assert counters["stale_refresh_reuses"] == 0, "someone presented a retired refresh token"
    assert counters["grant_revocations"] == 0, counters
    assert counters["code_exchanges"] == 0, counters
    assert all(entry["ok"] and entry["was_latest"] for entry in fake.refresh_log), fake.refresh_log


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """One emulator for the module's deployment (its port is in every component's allowed endpoint hosts)."""
    from airflow_provider_confluence.testing import FakeAtlassian

    with FakeAtlassian(access_token_lifetime=LIFETIME) as fake:
        fake.add_space("DEMO")
        fake.add_spaces(30)  # iter_spaces pages through 31 spaces
        fake.latency = 0.01
        yield fake


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, emulator: Any) -> Iterator[Deployment]:
    """A fresh PostgreSQL metadata DB, Redis, and the seven processes; all gone after the module."""
    broker_url = redis_url()
    prefixes = {name: own_hostname(name) for name in WORKERS}
    home = tmp_path_factory.mktemp("celery-home")
    for folder in ("dags", "plugins", "logs"):
        (home / folder).mkdir()
    for dag_id, source in dag_files().items():
        (home / "dags" / f"{dag_id}.py").write_text(source)
    port = free_port()
    queue = f"apc_celery_{os.getpid()}"
    emulator_host = emulator.url.split("://", 1)[1]
    env = {
        # os.environ with conftest's fixed Fernet key: the helper processes decrypt what the servers wrote
        **api_server_env(home, port),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # empty: the plugin comes from the entry point
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(TASKS + 8),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(TASKS + 8),
        # Where the task supervisors reach the execution API, and where the hook finds the broker.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # The REST API without a login (GET /auth/token answers an admin token): unpause, trigger, poll.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",  # parsed once; no re-parsing during the runs
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CELERY__BROKER_URL": broker_url,  # the result backend defaults to the metadata database
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CONCURRENCY),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,  # this run's own queue on a Redis others may share
        # Credentials go only to listed hosts (harmless where the setting does not exist yet).
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": emulator_host,
    }
    env.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
    with fresh_postgres_database(f"apc_celery_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        deployment = Deployment(env, home, port)
        try:
            deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
            deployment.start("scheduler", "scheduler")
            deployment.start("dag-processor", "dag-processor")
            deployment.start("triggerer", "triggerer")
            for letter, name in zip("ab", WORKERS, strict=True):
                tmpdir = home / f"tmp-{name}"
                tmpdir.mkdir()
                deployment.start(
                    name,
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"apc{os.getpid()}{letter}@{name}",
                    "--queues",
                    queue,
                    "--concurrency",
                    str(CONCURRENCY),
                    "--pid",
                    str(home / f"{name}.pid"),
                    prefix=prefixes[name],
                    env={"TMPDIR": str(tmpdir), "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
                )
            deployment.wait_for_api_server(SERVER_START_TIMEOUT)
            for letter, name in zip("ab", WORKERS, strict=True):
                deployment.wait_for_output(name, f"apc{os.getpid()}{letter}@{name} ready.", WORKER_START_TIMEOUT)
            helper(env, "put-connection", CONN_ID, json.dumps(emulator.connection(CONN_ID)))  # state_store=auto
            yield deployment
        finally:
            deployment.stop(first=("scheduler",))


# -- 1. 32 tasks on two workers and a deferred sensor ----------------------------------------------------


def test_tasks_on_two_celery_workers_and_a_deferred_sensor_rotate_one_grant(deployment, emulator):
    fake = emulator
    planted = read_extra(deployment)["refresh_token"]
    deployment.wait_for_parsed_dag(FANOUT_DAG, TASKS + 2, PARSE_TIMEOUT)
    fake.reset_counters()
    offsets = {name: deployment.output(name).stat().st_size for name in ("api-server", "triggerer")}
    started = time.monotonic()
    deployment.trigger(FANOUT_DAG, FANOUT_RUN)
    state, tasks = deployment.wait_for_run(
        FANOUT_DAG, FANOUT_RUN, RUN_TIMEOUT, logs_of=("scheduler", *WORKERS, "triggerer")
    )
    run_seconds = time.monotonic() - started

    # Every task succeeded.
    logs = deployment.task_logs(FANOUT_DAG, FANOUT_RUN)
    failed = {task: s for task, s in tasks.items() if s != "success"}
    assert state == "success" and len(tasks) == TASKS + 2 and not failed, f"run {state}, tasks {tasks}\n" + "\n".join(
        f"--- {t}\n{redact(logs.get(t, '(no log)')[-3000:])}" for t in failed
    )

    # Tasks ran on both workers, each in its own hostname and TMPDIR, and side by side.
    instances = {ti["task_id"]: ti for ti in deployment.task_instances(FANOUT_DAG, FANOUT_RUN)}
    call_tasks = sorted(t for t in tasks if t.startswith("call_"))
    found = results(logs, call_tasks)
    per_worker = {name: sorted(t for t in call_tasks if instances[t]["hostname"] == name) for name in WORKERS}
    assert all(per_worker.values()) and sum(map(len, per_worker.values())) == TASKS, per_worker
    for task, result in found.items():
        assert result["hostname"] == instances[task]["hostname"], (task, result, instances[task]["hostname"])
        assert result["tmpdir"] == str(deployment.home / f"tmp-{result['hostname']}"), result
    spans = {name: [] for name in WORKERS}
    for task, result in found.items():
        task_events = events(logs[task])
        begin = next(
            str(e["timestamp"])
            for e in task_events
            if str(e.get("event")).startswith(
                f"Connection {CONN_ID!r} gets its access tokens from the token broker at {deployment.broker}"
            )
        )
        spans[result["hostname"]].append((begin, result["_at"]))
    overlap = any(a0 < b1 and b0 < a1 for a0, a1 in spans["worker-a"] for b0, b1 in spans["worker-b"])
    assert overlap, f"no task of worker-a called Confluence while one of worker-b did: {spans}"

    # Every call task ran with its ORM blocked and asked the broker; none refreshed the grant itself.
    assert {(r["orm"], r["store"], r["broker_url"]) for r in found.values()} == {(False, "broker", deployment.broker)}
    space_id = {s["key"]: s["id"] for s in fake.spaces}["DEMO"]
    assert all(r["space_ids"] == [space_id] and r["listed"] == 31 for r in found.values()), found
    assert all(r["calls"] >= MIN_CALLS and r["broker_requests"] >= 2 for r in found.values()), found
    for task, text in logs.items():
        assert refresh_lines(text) == 0, f"{task} refreshed the grant itself instead of asking the broker"

    # The sensor deferred; the trigger, in the triggerer, got its tokens from the broker for longer than two
    # token lifetimes, and found the page that publish_report created.
    sensor_lines = [str(e.get("event")) for e in events(logs["wait_for_report"])]
    assert "Deferring: the triggerer checks every 1.0 s." in sensor_lines, sensor_lines
    trigger_log = deployment.trigger_logs(FANOUT_DAG, FANOUT_RUN).get("wait_for_report", "")
    trigger_events = events(trigger_log)
    trigger_lines = [str(e.get("event")) for e in trigger_events]
    triggerer_output = deployment.output_since("triggerer", offsets["triggerer"])
    # The hook's own lines, logged in the trigger's check thread, reach the triggerer's output.
    assert (
        triggerer_output.count(
            f"Connection {CONN_ID!r} gets its access tokens from the token broker at {deployment.broker}"
        )
        == 1
    ), tail(deployment.output("triggerer"))
    checks = [e for e in trigger_events if "does not exist yet" in str(e.get("event"))]
    found_page = [line for line in trigger_lines if line.endswith("is there (version 1)")]
    assert len(found_page) == 1 and checks, redact(trigger_log[-3000:])
    from datetime import datetime

    waited = (
        datetime.fromisoformat(str(checks[-1]["timestamp"]).replace("Z", "+00:00"))
        - datetime.fromisoformat(str(checks[0]["timestamp"]).replace("Z", "+00:00"))
    ).total_seconds()
    assert waited > 2 * LIFETIME, f"the trigger checked for only {waited:.1f} s: it outlived no token"
    assert refresh_lines(trigger_log) == refresh_lines(triggerer_output) == 0, "the triggerer refreshed the grant"
    report = next(p for p in fake.pages if p["title"] == f"{REPORT} {FANOUT_RUN}")
    sensor_xcom = deployment.api(
        "GET", f"/dags/{FANOUT_DAG}/dagRuns/{FANOUT_RUN}/taskInstances/wait_for_report/xcomEntries/return_value"
    ).json()
    assert str(report["id"]) in json.dumps(sensor_xcom), sensor_xcom

    # One token request per expiry, all of them in the API server; no invalid_grant, no retired refresh token.
    assert_grant_safe(fake)
    counters, log = fake.counters, fake.refresh_log
    assert len(log) == counters["refreshes"] == counters["token_requests"] >= MIN_EXPIRIES, (len(log), counters)
    early = [e["latest_access_remaining"] for e in log if (e["latest_access_remaining"] or 0) > EXPIRY_WINDOW]
    assert early == [], f"refreshes while the newest token still had {early} s to live"
    server_output = deployment.output_since("api-server", offsets["api-server"])
    assert refresh_lines(server_output) == counters["refreshes"], (refresh_lines(server_output), counters)
    assert counters["accessible_resources_calls"] == 1  # the broker found the cloud id once and kept it
    broker_posts = server_output.count("method=POST path=/confluence-oauth/token ")
    assert broker_posts > sum(r["broker_requests"] for r in found.values()), broker_posts  # + sensor and trigger

    # The connection row in PostgreSQL holds the refresh token issued last.
    extra = read_extra(deployment)
    assert extra["refresh_token"] == fake.latest_refresh_token != planted
    assert extra["cloud_id"] == fake.cloud_id and extra["access_token"]

    texts = deployment.texts_to_scan()
    assert sum(name.endswith(".log") and f"dag_id={FANOUT_DAG}" in name for name in texts) >= TASKS + 2
    assert_no_leaks(texts)
    span = log[-1]["at"] - log[0]["at"]
    latest_left = max(e["latest_access_remaining"] or 0 for e in log)
    print(
        f"\n{TASKS} tasks: {', '.join(f'{n} ran {len(t)}' for n, t in per_worker.items())}; "
        f"{sum(r['calls'] for r in found.values())} hook calls, {broker_posts} broker requests; "
        f"{counters['refreshes']} refreshes over {span:.1f} s, each with at most {latest_left:.2f} s left on the "
        f"newest token (access tokens living {LIFETIME:.0f} s, leeway {LEEWAY} s); the trigger checked "
        f"{len(checks)} times over {waited:.1f} s; the run took {run_seconds:.0f} s"
    )


# -- 2. the API server restarts in the middle of a run --------------------------------------------------


@pytest.fixture(scope="module")
def restart_run(deployment: Deployment, emulator: Any) -> dict[str, Any]:
    """A run whose tasks call Confluence until the test publishes the release page, which it does only after
    it restarted the API server while every task was running; what happened."""
    fake = emulator
    deployment.wait_for_parsed_dag(RESTART_DAG, RESTART_TASKS, PARSE_TIMEOUT)
    fake.reset_counters()
    deployment.trigger(RESTART_DAG, RESTART_RUN)
    deployment.wait_for_tasks(
        RESTART_DAG,
        RESTART_RUN,
        lambda tis: sum(ti["state"] == "running" for ti in tis) == RESTART_TASKS,
        f"all {RESTART_TASKS} tasks running",
        RUN_TIMEOUT,
        logs_of=("scheduler", *WORKERS),
    )
    # Mid-work: the broker has rotated the grant for them at least twice since the run started.
    deadline = time.monotonic() + RUN_TIMEOUT
    while fake.counters["refreshes"] < 2:
        deployment.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"no refresh while the tasks ran: {fake.counters}\n{tail(deployment.output('api-server'))}")
        time.sleep(0.5)
    refreshes_before = fake.counters["refreshes"]
    outage_started = time.monotonic()
    deployment.restart("api-server")
    deployment.wait_for_api_server(SERVER_START_TIMEOUT)
    outage = time.monotonic() - outage_started
    fake.add_page("DEMO", f"{RELEASE} {RESTART_RUN}")
    state, tasks = deployment.wait_for_run(RESTART_DAG, RESTART_RUN, RUN_TIMEOUT, logs_of=("scheduler", *WORKERS))
    return {
        "state": state,
        "tasks": tasks,
        "outage": outage,
        "refreshes_before": refreshes_before,
        "logs": deployment.task_logs(RESTART_DAG, RESTART_RUN),
    }


def test_api_server_restart_mid_run_keeps_the_grant_safe(deployment, emulator, restart_run):
    fake = emulator
    assert_grant_safe(fake)
    log = fake.refresh_log
    early = [e["latest_access_remaining"] for e in log if (e["latest_access_remaining"] or 0) > EXPIRY_WINDOW]
    assert early == [], f"refreshes while the newest token still had {early} s to live"
    assert read_extra(deployment)["refresh_token"] == fake.latest_refresh_token
    assert_no_leaks(deployment.texts_to_scan())
    print(
        f"\nAPI server down for {restart_run['outage']:.1f} s; {fake.counters['refreshes']} refreshes "
        f"({restart_run['refreshes_before']} before the restart); tasks: {restart_run['tasks']}"
    )


def test_api_server_restart_mid_run_run_succeeds(restart_run):
    failed = {task: state for task, state in restart_run["tasks"].items() if state != "success"}
    assert restart_run["state"] == "success" and len(restart_run["tasks"]) == RESTART_TASKS and not failed, (
        f"run {restart_run['state']} after the API server was down {restart_run['outage']:.1f} s; tasks "
        f"{restart_run['tasks']}\n"
        + "\n".join(f"--- {t}\n{redact(restart_run['logs'].get(t, '(no log)')[-1500:])}" for t in sorted(failed))
    )


# -- 3. the CLI and dag.test() in the same deployment ----------------------------------------------------


def test_cli_refresh_and_dag_test_rotate_the_same_connection_row(deployment, emulator):
    from airflow_provider_confluence.auth.fingerprint import fingerprint

    fake = emulator
    fake.reset_counters()
    before = read_extra(deployment)["refresh_token"]
    assert before == fake.latest_refresh_token

    cli = subprocess.run(
        [str(Path(sys.executable).parent / "airflow-confluence"), "refresh", "--conn-id", CONN_ID],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(deployment.home),
    )
    assert cli.returncode == 0, redact(f"{cli.stdout}\n{cli.stderr}"[-4000:])
    after_cli = read_extra(deployment)["refresh_token"]
    assert after_cli == fake.latest_refresh_token != before
    assert (
        f"Refreshed connection {CONN_ID!r} in the connection store: refresh token {fingerprint(before)} -> "
        f"{fingerprint(after_cli)};"
    ) in cli.stdout, redact(cli.stdout)
    assert fake.counters["refreshes"] == 1

    local = subprocess.run(
        [sys.executable, str(deployment.home / "dags" / f"{LOCAL_DAG}.py")],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(deployment.home),
    )
    output = f"{local.stdout}\n{local.stderr}"
    assert local.returncode == 0 and f'{RESULT} dag.test {{"state": "success"}}' in local.stdout, redact(output[-4000:])
    after_test = read_extra(deployment)["refresh_token"]
    assert after_test == fake.latest_refresh_token != after_cli
    in_process = refresh_lines(output)
    assert in_process >= 1, redact(output[-4000:])
    assert "keeps its rotated tokens in the connection store" in output, redact(output[-4000:])

    assert_grant_safe(fake)
    assert fake.counters["refreshes"] == 1 + in_process, (fake.counters, in_process)
    assert_no_leaks(
        {
            "airflow-confluence refresh output": f"{cli.stdout}\n{cli.stderr}",
            "dag.test() output": output,
            **deployment.texts_to_scan(),
        }
    )
    print(f"\nthe CLI refreshed once, dag.test() {in_process} time(s); the row holds the latest refresh token")
