"""The example DAGs on the real Airflow 3 worker path: ``airflow api-server`` + forked, supervised task workers.

``dag.test()`` runs tasks in-process, where the ORM is not blocked and logs are not masked, so it hides the
path production takes on Airflow 3. Here (Airflow 3.3 source, read for this test):

* ``DAG.test(use_executor=True)`` (``airflow/sdk/definitions/dag.py``) starts the default executor
  (``LocalExecutor`` on PostgreSQL), turns each schedulable task instance into an ``ExecuteTask`` workload
  signed by ``executor.jwt_generator`` (``[api_auth] jwt_secret``), and queues it;
* ``LocalExecutor`` (``airflow/executors/local_executor.py``) hands the workload, in a forked worker, to
  ``BaseExecutor.run_workload`` -> ``supervise_task(server=get_execution_api_server_url())``, i.e. ``[core]
  execution_api_server_url``;
* the supervisor (``airflow/sdk/execution_time/supervisor.py``) forks the task process, whose ``_fork_main``
  calls ``block_orm_access()`` (``settings.Session = BlockedDBSession``) before running the task; every
  connection and Variable read or write then goes task -> supervisor -> execution API of the api-server,
  which checks the JWT with the same ``[api_auth] jwt_secret``;
* the supervisor writes the task log file under ``[logging] base_log_folder``, masking what the task
  registered with ``mask_secret`` (``airflow.sdk.log.mask_secret`` forwards ``MaskSecret`` to it). The
  LocalExecutor also relays the task's log lines to its own stdout (``subprocess_logs_to_stdout=True``), through
  the core structlog chain, which has no secrets masker: there only "never log a token" protects.

So this module starts a real ``airflow api-server`` on a fresh, migrated PostgreSQL metadata database, runs
each example DAG with ``dag.test(use_executor=True)`` in a subprocess pointed at the same database and server,
against the emulator in this process, and checks the run, where the rotated token landed, and that no token
leaked. No provider setting is made anywhere: with the defaults, the workers ask the token broker in the
api-server, which keeps the rotated refresh token in the connection row.

A listener plugin (written into the private AIRFLOW_HOME's plugins folder; the Task SDK's task runner calls
plugin listeners inside the task process) reports from inside each task that the ORM really was blocked, and
logs the access token the hook got, which must come out masked in the task log file. A third test shows the
explicit opt-in to the host-locked Variable store (``state_store=variable``) working there, with its warning.

Issue 4 adds: the "Confluence page" extra link read from the REST API (``/api/v2/.../links``) after the worker
ran the task; the ``macros.confluence.access_token`` macro rendered in the worker, its token masked by value in
the task log file and hidden in the rendered fields; and the deferrable page sensor resumed by a real ``airflow
triggerer``, whose trigger reads the connection and the Variable store from a thread through the triggerer's
supervisor.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.airflow_env import EXAMPLE_DAGS, airflow_major, scan_for_secrets
from helpers.api_server import answers
from helpers.api_server import api_server as running_api_server
from helpers.processes import (
    api_server_env,
    free_port,
    fresh_postgres_database,
    served,
    stop_group,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow_server,
    pytest.mark.skipif(
        airflow_major() < 3,
        reason="Airflow 2 has no api-server, execution API or ORM-blocked task workers (Airflow 3 only)",
    ),
]

WORKER = Path(__file__).resolve().parents[1] / "helpers" / "airflow_worker.py"
CONN_ID = "confluence_default"
VARIABLE = f"confluence_oauth_token_state__{CONN_ID}"
SERVER_START_TIMEOUT = 120.0
DAG_RUN_TIMEOUT = 150.0

PROBE = "APC-WORKER-PROBE"
# Probes run inside each task process: ``on_task_instance_running`` (before ``execute``) reports the ORM;
# ``on_task_instance_success`` of a task that used the hook logs the tokens it stored (they must be masked).
PROBE_PLUGIN = r"""
import json, logging, os

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger("apc_worker_probe")


