"""Wait for a page that people write by hand, then for their sign-off on it, then go on with the page.

Two ways to wait without holding a worker slot:

* ``wait_for_checklist`` runs in ``reschedule`` mode: it checks, frees its slot, and is scheduled again after
  ``poke_interval``;
* ``wait_for_approval`` is deferrable: it hands the wait to the triggerer (run ``airflow triggerer``), which
  checks every ``poke_interval`` seconds in a thread and resumes the task when the page carries the label.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) and a space whose key is
the ``space_key`` param. A missing page means "not yet"; a missing space or a refused token fails at once.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_wait_for_page",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO", "title": "Release checklist", "label": "approved"},
    tags=["confluence", "example"],
) as dag:
    wait_for_checklist = ConfluencePageSensor(
        task_id="wait_for_checklist",
        space_key="{{ params.space_key }}",
        title="{{ params.title }}",
        mode="reschedule",
        poke_interval=300,
        timeout=6 * 3600,
    )

    wait_for_approval = ConfluencePageSensor(
        task_id="wait_for_approval",
        page_id="{{ ti.xcom_pull(task_ids='wait_for_checklist')['id'] }}",
        label="{{ params.label }}",
        deferrable=True,
        poke_interval=120,
        timeout=24 * 3600,
    )

    @task
    def announce(page: dict) -> str:
        """Stand-in for the release step that waited for the sign-off."""
        message = f"{page['title']} approved at version {page['version']}: {page['url']}"
        print(message)
        return message

    wait_for_checklist >> wait_for_approval
    announce(wait_for_approval.output)
