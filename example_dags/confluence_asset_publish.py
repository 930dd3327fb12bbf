"""Publish a status page; when (and only when) its content changed, the page's asset gets an event.

The create operator lists the asset alias ``pipeline_status_page`` among its outlets and adds the page's asset,
``confluence://<site host>/pages/<id>``, to it only when it created the page or wrote a new version: a re-run
with the same body emits no event, so ``confluence_asset_consumer`` does not run again for nothing.
Needs a ``confluence_default`` connection and a space whose key is the ``space_key`` param.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG(
    dag_id="confluence_asset_publish",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO"},
    tags=["confluence", "example", "assets"],
) as dag:
    ConfluenceCreatePageOperator(
        task_id="publish_status",
        space_key="{{ params.space_key }}",
        title="Pipeline status",
        body="<p>Last successful load: {{ ds }}</p>",
        if_exists="update",
        asset_alias="pipeline_status_page",  # the default alias is "confluence_pages"
    )