class WorkerProbe:
    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        from airflow import settings
        from airflow_provider_confluence.version_compat import orm_available

        session_class = getattr(settings, "Session", None)
        try:
            session = session_class()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            session.close()
            error = None
        log.info("%s running %s", "APC-WORKER-PROBE", json.dumps({
            "task_id": task_instance.task_id, "pid": os.getpid(),
            "session_class": getattr(session_class, "__name__", repr(session_class)),
            "session_error": error, "orm_available": orm_available(),
            "sql_alchemy_conn": os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
        }))

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        if task_instance.task_id == "recent_pages":  # the HTTP example: the header the macro rendered
            log.info("%s header %s", "APC-WORKER-PROBE", task_instance.task.headers["Authorization"])
        if task_instance.task_id not in os.environ.get("APC_PROBE_TOKEN_TASKS", "").split(","):
            return
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        log.info("%s tokens access=%s", "APC-WORKER-PROBE", ConfluenceOAuthHook("confluence_default").get_access_token())


class ApcWorkerProbePlugin(AirflowPlugin):
    name = "apc_worker_probe"
    listeners = [WorkerProbe()]
"""

# Runs one DAG with ``dag.test(use_executor=True)`` in a process of its own (it plays the scheduler: the ORM is
# open here, and its LocalExecutor forks the workers); prints the run's state, its task states and the return
# values (XComs) of its tasks on the last line.
RUNNER = r"""
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
except ImportError:
    from airflow.models.dagbag import DagBag
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

from airflow.executors import local_executor


def end_without_hanging(self):
    # LocalExecutor.end() sends one shutdown message per live worker, then joins every worker without a timeout:
    # now and then a worker misses its message and the finished run hangs here (seen in CI). Same steps, bounded.
    for proc in self.workers.values():
        if proc.is_alive():
            self.activity_queue.put(None)
    for proc in self.workers.values():
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
        proc.close()
    self._read_results()
    self.activity_queue.close()
    self.result_queue.close()


local_executor.LocalExecutor.end = end_without_hanging

from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

process_executor_events = SchedulerJobRunner.process_executor_events.__func__


def process_executor_events_afresh(cls, *args, **kwargs):
    # dag.test(use_executor=True) sets its task instances to "queued", commits, and hands this call the same session:
    # a task that finished in the meantime is still read as "queued" there and failed as "killed externally" (seen
    # on Airflow 3.0: "finished with state success, but the task instance's state attribute is queued"). A
    # scheduler reads them afresh; so does this (everything is committed at this point of the loop).
    kwargs["session"].expire_all()
    return process_executor_events(cls, *args, **kwargs)


SchedulerJobRunner.process_executor_events = classmethod(process_executor_events_afresh)

dag_folder, dag_id = sys.argv[1:3]
run_conf = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
bag = DagBag(dag_folder=dag_folder)
if bag.import_errors:
    raise SystemExit(f"import errors: {bag.import_errors}")
if hasattr(bag, "sync_to_db"):  # before 3.2 dag.test() stores no serialized DAG, which the REST API reads
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    bag.sync_to_db("dags-folder", None)
run = bag.get_dag(dag_id).test(use_executor=True, run_conf=run_conf)
with create_session() as session:
    tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
    tasks = {ti.task_id: str(ti.state) for ti in tis}
    rows = session.query(XComModel).filter(
        XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
    )
    xcoms = {row.task_id: XComModel.deserialize_value(row) for row in rows}
print("DAG-RUN-RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tasks,
                                      "xcoms": xcoms}, default=str))
