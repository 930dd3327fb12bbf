"""A DAG run through Airflow while the app's hourly points quota is spent: the task instances that hit it are
``deferred`` in the metadata database (a trigger row, no worker slot) while the quota is exhausted, then resume, and
the run ends with 0 failed tasks, 0 duplicate pages, one attachment version and one comment.

``dag.test()`` runs the tasks as it does when a triggerer is running (``helpers.triggerer.InlineTriggerer``): a task
that defers ends its run ``deferred``; the triggerer's part is played in the test process, and resumes it through
``Trigger.submit_event``. The emulator's quota windows start at the top of the hour; its clock is put at half past,
so the first refusal asks for 30 minutes (``Retry-After: 1800``), which pass at once on the emulator's clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_confluence.operators.confluence import (
    ConfluenceAddCommentOperator,
    ConfluenceCreatePageOperator,
    ConfluenceSearchOperator,
    ConfluenceUploadAttachmentOperator,
)
from helpers.dags import new_dag, run_dag
from helpers.quota import calls
from helpers.triggerer import InlineTriggerer

pytestmark = pytest.mark.airflow2


def test_tasks_wait_out_a_spent_quota_deferred_then_finish_with_no_failure_and_no_duplicate(
    fake_atlassian, wide_conn, emulator_time, monkeypatch
):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    fake_atlassian.add_space("DEMO")
    now = fake_atlassian.now()
    fake_atlassian.advance((1800 - now % 3600) % 3600)  # half past the hour: the window resets in 30 minutes
    fake_atlassian.enable_quota(20)
    titles = [f"Daily {index}" for index in range(3)]
    with new_dag("quota_deferred") as dag:
        creates = [
            ConfluenceCreatePageOperator(
                task_id=f"create_{index}", space_key="DEMO", title=title, body=f"<p>{title}</p>", deferrable=True
            )
            for index, title in enumerate(titles)
        ]
        upload = ConfluenceUploadAttachmentOperator(
            task_id="upload", space_key="DEMO", title=titles[0], data="a,b\n", filename="daily.csv", deferrable=True
        )
        comment = ConfluenceAddCommentOperator(
            task_id="comment", space_key="DEMO", title=titles[0], body="<p>published</p>", deferrable=True
        )
        search = ConfluenceSearchOperator(
            task_id="search", cql="space = DEMO AND type = page ORDER BY title", limit=2, deferrable=True
        )
        creates[0] >> creates[1] >> creates[2] >> upload >> comment >> search

    def quota_now(_ti: Any) -> dict[str, Any]:
        usage = fake_atlassian.quota_usage()
        return {"points_left": usage.remaining, "resets_in": usage.resets_at - fake_atlassian.now()}

    triggerer = InlineTriggerer(dag.dag_id, observe=quota_now).install(monkeypatch)
    stored = run_dag(dag)  # asserts the run succeeded

    assert fake_atlassian.counters["quota_rejections"] >= 1 and triggerer.observed  # the quota ran out mid-run
    for seen in triggerer.observed:
        assert seen["state"] == "deferred", seen  # in the metadata database, while the quota was spent
        assert seen["classpath"].endswith("ConfluenceRateLimitTrigger")
        assert seen["points_left"] == 0 and seen["resets_in"] > 0, seen
        assert "running" not in seen["others"].values(), seen  # nothing held a worker meanwhile
    assert 1700 <= triggerer.observed[0]["resets_in"] <= 1800  # the first wait: the 30 minutes left of the window
    assert sum(emulator_time.slept) >= triggerer.observed[0]["resets_in"]  # waited out, on the emulator's clock
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id)}
    assert len(states) == 6 and all(state.endswith("success") for state in states.values()), states  # 0 failed
    pages = [p for p in fake_atlassian.pages if p["title"] in titles and p.get("status") == "current"]
    assert sorted(p["title"] for p in pages) == titles  # 0 duplicate pages
    assert calls(fake_atlassian, "POST /wiki/api/v2/pages") - fake_atlassian.counters["quota_rejections"] <= 3
    first = next(p for p in pages if p["title"] == titles[0])
    assert [(a["title"], a["version"]["number"]) for a in fake_atlassian.attachments(first["id"])] == [("daily.csv", 1)]
    assert len(fake_atlassian.footer_comments(first["id"])) == 1
    found = [r["title"] for r in stored["return_value"]["search"]]
    assert len(found) == len(set(found)) and set(titles) <= set(found)
