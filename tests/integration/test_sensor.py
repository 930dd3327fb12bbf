"""``ConfluencePageSensor`` and ``ConfluencePageTrigger`` against the emulator, in real DAG runs (``dag.test()``).

``dag.test()`` runs a deferred task's trigger inline on both versions (Airflow 3: ``_run_task`` ->
``InProcessTestSupervisor.run_trigger_in_process``; Airflow 2.11: ``_run_inline_trigger``), and resumes the task
with the event. It parks a rescheduled sensor in ``up_for_reschedule`` and runs it again when its reschedule
date has passed.

Airflow 3's ``dag.test()`` only runs DAGs it can serialize from a DAG bundle, so each DAG is written to a file
in a temporary folder, configured as a second bundle (``[dag_processor] dag_bundle_config_list``) for the test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceBrokerError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceNotFound,
    ConfluenceReauthorizationRequired,
    ConfluenceScopeError,
    ConfluenceSpaceMissing,
)
from airflow_provider_confluence.triggers.page_check import PageWait
from helpers.airflow_env import airflow_major, put_connection
from helpers.dags import run_dag_source, xcom

pytestmark = pytest.mark.airflow2


# -- helpers (test_links.py and test_macro.py use them too) ------------------------------------------------


def task_state(dag_id: str, run_id: str, task_id: str) -> str:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        return str(ti.state)


def page_calls(fake: Any) -> int:
    return fake.counters["api_calls_by_route"].get("GET /wiki/api/v2/pages/{id}", 0)


def hook() -> Any:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    return ConfluenceOAuthHook("confluence_default")


# -- the check ---------------------------------------------------------------------------------------------


def test_the_check_says_not_yet_until_page_version_and_label_are_there(fake_atlassian, confluence_conn):
    fake = fake_atlassian
    fake.add_space("DEMO")
    by_title = PageWait.build(space_key="DEMO", title="Runbook", min_version="2", label="Approved")
    assert by_title.label == "approved" and by_title.min_version == 2

    assert by_title.check(hook()) == (None, "page 'Runbook' in space DEMO does not exist yet")
    page = fake.add_page("DEMO", "Runbook", "<p>v1</p>")
    assert by_title.check(hook()) == (None, "page 'Runbook' in space DEMO is at version 1, waiting for 2")
    client = hook().get_conn()
    client.update_page(page_id=page["id"], title="Runbook", body="<p>v2</p>", version=2)
    assert by_title.check(hook()) == (None, "page 'Runbook' in space DEMO does not carry label 'approved' yet")
    client.add_page_labels(page["id"], ["reviewed", "approved"])
    summary, reason = by_title.check(hook())
    assert reason == "page 'Runbook' in space DEMO is there (version 2)"
    assert summary == {
        "id": page["id"],
        "title": "Runbook",
        "space_id": page["spaceId"],
        "version": 2,
        "url": f"{fake.site_url}/wiki{page['_links']['webui']}",
    }

    missing = PageWait.build(page_id="987654321")
    assert missing.check(hook()) == (None, "page 987654321 does not exist yet (or the app's user cannot see it)")


def test_the_check_waits_out_passing_failures_and_fails_on_the_rest(fake_atlassian, confluence_conn):
    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook")
    wait = PageWait.build(page_id=page["id"])
    fake.fail_next(500, times=1, route="GET /wiki/api/v2/pages/{id}")
    assert wait.check(hook()) == (None, "Confluence answered 500 this time; trying again later")
    assert wait.check(hook())[0]["id"] == page["id"]
    fake.fail_next(400, times=1, route="GET /wiki/api/v2/pages/{id}")
    with pytest.raises(Exception) as failure:
        wait.check(hook())
    assert getattr(failure.value, "status_code", None) == 400
    with pytest.raises(ConfluenceSpaceMissing, match="Space 'NOPE' does not exist.*check space_key"):
        PageWait.build(space_key="NOPE", title="Runbook").check(hook())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either page_id, or title"),
        ({"page_id": "1", "title": "T", "space_key": "A"}, "either page_id, or title"),
        ({"title": "T"}, "exactly one of space_key and space_id"),
        ({"title": "T", "space_key": "A", "space_id": "1"}, "exactly one of space_key and space_id"),
        ({"page_id": "1", "space_key": "A"}, "drop space_key/space_id"),
        ({"page_id": "1", "min_version": "two"}, "min_version must be a whole number"),
        ({"page_id": "1", "min_version": 0}, "min_version must be 1 or more"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_do(kwargs, message):
    with pytest.raises(ConfluenceConfigError, match=message):
        PageWait.build(**kwargs)


def test_bad_sensor_arguments_fail_at_dag_parse_time():
    from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor

    with pytest.raises(ConfluenceConfigError, match="either page_id, or title"):
        ConfluencePageSensor(task_id="s", title=None)
    with pytest.raises(ConfluenceConfigError, match="exactly one of space_key and space_id"):
        ConfluencePageSensor(task_id="s", title="T")


# -- the sensor in real DAG runs ---------------------------------------------------------------------------


def test_poke_mode_returns_the_page_and_keeps_its_link(fake_atlassian, confluence_conn, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook")
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_sensor_poke",
        """
        ConfluencePageSensor(task_id="wait", space_key="{{ 'DE' + 'MO' }}", title="Run{{ 'book' }}",
                             poke_interval=1, timeout=60)
        """,
    )
    assert str(run.state).endswith("success")
    url = f"{fake.site_url}/wiki{page['_links']['webui']}"
    assert xcom("apc_sensor_poke", run.run_id, "wait") == {
        "id": page["id"],
        "title": "Runbook",
        "space_id": page["spaceId"],
        "version": 1,
        "url": url,
    }
    assert xcom("apc_sensor_poke", run.run_id, "wait", key="confluence_page_url") == url


def test_reschedule_mode_frees_the_slot_and_pokes_again(fake_atlassian, confluence_conn, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook")
    fake.fail_next(404, times=1, route="GET /wiki/api/v2/pages/{id}")  # the first poke: not there yet
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_sensor_reschedule",
        f"""
        ConfluencePageSensor(task_id="wait", page_id="{page["id"]}", mode="reschedule", poke_interval=1,
                             timeout=60)
        """,
    )
    assert str(run.state).endswith("success")
    assert page_calls(fake) == 2
    assert xcom("apc_sensor_reschedule", run.run_id, "wait")["id"] == page["id"]
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        if airflow_major() >= 3:
            from airflow.models.taskinstance import TaskInstance

            ti = session.query(TaskInstance).filter_by(dag_id="apc_sensor_reschedule", run_id=run.run_id).one()
            reschedules = session.query(TaskReschedule).filter_by(ti_id=ti.id).count()
        else:
            reschedules = (
                session.query(TaskReschedule).filter_by(dag_id="apc_sensor_reschedule", run_id=run.run_id).count()
            )
    assert reschedules == 1


def test_deferrable_waits_in_the_trigger(fake_atlassian, confluence_conn, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook")
    # The task's own check and the trigger's first check miss; the trigger's second check finds the page.
    fake.fail_next(404, times=2, route="GET /wiki/api/v2/pages/{id}")
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_sensor_deferrable",
        f"""
        ConfluencePageSensor(task_id="wait", page_id="{{{{ '{page["id"]}' }}}}", deferrable=True,
                             poke_interval=0.1, timeout=60)
        """,
    )
    assert str(run.state).endswith("success")
    assert page_calls(fake) == 3
    url = f"{fake.site_url}/wiki{page['_links']['webui']}"
    assert xcom("apc_sensor_deferrable", run.run_id, "wait") == {
        "id": page["id"],
        "title": "Runbook",
        "space_id": page["spaceId"],
        "version": 1,
        "url": url,
    }
    assert xcom("apc_sensor_deferrable", run.run_id, "wait", key="confluence_page_url") == url


def test_a_missing_scope_fails_the_task_at_once(fake_atlassian, airflow_db, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    put_connection(
        "confluence_default", fake.connection("confluence_default", scopes="offline_access read:space:confluence")
    )
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_sensor_scope",
        """
        ConfluencePageSensor(task_id="wait", space_key="DEMO", title="Runbook", poke_interval=1, timeout=60)
        """,
    )
    assert str(run.state).endswith("failed")
    assert task_state("apc_sensor_scope", run.run_id, "wait").endswith("failed")
    # one look only: the 401 "scope does not match" was not taken for "not yet"
    assert fake.counters["api_calls_by_route"].get("GET /wiki/api/v2/pages", 0) == 1


def test_a_missing_space_fails_the_deferrable_task_at_once(fake_atlassian, confluence_conn, tmp_path, monkeypatch):
    fake = fake_atlassian
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_sensor_nospace",
        """
        ConfluencePageSensor(task_id="wait", space_key="NOPE", title="Runbook", deferrable=True, poke_interval=1,
                             timeout=60)
        """,
    )
    assert str(run.state).endswith("failed")
    assert fake.counters["api_calls_by_route"].get("GET /wiki/api/v2/spaces", 0) == 1
    assert fake.counters["api_calls_by_route"].get("GET /wiki/api/v2/pages", 0) == 0


# -- the trigger on its own ----------------------------------------------------------------------------------


def first_event(trigger: Any) -> Any:
    async def first() -> Any:
        async for event in trigger.run():
            return event
        return None

    return asyncio.run(asyncio.wait_for(first(), timeout=60))


def test_the_trigger_serializes_to_json_and_yields_a_json_event(fake_atlassian, confluence_conn):
    from airflow_provider_confluence.triggers.confluence import ConfluencePageTrigger

    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook", labels=["approved"])
    trigger = ConfluencePageTrigger(
        space_key="DEMO", title="Runbook", label="approved", min_version=1, poke_interval=0.05
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_confluence.triggers.confluence.ConfluencePageTrigger"
    assert (
        json.loads(json.dumps(kwargs))
        == kwargs
        == {
            "confluence_conn_id": "confluence_default",
            "page_id": None,
            "space_key": "DEMO",
            "space_id": None,
            "title": "Runbook",
            "min_version": 1,
            "label": "approved",
            "poke_interval": 0.05,
        }
    )
    assert ConfluencePageTrigger(**kwargs).serialize() == (classpath, kwargs)

    fake.fail_next(200, times=1, route="GET /wiki/api/v2/pages", body={"results": [], "_links": {}})
    event = first_event(trigger)
    assert (
        json.loads(json.dumps(event.payload))
        == event.payload
        == {
            "status": "found",
            "page": {
                "id": page["id"],
                "title": "Runbook",
                "space_id": page["spaceId"],
                "version": 1,
                "url": f"{fake.site_url}/wiki{page['_links']['webui']}",
            },
        }
    )
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/pages"] == 2  # not yet, then found


def test_the_trigger_reports_a_fatal_error_as_a_json_event(fake_atlassian, airflow_db):
    from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor
    from airflow_provider_confluence.triggers.confluence import ConfluencePageTrigger

    fake = fake_atlassian
    page = fake.add_page(fake.add_space("DEMO")["id"], "Runbook")
    put_connection(
        "confluence_default", fake.connection("confluence_default", scopes="offline_access read:space:confluence")
    )
    event = first_event(ConfluencePageTrigger(page_id=page["id"], poke_interval=0.05))
    assert json.loads(json.dumps(event.payload)) == event.payload
    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "ConfluenceScopeError"
    assert event.payload["kwargs"]["status_code"] == 401
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/pages/{id}"] == 1
    [answered] = [r for r in fake.requests if r["route"] == "GET /wiki/api/v2/pages/{id}"]
    assert event.payload["kwargs"]["trace_id"] == answered["trace_id"]

    sensor = ConfluencePageSensor(task_id="wait", page_id=page["id"], deferrable=True)
    with pytest.raises(ConfluenceScopeError) as failure:
        sensor.execute_complete(context={}, event=event.payload)
    assert failure.value.status_code == 401 and failure.value.detail == event.payload["kwargs"]["message"]
    assert str(failure.value) == event.payload["message"] and failure.value.trace_id == answered["trace_id"]


class FailingHook:
    """A hook whose first step (getting a token) fails as given: what the check does with each failure."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_conn(self):
        raise self.error