"""


# -- processes ----------------------------------------------------------------------------------------


def worker(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(WORKER.parent),
    )
    assert result.returncode == 0, f"airflow_worker.py {args[0]} failed:\n{result.stderr[-3000:]}"
    return result.stdout


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow3_env(tmp_path_factory: pytest.TempPathFactory, emulator_port: int) -> Iterator[dict[str, str]]:
    """A private AIRFLOW_HOME and a fresh, migrated PostgreSQL metadata database (as test_concurrency.py)."""
    home = tmp_path_factory.mktemp("airflow3-worker-home")
    port = free_port()
    (home / "plugins").mkdir()
    (home / "plugins" / "apc_worker_probe.py").write_text(PROBE_PLUGIN)
    env = {
        **api_server_env(home, port),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor forks `parallelism` workers up front; two are plenty on a 2-core machine.
        "AIRFLOW__CORE__PARALLELISM": "2",
        # Where the supervisors of the forked tasks reach the execution API (base_executor.py).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "APC_PROBE_TOKEN_TASKS": "publish_report,list_spaces,recent_pages",
        # The REST API without a login (GET /auth/token answers an admin token): links, rendered fields.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": f"127.0.0.1:{emulator_port}",
    }
    with fresh_postgres_database(f"apc_worker_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        yield env


@pytest.fixture(scope="module")
def api_server(airflow3_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A real ``airflow api-server`` on a free loopback port; stopped with its children after the module."""
    env = airflow3_env
    home = Path(env["AIRFLOW_HOME"])
    port = env["AIRFLOW__API__PORT"]
    health = f"http://127.0.0.1:{port}/execution/health"
    ready = lambda: answers("GET", health, 200)  # noqa: E731
    with running_api_server(env, home, int(port), ready, SERVER_START_TIMEOUT, "healthy api-server") as log_path:
        yield {"env": env, "port": int(port), "log": log_path}


def run_dag_in_worker(
    api_server: dict[str, Any], dag_id: str, run_conf: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str, str]:
    """Run ``dag_id`` with ``dag.test(use_executor=True)`` (and ``run_conf``) in a subprocess.

    :returns: the run's result, the runner's output, and what the api-server wrote meanwhile.

    The output also stays in ``AIRFLOW_HOME/runner-<dag_id>-<n>.out`` for a post-mortem.
    """
    env = api_server["env"]
    server_log: Path = api_server["log"]
    server_offset = server_log.stat().st_size
    home = Path(env["AIRFLOW_HOME"])
    out_path = home / f"runner-{dag_id}-{len(list(home.glob(f'runner-{dag_id}-*.out')))}.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(EXAMPLE_DAGS), dag_id, *([json.dumps(run_conf)] if run_conf else [])],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(home),
            start_new_session=True,
        )
    try:
        proc.wait(timeout=DAG_RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"dag.test(use_executor=True) of {dag_id} did not finish in {DAG_RUN_TIMEOUT:.0f} s:\n"
            f"{out_path.read_text(errors='replace')[-6000:]}"
        )
    finally:
        stop_group(proc, timeout=5)  # and any LocalExecutor worker or supervisor it left behind
    output = out_path.read_text(errors="replace")
    lines = [line for line in output.splitlines() if line.startswith("DAG-RUN-RESULT ")]
    assert proc.returncode == 0 and lines, f"the DAG runner of {dag_id} failed ({proc.returncode}):\n{output[-6000:]}"
    with open(server_log, "rb") as handle:
        handle.seek(server_offset)
        server_output = handle.read().decode(errors="replace")
    return json.loads(lines[-1].split(" ", 1)[1]), output, server_output


def rest_api(api_server: dict[str, Any], path: str) -> Any:
    """GET ``/api/v2{path}`` of the api-server as an admin (``simple_auth_manager_all_admins``); the JSON answer."""
    base = f"http://127.0.0.1:{api_server['port']}"
    token = requests.get(f"{base}/auth/token", timeout=10).json()["access_token"]
    response = requests.get(f"{base}/api/v2{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, f"GET /api/v2{path} answered {response.status_code}: {response.text[:2000]}"
    return response.json()


def task_logs(env: dict[str, str], dag_id: str, run_id: str) -> dict[str, str]:
    """The task log files of one run under the home's logs folder, by task id."""
    logs: dict[str, str] = {}
    for path in sorted(Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]).rglob("*.log")):
        parts = path.parts
        if f"dag_id={dag_id}" in parts and f"run_id={run_id}" in parts:
            task = next(p.split("=", 1)[1] for p in parts if p.startswith("task_id="))
            logs[task] = logs.get(task, "") + path.read_text(errors="replace")
    return logs


def every_token(fake: Any, *stored: dict[str, Any]) -> list[str]:
    """The client secret, every token the emulator issued, and every token-like value stored."""
    tokens = [fake.client_secret]
    auth = getattr(fake, "_auth", None)  # the emulator's own records: every refresh and access token it issued
    tokens += list(getattr(auth, "_refresh", {})) + list(getattr(auth, "_access", {}))
    for state in stored:
        tokens += [str(state[key]) for key in ("refresh_token", "access_token") if state.get(key)]
    return sorted(set(tokens))


