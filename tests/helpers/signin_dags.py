"""The DAG file of tests/system/test_signin_notifier_deployment.py: a DAG that uses a service-account and an
API-token connection in every way a task can, a DAG whose tasks have ``ConfluenceNotifier`` callbacks, and a DAG
that mirrors a directory of Markdown twice in a row (``ConfluenceMirrorDirectoryOperator``; the second run must
write nothing).

All are ``schedule="@once"`` and not paused at creation, so that the scheduler runs each once as soon as it has
parsed it, on Airflow 2.11 and 3.x alike. The placeholders ``__NAME__`` are filled in with Python literals
(``helpers.broker_dags.fill``).
"""

from __future__ import annotations

SIGNIN_NOTIFIER_DAGS = r"""
from __future__ import annotations

import pendulum
import requests

try:
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

from airflow_provider_confluence.notifications.confluence import ConfluenceNotifier
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceGetPageOperator,
    ConfluenceMirrorDirectoryOperator,
    ConfluenceSearchOperator,
)
from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor

ARGS = dict(
    schedule="@once",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    default_args={"retries": 0},
)
SPACES_URL = __SPACES_URL__


def signin_tasks(kind: str, conn_id: str, space: str) -> None:
    title = f"Sign-in report {kind}"
    publish = ConfluenceCreatePageOperator(
        task_id=f"publish_{kind}", confluence_conn_id=conn_id, space_key=space, title=title,
        body="# Report\n\nAll green.", representation="markdown",
    )
    ConfluencePageSensor(
        task_id=f"wait_{kind}", confluence_conn_id=conn_id, space_key=space, title=title, mode="poke",
        poke_interval=1.0, timeout=120,
    )
    search = ConfluenceSearchOperator(
        task_id=f"search_{kind}", confluence_conn_id=conn_id, cql=f'space = "{space}" AND title = "{title}"'
    )
    get = ConfluenceGetPageOperator(task_id=f"get_{kind}", confluence_conn_id=conn_id, space_key=space, title=title)
    publish >> [search, get]

    @task(task_id=f"macro_{kind}")
    def call_with_the_macro(header: str) -> int:
        status = requests.get(SPACES_URL, headers={"Authorization": header}, timeout=30).status_code
        if status != 200:
            raise RuntimeError(f"the gateway answered {status} to the rendered header")
        return status

    @task(task_id=f"check_{kind}")
    def check(published: dict, found: list, page: dict) -> None:
        ids = {published["id"], page["id"], *(hit["id"] for hit in found)}
        if len(ids) != 1 or len(found) != 1:
            raise RuntimeError(f"the tasks saw different pages: {ids}, {len(found)} search results")

    call_with_the_macro("{{ macros.confluence.authorization_header('" + conn_id + "') }}")
    check(publish.output, search.output, get.output)


with DAG(__SIGNIN_DAG__, **ARGS):
    for kind, (conn_id, space) in __TYPES__.items():
        signin_tasks(kind, conn_id, space)


with DAG(__NOTIFIER_DAG__, **ARGS):

    @task(task_id="fails", on_failure_callback=ConfluenceNotifier(
        confluence_conn_id=__SA_CONN__, space_key="OPS", title="Incident log"))
    def fails() -> None:
        raise ValueError(__FAILURE__)

    @task(task_id="fails_refused", on_failure_callback=ConfluenceNotifier(
        confluence_conn_id=__BROKEN_CONN__, space_key="OPS", title="Incident log"))
    def fails_refused() -> None:
        raise ValueError(__REFUSED_FAILURE__)

    @task(task_id="succeeds", on_success_callback=ConfluenceNotifier(
        confluence_conn_id=__API_CONN__, space_key="OPS", parent_title="Incidents", title="Done",
        message="{{ ti.task_id }} succeeded in {{ run_id }}"))
    def succeeds() -> str:
        return "ok"

    fails()
    fails_refused()
    succeeds()


with DAG(__MIRROR_DAG__, **ARGS):
    first, again = (
        ConfluenceMirrorDirectoryOperator(
            task_id=task_id, confluence_conn_id=__SA_CONN__, directory=__MIRROR_DIR__, space_key=__MIRROR_SPACE__,
            parent_title="Handbook", labels=["handbook"],
        )
        for task_id in ("mirror", "mirror_again")
    )
    first >> again
"""
