"""Publish a daily metrics table to Confluence, attach the same figures as a CSV file, then read the page back.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) whose grant has the
scopes for labels and attachments (``read:label:confluence write:label:confluence
read:content-details:confluence write:attachment:confluence``), and a space whose key is the ``space_key``
param. A re-run of the same day writes no new page version, adds no label twice, and uploads the CSV as a new
version of the same attachment.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceGetPageOperator,
    ConfluenceUploadAttachmentOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

PAGE_ID = "{{ ti.xcom_pull(task_ids='publish_report')['id'] }}"

with DAG(
    dag_id="confluence_daily_report",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO"},
    tags=["confluence", "example"],
) as dag:

    @task
    def collect_metrics() -> list[dict]:
        """Stand-in for the real pipeline step: one row per table loaded."""
        return [
            {"table": "orders", "rows_loaded": 1234, "failed_checks": 0},
            {"table": "customers", "rows_loaded": 56, "failed_checks": 1},
            {"table": "refunds & returns", "rows_loaded": 7, "failed_checks": 0},
        ]

    metrics = collect_metrics()

    publish = ConfluenceCreatePageOperator(
        task_id="publish_report",
        space_key="{{ params.space_key }}",
        title="Daily metrics {{ ds }}",
        body=metrics,  # a list of dicts from XCom, rendered as a table (values are escaped)
        representation="table",
        labels=["daily-report", "metrics"],
        if_exists="update",  # a re-run writes a new version only when the figures changed
    )

    @task
    def metrics_csv(rows: list[dict]) -> str:
        """The same figures as CSV text (XCom carries text, not bytes)."""
        import csv
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    attach = ConfluenceUploadAttachmentOperator(
        task_id="attach_csv",
        page_id=PAGE_ID,
        data=metrics_csv(metrics),
        filename="metrics-{{ ds }}.csv",
        media_type="text/csv",
        comment="Figures of {{ ds }}",
    )

    read_back = ConfluenceGetPageOperator(task_id="read_back", page_id=PAGE_ID)

    @task
    def check(page: dict) -> dict:
        """Fail the run when the published page lost its label; a real DAG might post page['url'] to chat."""
        if "daily-report" not in page["labels"]:
            raise ValueError(f"page {page['id']} has no daily-report label: {page['labels']}")
        return {"url": page["url"], "version": page["version"], "labels": page["labels"]}

    publish >> attach >> read_back
    check(read_back.output)