def assert_no_token_leaked(texts: dict[str, str], tokens: list[str]) -> None:
    for where, text in texts.items():
        leaked = scan_for_secrets(text, tokens)
        # Say where, never what: the failure message must not leak the token either.
        clean = not leaked  # a bool: pytest would print the list itself
        assert clean, f"{len(leaked)} token(s) in clear text in {where}"


def events(log_text: str) -> list[dict[str, Any]]:
    """The structured lines of a task log file (the supervisor writes one JSON object per line)."""
    found = []
    for line in log_text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


def probe(log_text: str, kind: str) -> list[str]:
    return [str(e.get("event")) for e in events(log_text) if str(e.get("event", "")).startswith(f"{PROBE} {kind} ")]


def assert_orm_blocked(task: str, log_text: str) -> None:
    """The probe inside the task process found the ORM blocked, and the provider saw it so too."""
    reports = probe(log_text, "running")
    assert len(reports) == 1, f"no ORM probe in the log of {task} (listener plugin not loaded?):\n{log_text[-3000:]}"
    report = json.loads(reports[0].split(" ", 2)[2])
    assert report["task_id"] == task
    assert report["session_class"] == "BlockedDBSession", report
    assert "Direct database access via the ORM is not allowed" in str(report["session_error"]), report
    assert report["orm_available"] is False, report
    assert report["sql_alchemy_conn"] == "airflow-db-not-allowed:///", report


def _prepare(api_server: dict[str, Any], fake: Any, **extra: Any) -> tuple[dict[str, str], str]:
    env = api_server["env"]
    connection = fake.connection(CONN_ID, **extra)
    worker(env, "put-connection", CONN_ID, json.dumps(connection))
    return env, connection["extra"]["refresh_token"]


def _check_worker_path(
    api_server: dict[str, Any],
    fake: Any,
    dag_id: str,
    planted: str,
    output: str,
    server_output: str,
    result: dict[str, Any],
    client_task: str,
) -> dict[str, str]:
    env = api_server["env"]
    assert result["state"].endswith("success"), f"{result}\n{output[-6000:]}"
    assert all(state.endswith("success") for state in result["tasks"].values()), result["tasks"]

    # Every task ran in a supervised process with the ORM blocked.
    logs = task_logs(env, dag_id, result["run_id"])
    assert set(logs) == set(result["tasks"]), f"task logs found for {sorted(logs)}, tasks {sorted(result['tasks'])}"
    for task, text in logs.items():
        assert_orm_blocked(task, text)

    # There, the hook asked the token broker in the api-server, which rotated the grant in the connection row
    # (no Variable involved), and the row holds the refresh token the emulator issued last.
    client_events = events(logs[client_task])
    lines = [str(e.get("event")) for e in client_events]
    broker = f"http://127.0.0.1:{api_server['port']}/confluence-oauth/token"
    assert any(
        line.startswith(f"Connection {CONN_ID!r} gets its access tokens from the token broker at {broker}")
        for line in lines
    ), lines
    assert not any(line.startswith("Refreshed the Confluence access token") for line in lines), lines
    assert fake.counters["refreshes"] == 1
    assert fake.counters["invalid_grants"] == 0
    extra = json.loads(worker(env, "read-extra", CONN_ID))
    assert extra["refresh_token"] == fake.latest_refresh_token != planted
    assert extra["access_token"] and extra["broker_secret"]

    # The worker read the connection through the execution API, and got its token from the broker.
    assert served(server_output, "GET", f"/execution/connections/{CONN_ID}"), server_output[-3000:]
    assert served(server_output, "POST", "/confluence-oauth/token"), server_output[-3000:]
    no_variable = not any(
        put in server_output for put in ("method=PUT path=/execution/variables/", '"PUT /execution/variables/')
    )
    assert no_variable, server_output[-3000:]  # no Variable store

    # The scan below is not vacuous: the task log holds the hook's lines, and the probe logged the stored tokens
    # on purpose, which the supervisor masked in the task log file with what the hook gave to mask_secret.
    assert probe(logs[client_task], "tokens") == [f"{PROBE} tokens access=***"]

    # No token in clear text anywhere: the client secret, the planted refresh token, every token the emulator
    # issued and every one stored, in the task logs, the runner's output and the api-server's output.
    # The probe's own lines (tokens, and the rendered header of the HTTP example) are left out of the runner's
    # output: Airflow 3.2+'s LocalExecutor relays task logs to
    # the executor's stdout (run_workload(subprocess_logs_to_stdout=True)) through the process's core structlog
    # chain, which has no secrets masker, so a token a task logs shows there in clear text even though it was
    # given to mask_secret. That stream is protected only by the provider never logging a token.
    tokens = every_token(fake, extra)
    assert planted in tokens and extra["access_token"] in tokens and extra["refresh_token"] in tokens
    texts = {f"task log of {task}": text for task, text in logs.items()}
    texts["dag.test(use_executor=True) output"] = "\n".join(
        line for line in output.splitlines() if f"{PROBE} tokens " not in line and f"{PROBE} header " not in line
    )
    texts["api-server output"] = server_output
    assert_no_token_leaked(texts, tokens)
    return logs


