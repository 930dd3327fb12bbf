"""``ConfluenceNotifier`` as a task's failure callback in real DAG runs (``dag.test()``), on Airflow 2.11 and 3.x:
one entry per try, a second call of the callback writes nothing, and a notifier that cannot write leaves the
task's failure as it was."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.notifications.confluence import ConfluenceNotifier, incident_key
from helpers.airflow_env import airflow_major
from helpers.dags import new_dag, task_decorator

pytestmark = pytest.mark.airflow2

SEEN: list[Any] = []


def remember(context: Any) -> None:
    """A second failure callback: keeps the context the notifier got, to call the notifier again with it."""
    SEEN.append(context)


def run_failing_dag(notifier: ConfluenceNotifier, error: str = "disk <full> & sad") -> tuple[Any, Any]:
    """Run a DAG whose one task fails with ``notifier`` (then :func:`remember`) as its failure callback."""
    task = task_decorator()
    SEEN.clear()
    with new_dag("notify") as dag:

        @task(task_id="boom", retries=0, on_failure_callback=[notifier, remember])
        def boom() -> None:
            raise ValueError(error)

        boom()
    if airflow_major() >= 3:  # dag.test() runs only DAGs that are serialized in the metadata database
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.collection import update_dag_parsing_results_in_db
        from airflow.serialization.serialized_objects import LazyDeserializedDAG
        from airflow.utils.session import create_session

        DagBundlesManager().sync_bundles_to_db()
        with create_session() as session:
            update_dag_parsing_results_in_db(
                "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
            )
    run = dag.test()
    return dag, run


def body_of(fake: Any, page_id: str) -> tuple[str, int]:
    page = next(p for p in fake.pages if p["id"] == page_id)
    return page["body"]["storage"]["value"], page["version"]["number"]


def test_a_failed_task_appends_one_entry_and_a_second_call_writes_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("OPS")
    log_page = fake_atlassian.add_page("OPS", "Incident log", "<h1>Incidents</h1>")
    notifier = ConfluenceNotifier(space_key="OPS", title="Incident {{ 'log' }}")
    dag, run = run_failing_dag(notifier)
    assert str(run.state).endswith("failed")
    body, version = body_of(fake_atlassian, log_page["id"])
    key = f"{dag.dag_id}/{run.run_id}/boom/-1/1"
    assert body.count(f"airflow-append:{key}") == 1
    assert body.startswith("<h1>Incidents</h1>")
    assert f"<code>{dag.dag_id}.boom</code>" in body
    assert "disk &lt;full&gt; &amp; sad" in body  # the exception, shown as written
    assert version == 2

    (context,) = SEEN
    assert incident_key(context) == key
    notifier(context)  # the same callback again, for the same try: nothing new
    assert body_of(fake_atlassian, log_page["id"]) == (body, 2)


def test_a_page_per_incident_under_a_parent_is_created_once(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("OPS")
    parent = fake_atlassian.add_page("OPS", "Incidents")
    notifier = ConfluenceNotifier(
        space_key="OPS",
        parent_title="Incidents",
        title="Failed: {{ ti.task_id }}",
        message="Task `{{ ti.task_id }}` failed: {{ exception }}",
    )
    dag, run = run_failing_dag(notifier, error="no rows")
    assert str(run.state).endswith("failed")
    key = f"{dag.dag_id}/{run.run_id}/boom/-1/1"
    (page,) = [p for p in fake_atlassian.pages if p["title"].startswith("Failed: boom")]
    assert page["title"] == f"Failed: boom {key}"
    assert str(page["parentId"]) == str(parent["id"])
    assert "no rows" in page["body"]["storage"]["value"]
    notifier(SEEN[0])
    assert [p["id"] for p in fake_atlassian.pages if p["title"].startswith("Failed: boom")] == [page["id"]]


def test_a_notifier_that_cannot_write_leaves_the_task_failure_as_it_was(fake_atlassian, confluence_conn, caplog):
    fake_atlassian.add_space("OPS")
    log_page = fake_atlassian.add_page("OPS", "Incident log", "<h1>Incidents</h1>")
    fake_atlassian.fail_next(500, times=50)  # every Confluence call fails (the client retries some)
    notifier = ConfluenceNotifier(page_id=log_page["id"])
    with caplog.at_level(logging.ERROR):
        dag, run = run_failing_dag(notifier)
    assert str(run.state).endswith("failed")
    assert len(SEEN) == 1  # the callback after the notifier still ran
    assert body_of(fake_atlassian, log_page["id"]) == ("<h1>Incidents</h1>", 1)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        (ti,) = session.query(TaskInstance).filter(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
        assert str(ti.state).endswith("failed")


def test_a_notifier_failure_is_logged_and_never_raised(fake_atlassian, confluence_conn, caplog, capsys):
    fake_atlassian.add_space("OPS")
    fake_atlassian.add_page("OPS", "Incident log")
    notifier = ConfluenceNotifier(space_key="OPS", title="No such page")
    context = {"ti": _Ti(), "run_id": "r1", "dag": new_dag("ctx")}
    with caplog.at_level(logging.ERROR):
        notifier(context)  # no page of that title: logged, not raised
    logged = caplog.text + capsys.readouterr().out  # Airflow 3 logs through structlog, to stdout
    assert "ConfluencePageMissing" in logged and "No such page" in logged and "not written" in logged
    broken = ConfluenceNotifier(page_id="1", message="{{ no_such_variable.attribute }}")
    broken(dict(context))  # a template that cannot render: logged, not raised
    logged = caplog.text + capsys.readouterr().out
    assert "UndefinedError" in logged and "not written" in logged


class _Ti:
    dag_id, run_id, task_id, map_index, try_number = "d", "r1", "t", 3, 2


def test_the_key_names_the_try_and_the_map_index():
    assert incident_key({"ti": _Ti()}) == "d/r1/t/3/2"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "Say which page"),
        ({"page_id": "1", "parent_id": "2", "space_key": "OPS"}, "not both"),
        ({"parent_id": "2"}, "space_key or space_id"),
        ({"parent_id": "2", "parent_title": "P", "space_key": "OPS"}, "parent_id or parent_title"),
        ({"page_id": "1", "representation": "wiki"}, "representation"),
        ({"page_id": "1", "message": " "}, "message"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, words):
    with pytest.raises(ConfluenceConfigError, match=words):
        ConfluenceNotifier(**kwargs)


def test_the_notifier_is_templated_with_the_connection_and_async_on_airflow_3():
    assert {"confluence_conn_id", "message", "title"} <= set(ConfluenceNotifier.template_fields)
    assert hasattr(ConfluenceNotifier, "async_notify")


def test_async_notify_writes_once_too(fake_atlassian, confluence_conn):
    """``async_notify`` (the triggerer's way on Airflow 3) runs the same write, in a thread."""
    import asyncio

    fake_atlassian.add_space("OPS")
    log_page = fake_atlassian.add_page("OPS", "Incident log", "<h1>Incidents</h1>")
    notifier = ConfluenceNotifier(
        page_id=log_page["id"], message="<p>{{ ti.task_id }} retried</p>", representation="storage"
    )
    context = {"ti": _Ti(), "run_id": "r1", "dag": new_dag("async")}
    notifier.render_template_fields(context)
    for _ in range(2):
        asyncio.run(notifier.async_notify(context))
    body, version = body_of(fake_atlassian, log_page["id"])
    assert body.count("airflow-append:d/r1/t/3/2") == 1 and body.endswith("<p>t retried</p>")
    assert version == 2


def test_every_call_renders_its_own_context(fake_atlassian, confluence_conn):
    """BaseNotifier renders in place; one notifier shared by several tasks still writes each task's entry."""
    fake_atlassian.add_space("OPS")
    log_page = fake_atlassian.add_page("OPS", "Incident log", "<h1>Incidents</h1>")
    notifier = ConfluenceNotifier(
        page_id=log_page["id"], message="<p>{{ ti.task_id }} ok</p>", representation="storage"
    )
    dag = new_dag("shared")
    for task_id in ("first", "second"):
        ti = _Ti()
        ti.task_id = task_id
        notifier({"ti": ti, "run_id": "r1", "dag": dag})
    body, _ = body_of(fake_atlassian, log_page["id"])
    assert "<p>first ok</p>" in body and "<p>second ok</p>" in body
