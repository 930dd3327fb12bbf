"""Keep a running log page in Confluence: one line per DAG run, appended to the same page.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) and a space whose key is
the ``space_key`` param. The first run creates the page; every run appends its line. A retry of a run appends
nothing twice: the appended part carries an invisible anchor naming the run.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceUpdatePageOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG(
    dag_id="confluence_run_log",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO"},
    tags=["confluence", "example"],
) as dag:
    ensure_page = ConfluenceCreatePageOperator(
        task_id="ensure_log_page",
        space_key="{{ params.space_key }}",
        title="Pipeline run log",
        body="# Pipeline run log\n\nOne line per run of `{{ dag.dag_id }}`.\n",
        representation="markdown",
        if_exists="skip",  # created once, then left as it is
    )

    append_line = ConfluenceUpdatePageOperator(
        task_id="append_run_line",
        page_id="{{ ti.xcom_pull(task_ids='ensure_log_page')['id'] }}",
        body="- `{{ run_id }}`: finished at {{ macros.datetime.utcnow().isoformat(timespec='seconds') }} UTC\n",
        representation="markdown",
        mode="append",
        version_message="run {{ run_id }}",
    )

    ensure_page >> append_line
