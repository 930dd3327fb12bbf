"""Run whenever ``confluence_asset_publish`` changed the status page (and not when its re-run changed nothing).

Scheduled on the asset alias the publishing task emits through, which suits a page whose id is known only after
it is first created. For a page whose id you know, schedule on the page itself instead:
``schedule=[confluence_page_asset("https://your-site.atlassian.net", "123456")]``.
"""

from __future__ import annotations

from typing import Any

import pendulum

from airflow_provider_confluence.assets.confluence import confluence_pages_alias

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_asset_consumer",
    schedule=[confluence_pages_alias("pipeline_status_page")],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["confluence", "example", "assets"],
) as dag:

    @task
    def changed_pages(**context: Any) -> list[dict[str, Any]]:
        """The pages whose change triggered this run: id, title, version, url and action of each event."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        return [dict(event.extra) for page_events in events.values() for event in page_events]

    changed_pages()
