"""Service accounts, scoped API tokens and ``ConfluenceNotifier`` on a real deployment, on Airflow 3.3 and 2.11.

The deployment, started once for this module in a private AIRFLOW_HOME on a fresh, migrated PostgreSQL database,
with the LocalExecutor, whose forked workers supervise the task processes:

* Airflow 3: ``airflow api-server`` (the execution API the tasks read their connections through), ``airflow
  scheduler`` and ``airflow dag-processor``;
* Airflow 2.11: ``airflow scheduler`` (which parses the DAG files itself); the tasks read the connection rows.

The DAGs are ``schedule="@once"`` and not paused at creation: the scheduler runs each once as soon as it is parsed,
and the test reads the runs from the metadata database. The connections are rows that the test writes before the
processes start: ``auth_type=client_credentials`` (a service account of the emulator), ``auth_type=api_token``
(a scoped API token) and a service account whose secret is wrong.

The claims:

1. For each type, a publish, a CQL search, a page get, the page sensor and a task whose templated argument is
   ``{{ macros.confluence.authorization_header(...) }}`` succeed; the emulator saw the service account's bearer
   token or the API token's Basic credential on every gateway call (its request log says how each caller signed
   in) and never a refresh; nothing was written to any store (no Variable, the connection rows byte-identical);
   no secret in any task log, process output or stored rendered field.
2. ``ConfluenceNotifier``: a failing task's ``on_failure_callback`` writes one incident entry and the task's own
   error stays in its log and state; a notifier that the emulator refuses (``invalid_client``) logs that and
   hides nothing; an ``on_success_callback`` creates its page once.
3. ``ConfluenceMirrorDirectoryOperator`` on a forked worker (the service account): a directory of Markdown becomes
   its page tree under a parent page, each page once with its label; the same mirror run again right after writes
   nothing.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.airflow_env import airflow_major
from helpers.broker_dags import fill
from helpers.deployment import Deployment, helper, redact, tail
from helpers.metadata_db import MetadataDb
from helpers.processes import api_server_env, free_port, fresh_postgres_database, served
from helpers.signin_dags import SIGNIN_NOTIFIER_DAGS

pytestmark = [pytest.mark.postgres, pytest.mark.airflow_server, pytest.mark.airflow2]

SA_CONN, API_CONN, BROKEN_CONN = "signin_service_account", "signin_api_token", "signin_wrong_secret"
TYPES = {"client_credentials": (SA_CONN, "SACC"), "api_token": (API_CONN, "APIT")}
SIGNIN_DAG, NOTIFIER_DAG, MIRROR_DAG = "apc_signin_deployment", "apc_notifier_deployment", "apc_mirror_deployment"
MIRROR_SPACE = "MIRR"
LABELS = "POST /wiki/rest/api/content/{id}/label"
#: the sample directory of example_dags/confluence_mirror_docs.py: path -> (title, parent path)
MIRROR_SAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "mirror_docs"
MIRROR_TREE = {
    "overview.md": ("Pipeline handbook", None),
    "guide/": ("Pipeline user guide", None),
    "guide/setup.md": ("Setting up the pipeline", "guide/"),
    "reference/": ("reference", None),
    "reference/tables.md": ("Pipeline tables", "reference/"),
}
FAILURE, REFUSED_FAILURE = "APC-TASK-ERROR disk <full>", "APC-TASK-ERROR-2 quota"
SERVER_START_TIMEOUT = 180.0
RUN_TIMEOUT = 180.0
NOT_WRITTEN = "The Confluence notification was not written"


def dag_file(fake: Any, mirror_dir: Path) -> str:
    """The DAG file of the three DAGs (helpers/signin_dags.py) for this module's names and the emulator's gateway."""
    values = {
        "MIRROR_DAG": MIRROR_DAG,
        "MIRROR_DIR": str(mirror_dir),
        "MIRROR_SPACE": MIRROR_SPACE,
        "SPACES_URL": f"{fake.api_url}/ex/confluence/{fake.cloud_id}/wiki/api/v2/spaces",
        "SIGNIN_DAG": SIGNIN_DAG,
        "NOTIFIER_DAG": NOTIFIER_DAG,
        "TYPES": TYPES,
        "SA_CONN": SA_CONN,
        "API_CONN": API_CONN,
        "BROKEN_CONN": BROKEN_CONN,
        "FAILURE": FAILURE,
        "REFUSED_FAILURE": REFUSED_FAILURE,
    }
    return fill(SIGNIN_NOTIFIER_DAGS, {name: repr(value) for name, value in values.items()})


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """The emulator with a service account, an API token, the spaces and the incident pages."""
    from airflow_provider_confluence.testing import FakeAtlassian

    with FakeAtlassian() as fake:
        for _conn, space in TYPES.values():
            fake.add_space(space)
        fake.add_space("OPS")
        fake.add_page("OPS", "Incident log", "<h1>Incidents</h1>")
        fake.add_page("OPS", "Incidents")
        fake.add_space(MIRROR_SPACE)
        fake.add_page(MIRROR_SPACE, "Handbook")
        fake.latency = 0.01
        yield fake


@pytest.fixture(scope="module")
def credentials(emulator: Any) -> dict[str, Any]:
    """The connections by id, and every secret they hold (the Basic header's base64 form too)."""
    service, token = emulator.add_service_account(label="nightly"), emulator.add_api_token("robot@example.com")
    wrong = emulator.add_service_account(label="wrong secret")
    connections = {
        SA_CONN: emulator.service_account_connection(service),
        API_CONN: emulator.api_token_connection(token),
        BROKEN_CONN: dict(emulator.service_account_connection(wrong), password=wrong.client_secret[::-1]),
    }
    basic = base64.b64encode(f"{token.email}:{token.token}".encode()).decode()
    secrets = [service.client_secret, wrong.client_secret, wrong.client_secret[::-1], token.token, basic]
    return {"connections": connections, "secrets": secrets, "service": service, "token": token}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, emulator: Any, credentials: dict[str, Any]
) -> Iterator[tuple[Deployment, MetadataDb, dict[str, str]]]:
    """The processes of the deployment, its database, and the connections' stored extras before any run."""
    home = tmp_path_factory.mktemp("signin-deployment-home")
    for folder in ("dags", "plugins", "logs"):
        (home / folder).mkdir()
    mirror_dir = Path(shutil.copytree(MIRROR_SAMPLE, home / "mirror_docs"))
    (home / "dags" / "apc_signin_notifier.py").write_text(dag_file(emulator, mirror_dir))
    port = free_port()
    parsing = "DAG_PROCESSOR" if airflow_major() >= 3 else "SCHEDULER"
    env = {
        **api_server_env(home, port),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # empty: the plugin comes from the entry point
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        f"AIRFLOW__{parsing}__PARSING_PROCESSES": "1",
        f"AIRFLOW__{parsing}__MIN_FILE_PROCESS_INTERVAL": "600",  # parsed once
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": emulator.allowed_endpoint_hosts,
    }
    for conn_id in credentials["connections"]:
        env.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
    with fresh_postgres_database(f"apc_signin_af{airflow_major()}", env) as database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
        helper(env, "put-connections", json.dumps(credentials["connections"]))
        db = MetadataDb(database_url)
        stored = {conn_id: db.raw_extra(conn_id) for conn_id in credentials["connections"]}
        emulator.reset_counters()
        deployment = Deployment(env, home, port)
        try:
            if airflow_major() >= 3:
                deployment.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
                deployment.start("dag-processor", "dag-processor")
                # The workers the scheduler forks need the execution API from their first task on.
                deployment.wait_for_api_server(SERVER_START_TIMEOUT)
            deployment.start("scheduler", "scheduler")
            yield deployment, db, stored
        finally:
            deployment.stop()
            db.close()