@pytest.mark.parametrize(
    ("error", "waits"),
    [
        (ConfluenceAuthError("The token endpoint timed out.", transient=True), True),
        (ConfluenceBrokerError("No broker answered.", url="http://api:8080/x", reason="unreachable"), True),
        (ConfluenceBrokerError("The broker failed.", url="http://api:8080/x", reason="error", status_code=502), True),
        (ConfluenceAuthError("The client credentials were refused.", error="invalid_client"), False),
        (
            ConfluenceBrokerError(
                "Bad signature.", url="http://api:8080/x", reason="invalid_signature", status_code=401
            ),
            False,
        ),
        (ConfluenceReauthorizationRequired("Authorize again.", conn_id="confluence_default"), False),
    ],
)
def test_a_passing_token_failure_means_not_yet_and_a_lasting_one_fails(error, waits):
    wait = PageWait.build(page_id="42")
    if waits:
        summary, reason = wait.check(FailingHook(error))
        assert summary is None and "trying again later" in reason
    else:
        with pytest.raises(type(error)):
            wait.check(FailingHook(error))


def test_error_events_keep_the_connection_and_the_auth_facts():
    dead = ConfluenceError.from_event(ConfluenceReauthorizationRequired("Authorize again.", conn_id="wiki").to_event())
    assert type(dead) is ConfluenceReauthorizationRequired and dead.conn_id == "wiki"
    flaky = ConfluenceError.from_event(
        ConfluenceAuthError("Timed out.", error="temporarily_unavailable", transient=True).to_event()
    )
    assert type(flaky) is ConfluenceAuthError and flaky.transient and flaky.error == "temporarily_unavailable"
    broker = ConfluenceError.from_event(ConfluenceBrokerError("x", url="u", reason="stale_timestamp").to_event())
    assert broker.reason == "stale_timestamp"


