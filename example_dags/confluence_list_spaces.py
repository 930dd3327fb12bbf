"""List every current Confluence space and hand the list to a downstream task.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README).
"""

from __future__ import annotations

from collections import Counter

import pendulum

from airflow_provider_confluence.operators.confluence import ConfluenceGetSpacesOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_list_spaces",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["confluence", "example"],
) as dag:
    list_spaces = ConfluenceGetSpacesOperator(task_id="list_spaces", status="current")

    @task
    def summarize(spaces: list[dict]) -> dict[str, int]:
        """Count the spaces by type; a real DAG would load them into a warehouse table."""
        by_type = Counter(space["type"] for space in spaces)
        print(f"{len(spaces)} spaces: {dict(by_type)}")
        return {"total": len(spaces), **by_type}

    summarize(list_spaces.output)