# -- the tests ----------------------------------------------------------------------------------------


@pytest.mark.every_line
def test_publish_report_in_a_forked_worker(api_server, fake_atlassian):
    fake = fake_atlassian
    fake.add_space("DEMO")
    _, planted = _prepare(api_server, fake)

    result, output, server_output = run_dag_in_worker(api_server, "confluence_publish_report")

    logs = _check_worker_path(
        api_server, fake, "confluence_publish_report", planted, output, server_output, result, "publish_report"
    )
    pages = [p for p in fake.pages if p["title"].startswith("Pipeline report ")]
    assert len(pages) == 1
    assert "<td>1234</td>" in pages[0]["body"]["storage"]["value"]
    summary = result["xcoms"]["publish_report"]
    assert summary["id"] == str(pages[0]["id"]) and summary["title"] == pages[0]["title"]
    assert any(str(e.get("event")).startswith(f"Page {summary['id']} ") for e in events(logs["publish_report"]))

    # The "Confluence page" extra link, as the UI reads it from the REST API: the worker's task runner stored
    # ConfluencePageLink.get_link's answer in XCom, and the api-server's XComOperatorLink reads it back.
    url = f"{fake.site_url}/wiki{pages[0]['_links']['webui']}"
    assert summary["url"] == url
    links = rest_api(
        api_server, f"/dags/confluence_publish_report/dagRuns/{result['run_id']}/taskInstances/publish_report/links"
    )
    assert links == {"extra_links": {"Confluence page": url}, "total_entries": 1}

    # The page's asset event, sent by the forked worker through the execution API (the task created the page).
    from airflow_provider_confluence.assets.uri import page_asset_uri

    asset_events = rest_api(api_server, "/assets/events?source_dag_id=confluence_publish_report")["asset_events"]
    assert [(e["uri"], e["extra"]["action"]) for e in asset_events] == [
        (page_asset_uri(fake.site_url, pages[0]["id"]), "created")
    ]


def test_list_spaces_in_a_forked_worker(api_server, fake_atlassian):
    fake = fake_atlassian
    fake.add_spaces(260)
    _, planted = _prepare(api_server, fake)

    result, output, server_output = run_dag_in_worker(api_server, "confluence_list_spaces")

    logs = _check_worker_path(
        api_server, fake, "confluence_list_spaces", planted, output, server_output, result, "list_spaces"
    )
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces"] == 2
    spaces = result["xcoms"]["list_spaces"]
    assert len(spaces) == 260 and {s["key"] for s in spaces} == {s["key"] for s in fake.spaces}
    assert result["xcoms"]["summarize"]["total"] == 260
    assert "Fetched 260 spaces in 2 requests." in [str(e.get("event")) for e in events(logs["list_spaces"])]
    assert "260 spaces: {'global': 260}" in logs["summarize"]


