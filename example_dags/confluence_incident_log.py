"""Write every failure of a task to an incident-log page in Confluence, with ``ConfluenceNotifier``.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) and a space whose key is
the ``space_key`` param. The first task makes sure the log page exists; the notifier, as the ``load`` task's
``on_failure_callback``, appends one entry per failed try. Trigger with ``{"fail": true}`` to see one.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.notifications.confluence import ConfluenceNotifier
from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_incident_log",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO", "fail": False},
    tags=["confluence", "example"],
) as dag:
    ensure_page = ConfluenceCreatePageOperator(
        task_id="ensure_incident_log",
        space_key="{{ params.space_key }}",
        title="Incident log",
        body="# Incident log\n\nOne entry per failed try of a task.\n",
        representation="markdown",
        if_exists="skip",
    )

    @task(
        retries=0,
        on_failure_callback=ConfluenceNotifier(
            space_key="{{ params.space_key }}",
            title="Incident log",
            message="- `{{ ti.dag_id }}.{{ ti.task_id }}` failed in run `{{ run_id }}` (try {{ ti.try_number }}): "
            "{{ exception }}\n",
        ),
    )
    def load(**context) -> int:
        if context["params"]["fail"]:
            raise RuntimeError("the warehouse refused the load")
        return 42

    ensure_page >> load()
