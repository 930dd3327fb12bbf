"""Keep a report parent tidy: find it by its path of titles, preview the clean-up, then trash old reports.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) whose grant has the
``delete:page:confluence`` scope besides the defaults, and a space whose key is the ``space_key`` param holding
the page tree named by ``reports_path``. The daily reports under that page are kept for ``keep_days`` days, and
the ``keep_latest`` newest are kept whatever their age; the rest go to the trash (not purged: they can be
restored from the space's trash).
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import (
    ConfluenceApplyRetentionOperator,
    ConfluenceFindPageByPathOperator,
    ConfluenceListChildrenOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG(
    dag_id="confluence_retention",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO", "reports_path": "Reports/Daily"},
    tags=["confluence", "example"],
) as dag:
    find_parent = ConfluenceFindPageByPathOperator(
        task_id="find_parent",
        space_key="{{ params.space_key }}",
        path="{{ params.reports_path }}",
    )
    parent_id = "{{ ti.xcom_pull(task_ids='find_parent')['id'] }}"

    # What would go: read-only, it sends no write (the result lists "kept" and "removed").
    preview = ConfluenceApplyRetentionOperator(
        task_id="preview",
        parent_id=parent_id,
        keep_latest=7,
        keep_days=30,
        dry_run=True,
    )

    apply = ConfluenceApplyRetentionOperator(
        task_id="apply",
        parent_id=parent_id,
        keep_latest=7,
        keep_days=30,
    )

    remaining = ConfluenceListChildrenOperator(task_id="remaining", page_id=parent_id)

    find_parent >> preview >> apply >> remaining
