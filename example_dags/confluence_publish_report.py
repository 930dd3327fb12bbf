"""Publish a daily report page to Confluence, updated in place when the DAG runs again.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) and a space whose key
is the ``space_key`` param. A re-run writes a new version only when the body changed.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_publish_report",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO"},
    tags=["confluence", "example"],
) as dag:

    @task
    def collect_metrics() -> dict[str, int]:
        """Stand-in for the real pipeline step whose results the page reports."""
        return {"rows_loaded": 1234, "tables": 7, "failed_checks": 0}

    metrics = collect_metrics()

    publish = ConfluenceCreatePageOperator(
        task_id="publish_report",
        space_key="{{ params.space_key }}",
        title="Pipeline report {{ ds }}",
        body=(
            "<h1>Pipeline report for {{ ds }}</h1>"
            "<table><tbody>"
            "<tr><th>Rows loaded</th><td>{{ ti.xcom_pull(task_ids='collect_metrics')['rows_loaded'] }}</td></tr>"
            "<tr><th>Tables</th><td>{{ ti.xcom_pull(task_ids='collect_metrics')['tables'] }}</td></tr>"
            "<tr><th>Failed checks</th><td>{{ ti.xcom_pull(task_ids='collect_metrics')['failed_checks'] }}</td></tr>"
            "</tbody></table>"
        ),
        if_exists="update",
    )

    metrics >> publish