def test_the_host_locked_variable_store_moves_its_pre_0_2_0_variable_in_a_forked_worker(api_server, fake_atlassian):
    """An upgrade: the state is under the Variable's old name (``confluence_oauth__<conn_id>``, which Airflow does
    not mask). The worker's first transaction moves it to the new name through the execution API and deletes the
    old one, then redeems the token it held."""
    import hashlib

    fake = fake_atlassian
    env, planted = _prepare(api_server, fake, state_store="variable")
    old_name = f"confluence_oauth__{CONN_ID}"
    rotated = requests.post(
        fake.token_url,
        timeout=10,
        json={  # what 0.1 rotated into the old-named Variable
            "grant_type": "refresh_token",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "refresh_token": planted,
        },
    ).json()["refresh_token"]
    seed = hashlib.sha256(planted.encode()).hexdigest()[:16]
    worker(env, "put-variable", old_name, json.dumps({"refresh_token": rotated, "seed_fingerprint": seed}))

    result, output, server_output = run_dag_in_worker(api_server, "confluence_list_spaces")

    assert result["state"].endswith("success"), f"{result}\n{output[-6000:]}"
    assert json.loads(worker(env, "has-variable", old_name)) is False
    state = json.loads(worker(env, "read-variable", VARIABLE))
    assert state["refresh_token"] == fake.latest_refresh_token not in (planted, rotated)
    assert served(server_output, "DELETE", f"/execution/variables/{old_name}"), server_output[-3000:]
    assert (fake.counters["refreshes"], fake.counters["stale_refresh_reuses"], fake.counters["invalid_grants"]) == (
        2,
        0,
        0,
    )


def test_the_host_locked_variable_store_works_in_a_forked_worker_when_chosen(api_server, fake_atlassian):
    """The explicit opt-in (``state_store=variable``): the worker rotates in the Variable through the execution
    API, and says in its log that this is safe only on one host."""
    fake = fake_atlassian
    env, planted = _prepare(api_server, fake, state_store="variable")

    result, output, server_output = run_dag_in_worker(api_server, "confluence_list_spaces")

    assert result["state"].endswith("success"), f"{result}\n{output[-6000:]}"
    logs = task_logs(env, "confluence_list_spaces", result["run_id"])
    assert_orm_blocked("list_spaces", logs["list_spaces"])
    lines = [str(e.get("event")) for e in events(logs["list_spaces"])]
    assert any("under a host file lock" in line and "runs on ONE host" in line for line in lines), lines
    state = json.loads(worker(env, "read-variable", VARIABLE))
    assert state["refresh_token"] == fake.latest_refresh_token != planted
    assert json.loads(worker(env, "read-extra", CONN_ID))["refresh_token"] == planted
    assert served(server_output, "PUT", f"/execution/variables/{VARIABLE}"), server_output[-3000:]
    assert fake.counters["invalid_grants"] == 0
    texts = {f"task log of {task}": text for task, text in logs.items()}
    texts["dag.test(use_executor=True) output"] = "\n".join(
        line for line in output.splitlines() if f"{PROBE} tokens " not in line
    )
    texts["api-server output"] = server_output
    assert_no_token_leaked(texts, every_token(fake, state))


def test_http_example_with_the_token_macro_in_a_forked_worker(api_server, fake_atlassian):
    """``{{ macros.confluence.access_token(...) }}`` renders in the worker (plugin macros are integrated by the
    Task SDK's task runner), the token works, and the supervisor masks it in the task log by value (the probe
    logs the rendered header, whose key name would not help there); the rendered fields hide it too."""
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    for title in ("Alpha", "Beta"):
        fake.add_page("DEMO", title)
    env, planted = _prepare(api_server, fake)
    gateway = {
        "conn_type": "http",
        "host": f"{fake.api_url}/ex/confluence/{fake.cloud_id}",
        "login": None,
        "password": None,
        "extra": {},
    }
    worker(env, "put-connection", "confluence_gateway", json.dumps(gateway))

    result, output, server_output = run_dag_in_worker(
        api_server, "confluence_http_with_token", {"space_id": space["id"]}
    )

    logs = _check_worker_path(
        api_server, fake, "confluence_http_with_token", planted, output, server_output, result, "recent_pages"
    )
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces/{id}/pages"] == 1
    assert [page["title"] for page in result["xcoms"]["recent_pages"]][:2] == ["Beta", "Alpha"]
    assert result["xcoms"]["show"] == 3
    assert probe(logs["recent_pages"], "header") == [f"{PROBE} header Bearer ***"]
    ti = rest_api(api_server, f"/dags/confluence_http_with_token/dagRuns/{result['run_id']}/taskInstances/recent_pages")
    assert ti["rendered_fields"]["headers"]["Authorization"] in ("***", "Bearer ***"), ti["rendered_fields"]
    assert_no_token_leaked({"rendered fields (REST API)": json.dumps(ti)}, every_token(fake))


