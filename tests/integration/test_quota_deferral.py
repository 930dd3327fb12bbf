"""Waiting out Atlassian's hourly points quota without holding a worker: operators defer and resume where they
stopped, the sensor reschedules or sleeps until the quota resets. Against the emulator's quota
(``fake.enable_quota``), on its clock: the triggers' clock and sleep are moved onto it, so an hour passes at once.

Operators are driven as Airflow drives them (``execute`` raises ``TaskDeferred``; the trigger runs; the resume
method gets the trigger's event and the deferral's keyword arguments), and the whole DAG through ``dag.test()``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytest

from airflow_provider_confluence.assets.uri import page_asset_uri
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceGetSpacesOperator,
    ConfluenceSearchOperator,
    ConfluenceUpdatePageOperator,
)
from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor
from airflow_provider_confluence.triggers.confluence import ConfluencePageTrigger
from helpers.assets import events_of
from helpers.dags import new_dag, run_dag
from helpers.quota import calls, first_event, run_deferrable, spend

pytestmark = pytest.mark.airflow2

CREATE = "POST /wiki/api/v2/pages"
SEARCH = "GET /wiki/rest/api/search"


def titled(fake: Any, title: str) -> list[dict[str, Any]]:
    return [p for p in fake.pages if p["title"] == title and p.get("status") == "current"]


# -- operators: defer, resume where they stopped ---------------------------------------------------------


def test_a_create_the_quota_refused_is_sent_again_after_the_wait(fake_atlassian, confluence_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    # 3 points left: the space lookup (2 points) and the title lookup (1) spend them, the create is refused
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(confluence_conn, 7)
    op = ConfluenceCreatePageOperator(task_id="c", space_key="DEMO", title="Quota", body="<p>q</p>", deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1 and deferrals[0]["method"] == "resume_after_rate_limit"
    assert deferrals[0]["kwargs"] == {"resume": {}}  # nothing was done yet
    assert fake_atlassian.counters["quota_rejections"] == 1
    assert 3500 <= sum(emulator_time.slept) <= 3601  # waited out the window on the emulator's clock
    assert result["action"] == "created" and result["changed"] is True
    assert len(titled(fake_atlassian, "Quota")) == 1


def test_an_accepted_create_is_never_sent_twice(fake_atlassian, confluence_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    # 4 points left: 2 + 1 + the create (1) spend them: the labels are refused after the page exists
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(confluence_conn, 6)
    op = ConfluenceCreatePageOperator(
        task_id="c", space_key="DEMO", title="Once", body="<p>o</p>", labels=["a", "b"], deferrable=True
    )  # if_exists="fail": resuming must not trip over the page it created itself
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1
    resume = deferrals[0]["kwargs"]["resume"]
    assert resume == {"page_id": result["id"], "action": "created"}
    assert (result["action"], result["changed"]) == ("created", True)
    pages = titled(fake_atlassian, "Once")
    assert len(pages) == 1 and calls(fake_atlassian, CREATE) == 1
    assert sorted(fake_atlassian.page_labels(pages[0]["id"])) == ["a", "b"]


def test_an_update_resumes_without_writing_a_second_version(fake_atlassian, confluence_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Log", body="<p>start</p>")
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(confluence_conn, 8)  # 2 left: GET page (2) spends them; the PUT is refused
    op = ConfluenceUpdatePageOperator(
        task_id="u", page_id=page["id"], body="<p>more</p>", mode="append", deferrable=True
    )
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1
    stored = next(p for p in fake_atlassian.pages if p["id"] == page["id"])
    assert stored["version"]["number"] == 2 and stored["body"]["storage"]["value"].count("<p>more</p>") == 1
    assert (result["action"], result["version"]) == ("updated", 2)


def test_a_search_continues_from_its_cursor_not_from_the_start(fake_atlassian, confluence_conn, emulator_time):
    fake_atlassian.add_space("BIG", homepage=False)
    for index in range(7):
        fake_atlassian.add_page("BIG", f"Page {index}")
    cql = "space = BIG AND type = page ORDER BY title"
    expected = ConfluenceSearchOperator(task_id="s", cql=cql, limit=2).execute({})
    before = calls(fake_atlassian, SEARCH)
    fake_atlassian.enable_quota(12, align_to_hour=False)
    spend(confluence_conn, 6)  # two pages of 2 results (3 points each), then refused
    op = ConfluenceSearchOperator(task_id="s", cql=cql, limit=2, deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert result == expected and len({r["id"] for r in result}) == 7
    resume = deferrals[0]["kwargs"]["resume"]
    assert [r["id"] for r in resume["results"]] == [r["id"] for r in expected[:4]]
    assert "cursor" in resume and resume["cursor"].startswith(fake_atlassian.api_url)
    # 4 pages of results, plus the one refused: none fetched twice
    assert calls(fake_atlassian, SEARCH) - before == math.ceil(7 / 2) + 1


def test_get_spaces_continues_from_its_cursor(fake_atlassian, confluence_conn, emulator_time):
    fake_atlassian.add_spaces(600, prefix="Q")  # 250 per request: 3 requests
    # 300 points: the first page (251 points) passes, and so does the second (a call that is let through is
    # charged in full, even past zero); the third is refused
    fake_atlassian.enable_quota(300, align_to_hour=False)
    result, deferrals = run_deferrable(ConfluenceGetSpacesOperator(task_id="g", deferrable=True), emulator_time)
    assert len(deferrals) == 1 and len(deferrals[0]["kwargs"]["resume"]["results"]) == 500
    keys = [s["key"] for s in result]
    assert len(keys) == len(set(keys)) == len([s for s in fake_atlassian.spaces if s["key"].startswith("Q")])


def test_without_deferrable_the_try_fails_as_before(fake_atlassian, confluence_conn):
    from airflow_provider_confluence.exceptions import ConfluenceRateLimited

    fake_atlassian.add_space("DEMO")
    fake_atlassian.enable_quota(3, align_to_hour=False)
    op = ConfluenceCreatePageOperator(task_id="c", space_key="DEMO", title="No", body="<p>n</p>", deferrable=False)
    with pytest.raises(ConfluenceRateLimited) as info:
        op.execute({})
    assert info.value.retry_at is not None and info.value.reason == "confluence-quota-tenant-based"
    assert titled(fake_atlassian, "No") == []


def test_deferrable_defaults_to_the_airflow_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert ConfluenceSearchOperator(task_id="s", cql="type = page").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert ConfluenceCreatePageOperator(task_id="c", space_key="D", title="t", body="b").deferrable is False


# -- the sensor ----------------------------------------------------------------------------------------------


def test_in_reschedule_mode_the_sensor_reschedules_to_the_quota_reset(fake_atlassian, confluence_conn):
    from airflow.exceptions import AirflowRescheduleException

    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Ready")
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(confluence_conn, 10)
    sensor = ConfluencePageSensor(task_id="s", page_id=page["id"], mode="reschedule", poke_interval=30)
    before = time.time()
    with pytest.raises(AirflowRescheduleException) as info:
        sensor.poke({})
    reschedule = info.value.reschedule_date.timestamp()  # type: ignore[attr-defined]
    assert before + 3500 <= reschedule <= time.time() + 3601  # the window's end, not poke_interval


def test_in_poke_mode_an_exhausted_quota_is_still_not_yet(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Ready")
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(confluence_conn, 10)
    sensor = ConfluencePageSensor(task_id="s", page_id=page["id"], poke_interval=30)
    assert sensor.poke({}).is_done is False


def test_the_sensors_trigger_sleeps_until_the_quota_resets_instead_of_failing(
    fake_atlassian, confluence_conn, emulator_time
):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Ready")
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(confluence_conn, 10)
    trigger = ConfluencePageTrigger(confluence_conn_id=confluence_conn, page_id=page["id"], poke_interval=5)
    event = first_event(trigger)
    assert event["status"] == "found" and event["page"]["id"] == page["id"]
    assert len(emulator_time.slept) == 1 and 3500 <= emulator_time.slept[0] <= 3601  # one sleep, until the reset


# -- a DAG run through Airflow -------------------------------------------------------------------------------


def test_a_dag_run_waits_out_a_30_minute_quota_deferred_with_no_failure_and_no_duplicate(
    fake_atlassian, confluence_conn, emulator_time, caplog
):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    fake_atlassian.add_space("DEMO")
    for index in range(3):
        fake_atlassian.add_page("DEMO", f"Old {index}")
    # put the emulator's clock at half past an hour: the hourly window then resets in 30 minutes
    now = fake_atlassian.now()
    fake_atlassian.advance((1800 - now % 3600) % 3600)
    fake_atlassian.enable_quota(20)  # aligned to the hour, as Atlassian's windows are
    titles = [f"Daily {index}" for index in range(3)]
    with new_dag("quota") as dag:
        creates = [
            ConfluenceCreatePageOperator(
                task_id=f"create_{index}",
                space_key="DEMO",
                title=title,
                body=f"<p>{title}</p>",
                labels=["daily"],
                deferrable=True,
            )
            for index, title in enumerate(titles)
        ]
        search = ConfluenceSearchOperator(
            task_id="search", cql="space = DEMO AND type = page ORDER BY title", limit=2, deferrable=True
        )
        for create in creates:
            create >> search
    with caplog.at_level(logging.INFO):
        stored = run_dag(dag)  # asserts the run succeeded
    assert fake_atlassian.counters["quota_rejections"] >= 1  # the quota ran out mid-run
    assert emulator_time.slept and 1700 <= sum(emulator_time.slept) <= 1801  # ~30 minutes, on the emulator's clock
    # dag.test() runs a trigger in line only for a task that deferred (on Airflow 3: whose state is DEFERRED)
    assert any("[DAG TEST] running trigger in line" in r.getMessage() for r in caplog.records)
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id)}
    assert len(states) == 4 and all(state.endswith("success") for state in states.values()), states  # 0 failed
    for title in titles:
        assert len(titled(fake_atlassian, title)) == 1  # 0 duplicate pages
        (page,) = titled(fake_atlassian, title)  # one asset event per created page, resumed tries included
        assert [e["action"] for e in events_of(page_asset_uri(fake_atlassian.site_url, page["id"]), dag)] == ["created"]
    assert calls(fake_atlassian, CREATE) == 3
    found = [r["title"] for r in stored["return_value"]["search"]]
    assert len(found) == len(set(found)) and set(titles) <= set(found)  # the listing resumed, nothing twice