def test_error_events_rebuild_the_error_class():
    original = ConfluenceNotFound(
        404,
        "GET",
        "https://gw/wiki/api/v2/spaces",
        "NOT_FOUND",
        "Space 'X' is missing.",
        headers={"Atl-Traceid": "abc123"},
    )
    event = original.to_event()
    assert event == {
        "error_type": "ConfluenceNotFound",
        "message": str(original),
        "kwargs": {
            "status_code": 404,
            "method": "GET",
            "url": "https://gw/wiki/api/v2/spaces",
            "code": "NOT_FOUND",
            "message": "Space 'X' is missing.",
            "trace_id": "abc123",
            "headers": {"Atl-Traceid": "abc123"},
        },
    }
    rebuilt = ConfluenceError.from_event(event)
    assert type(rebuilt) is ConfluenceNotFound and str(rebuilt) == str(original) and rebuilt.trace_id == "abc123"
    config = ConfluenceError.from_event(ConfluenceConfigError("Give a title.").to_event())
    assert type(config) is ConfluenceConfigError and config.message == "Give a title."
    unknown = ConfluenceError.from_event({"status": "error", "error_type": "KeyError", "message": "boom"})
    assert type(unknown).__name__ == "ConfluenceError" and unknown.message == "KeyError: boom"