@pytest.fixture
def triggerer(api_server: dict[str, Any]) -> Iterator[Path]:
    """A real ``airflow triggerer`` beside the api-server (its trigger runner is a forked child with the ORM
    blocked, reaching connections and Variables through the triggerer's supervisor); stopped after the test."""
    env = api_server["env"]
    log_path = Path(env["AIRFLOW_HOME"]) / "triggerer.out"
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "triggerer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=env["AIRFLOW_HOME"],
            start_new_session=True,
        )
    try:
        yield log_path
    finally:
        stop_group(proc)


def test_deferrable_sensor_in_a_real_triggerer(api_server, fake_atlassian, triggerer):
    """The example's deferrable sensor defers (its own check misses once), the real triggerer runs
    ``ConfluencePageTrigger``, whose check runs in a thread, reads the connection through the triggerer's supervisor
    (sync SDK calls from a non-loop thread) and gets its token from the broker, and the task resumes with the page."""
    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Release checklist", labels=["approved"])
    _prepare(api_server, fake)
    fake.fail_next(404, times=1, route="GET /wiki/api/v2/pages/{id}")  # wait_for_approval's own check: not yet

    result, output, server_output = run_dag_in_worker(api_server, "confluence_wait_for_page")

    assert result["state"].endswith("success"), f"{result}\n{output[-4000:]}\n{triggerer.read_text()[-4000:]}"
    assert all(state.endswith("success") for state in result["tasks"].values()), result["tasks"]
    url = f"{fake.site_url}/wiki{page['_links']['webui']}"
    assert result["xcoms"]["wait_for_approval"]["url"] == url
    assert result["xcoms"]["announce"] == f"Release checklist approved at version 1: {url}"
    # the task's own check missed, the trigger's first check found it
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/pages/{id}"] == 2
    triggerer_output = triggerer.read_text(errors="replace")
    # The triggerer writes the trigger's lines into the task's log file: it deferred, the trigger found the page.
    logs = task_logs(api_server["env"], "confluence_wait_for_page", result["run_id"])
    lines = [str(e.get("event")) for e in events(logs["wait_for_approval"])]
    assert "Deferring: the triggerer checks every 120.0 s." in lines, lines
    assert f"page {page['id']} is there (version 1)" in lines, lines
    assert "Trigger fired event" in lines and "trigger completed" in lines, lines
    # The task's own check (in the worker) and the trigger's (in the triggerer) both asked the token broker.
    broker = f"Connection {CONN_ID!r} gets its access tokens from the token broker at "
    triggerer_lines = [line for line in triggerer.read_text(errors="replace").splitlines() if broker in line]
    assert sum(line.startswith(broker) for line in lines) + len(triggerer_lines) == 2, (lines, triggerer_lines)
    extra = json.loads(worker(api_server["env"], "read-extra", CONN_ID))
    assert extra["refresh_token"] == fake.latest_refresh_token and fake.counters["invalid_grants"] == 0
    links = rest_api(
        api_server, f"/dags/confluence_wait_for_page/dagRuns/{result['run_id']}/taskInstances/wait_for_approval/links"
    )
    assert links["extra_links"] == {"Confluence page": url}
    texts = {f"task log of {task}": text for task, text in logs.items()}
    texts.update(
        {
            "dag.test(use_executor=True) output": output,
            "api-server output": server_output,
            "triggerer output": triggerer_output,
        }
    )
    assert_no_token_leaked(texts, every_token(fake))