@pytest.fixture(scope="module")
def runs(deployment: tuple[Deployment, MetadataDb, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """The three runs, finished: run id, state, task states and task logs, by DAG id."""
    procs, db, _stored = deployment

    def tails() -> str:
        return "\n".join(f"--- {name}\n{tail(procs.output(name), 3000)}" for name in procs.procs)

    found = {}
    for dag_id in (SIGNIN_DAG, NOTIFIER_DAG, MIRROR_DAG):
        run_id, state, tasks = db.wait_for_run(dag_id, RUN_TIMEOUT, procs.check_alive, tails)
        found[dag_id] = {"run_id": run_id, "state": state, "tasks": tasks, "logs": procs.task_logs(dag_id, run_id)}
    return found


def logs_of(run: dict[str, Any], tasks: Any) -> str:
    return "\n".join(f"--- {t}\n{redact(run['logs'].get(t, '(no log)')[-3000:])}" for t in sorted(tasks))


def shown(secrets: list[str], text: str) -> bool:
    return any(secret in text for secret in secrets)


# -- 1. the two sign-in types ---------------------------------------------------------------------------


def test_every_task_of_both_sign_in_types_succeeds(runs):
    run = runs[SIGNIN_DAG]
    failed = {task: state for task, state in run["tasks"].items() if state != "success"}
    assert run["state"] == "success" and len(run["tasks"]) == 12 and not failed, (
        f"run {run['state']}, tasks {run['tasks']}\n{logs_of(run, failed)}"
    )


def test_the_emulator_saw_the_service_account_token_and_the_api_token_on_the_gateway(runs, emulator, credentials):
    fake = emulator
    gateway = [r for r in fake.requests if r["path"].startswith("/wiki/")]
    unrecognised = [(r["route"], r["status"]) for r in gateway if r["auth_kind"] is None]
    assert gateway and not unrecognised, unrecognised
    assert {(r["auth_kind"], r["auth_app"]) for r in gateway} == {
        ("client_credentials", credentials["service"].client_id),
        ("api_token", None),
    }
    # Each type created its page in its own space, signed in its own way.
    space_ids = {s["id"]: s["key"] for s in fake.spaces}
    creates = {
        space_ids[str(r["json"]["spaceId"])]: r["auth_kind"]
        for r in gateway
        if r["route"] == "POST /wiki/api/v2/pages" and r["status"] == 200
    }
    assert {kind: creates.get(space) for kind, (_conn, space) in TYPES.items()} == {k: k for k in TYPES}
    counters = fake.counters
    assert counters["refreshes"] == counters["code_exchanges"] == 0
    assert counters["client_credentials_grants"] >= 1 and counters["tenant_info_calls"] >= 1
    assert counters["api_token_failures"] == counters["api_token_expired_uses"] == 0


def test_nothing_was_stored_for_these_types(runs, deployment):
    _procs, db, stored = deployment
    assert db.variable_keys() == []  # no Variable store, no journal, no broker key: the broker was never asked
    after = {conn_id: db.raw_extra(conn_id) for conn_id in stored}
    unchanged = {conn_id: after[conn_id] == stored[conn_id] for conn_id in stored}  # booleans: ciphertext only
    assert unchanged == dict.fromkeys(stored, True)


@pytest.mark.skipif(airflow_major() < 3, reason="Airflow 2 tasks read the connection rows themselves")
def test_the_tasks_read_their_connections_through_the_execution_api(runs, deployment):
    procs, _db, _stored = deployment
    output = procs.output("api-server").read_text(errors="replace")
    reads = {conn_id: served(output, "GET", f"/execution/connections/{conn_id}") for conn_id in (SA_CONN, API_CONN)}
    assert all(count >= 5 for count in reads.values()), reads  # each of the five tasks of a type, at least once


def test_no_secret_in_task_logs_outputs_or_rendered_fields(runs, deployment, credentials):
    from airflow_provider_confluence.testing import find_leaks

    procs, db, _stored = deployment
    rendered = db.rendered_fields(SIGNIN_DAG)
    assert {f"macro_{kind}" for kind in TYPES} <= set(rendered), sorted(rendered)
    assert all("***" in rendered[f"macro_{kind}"] for kind in TYPES)  # the rendered header, masked
    texts = {**procs.texts_to_scan(), **{f"rendered fields of {t}": v for t, v in rendered.items()}}
    assert sum(f"dag_id={SIGNIN_DAG}" in name for name in texts) >= 12
    for where, text in texts.items():
        clean = not find_leaks(text) and not shown(credentials["secrets"], text)
        assert clean, f"a secret in clear text in {where}"  # say where, never what


# -- 2. the notifier on the worker path -----------------------------------------------------------------


def test_a_failed_task_writes_one_incident_entry_and_keeps_its_error(runs, emulator):
    run = runs[NOTIFIER_DAG]
    assert run["state"] == "failed" and run["tasks"]["fails"] == "failed", run["tasks"]
    page = next(p for p in emulator.pages if p["title"] == "Incident log")
    body = page["body"]["storage"]["value"]
    key = f"{NOTIFIER_DAG}/{run['run_id']}/fails/-1/1"
    assert body.count(f"airflow-append:{key}") == 1, redact(body)
    assert "APC-TASK-ERROR disk &lt;full&gt;" in body
    assert page["version"]["number"] == 2  # this entry only: the refused notifier wrote nothing
    log = run["logs"]["fails"]
    assert FAILURE in log and "ValueError" in log, logs_of(run, ["fails"])
    assert f"Incident {key}: written to page {page['id']}" in log, logs_of(run, ["fails"])


def test_a_refused_notifier_is_logged_and_hides_nothing(runs, emulator):
    run = runs[NOTIFIER_DAG]
    assert run["tasks"]["fails_refused"] == "failed", run["tasks"]
    log = run["logs"]["fails_refused"]
    assert REFUSED_FAILURE in log and "ValueError" in log, logs_of(run, ["fails_refused"])
    assert f"{NOT_WRITTEN} (ConfluenceAuthError:" in log, logs_of(run, ["fails_refused"])
    assert emulator.counters["client_auth_failures"] >= 1


def test_a_success_callback_creates_its_incident_page_once(runs, emulator):
    run = runs[NOTIFIER_DAG]
    assert run["tasks"]["succeeds"] == "success", run["tasks"]
    key = f"{NOTIFIER_DAG}/{run['run_id']}/succeeds/-1/1"
    pages = [p for p in emulator.pages if p["title"] == f"Done {key}"]
    assert len(pages) == 1, [p["title"] for p in emulator.pages]
    parent = next(p for p in emulator.pages if p["title"] == "Incidents")
    assert str(pages[0]["parentId"]) == str(parent["id"])
    assert f"succeeds succeeded in {run['run_id']}" in pages[0]["body"]["storage"]["value"]
    assert NOT_WRITTEN not in run["logs"]["succeeds"], logs_of(run, ["succeeds"])


# -- 3. the mirror on the worker path -------------------------------------------------------------------


def test_a_mirrored_directory_is_its_page_tree_and_a_second_run_writes_nothing(runs, emulator):
    run = runs[MIRROR_DAG]
    assert run["state"] == "success" and run["tasks"] == {"mirror": "success", "mirror_again": "success"}, (
        f"run {run['state']}, tasks {run['tasks']}\n{logs_of(run, run['tasks'])}"
    )
    space_id = str(next(s["id"] for s in emulator.spaces if s["key"] == MIRROR_SPACE))
    pages = [p for p in emulator.pages if str(p["spaceId"]) == str(space_id) and p["status"] == "current"]
    by_title = {p["title"]: p for p in pages}
    titles = [p["title"] for p in pages]
    expected = ["Handbook", *(title for title, _ in MIRROR_TREE.values())]
    assert {title: titles.count(title) for title in expected} == dict.fromkeys(expected, 1), titles  # each once
    assert len(titles) == len(expected) + 1, titles  # and the space's home page, nothing else
    ids = {path: str(by_title[title]["id"]) for path, (title, _) in MIRROR_TREE.items()}
    parents = {path: str(by_title[title]["parentId"]) for path, (title, _) in MIRROR_TREE.items()}
    handbook = str(by_title["Handbook"]["id"])
    assert parents == {path: ids[above] if above else handbook for path, (_, above) in MIRROR_TREE.items()}
    assert {path: by_title[title]["version"]["number"] for path, (title, _) in MIRROR_TREE.items()} == dict.fromkeys(
        MIRROR_TREE, 1
    )
    assert all(emulator.page_labels(page_id) == ["handbook"] for page_id in ids.values())
    # every write to the mirrored pages: one create each and one label call each, all from the first task
    writes = [
        r["route"]
        for r in emulator.requests
        if r["method"] != "GET"
        and any(f"/pages/{i}" in r["path"] or f"/content/{i}/" in r["path"] for i in ids.values())
    ]
    creates = [
        r
        for r in emulator.requests
        if r["route"] == "POST /wiki/api/v2/pages" and str(r["json"]["spaceId"]) == space_id
    ]
    assert len(creates) == len(MIRROR_TREE) and all(r["status"] == 200 for r in creates)
    assert len(writes) == len(MIRROR_TREE) and all(route == LABELS for route in writes), writes  # no PUT
    assert f"{len(MIRROR_TREE)} pages, {len(MIRROR_TREE)} changed" in run["logs"]["mirror"], logs_of(run, ["mirror"])
    assert f"{len(MIRROR_TREE)} pages, 0 changed" in run["logs"]["mirror_again"], logs_of(run, ["mirror_again"])
