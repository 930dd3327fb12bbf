"""Find this space's daily report pages with CQL and keep an index page of them up to date.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) whose grant has the
``search:confluence`` scope, and a space whose key is the ``space_key`` param. The index is rewritten only when
the list of reports changed.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceSearchOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_search_pages",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO", "label": "daily-report"},
    tags=["confluence", "example"],
) as dag:
    find_reports = ConfluenceSearchOperator(
        task_id="find_reports",
        cql='type = page AND space = "{{ params.space_key }}" AND label = "{{ params.label }}" ORDER BY title desc',
        max_results=100,
    )

    @task
    def index_markdown(results: list[dict]) -> str:
        """A Markdown list of links to the reports found. Markdown's own characters in a title are escaped, so
        that a title like ``Q3 [draft] *final*`` shows as written (the HTML escaping happens on conversion)."""
        import re

        def text(title: str) -> str:
            return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>])", r"\\\1", title)

        linked = [result for result in results if result.get("url")]
        lines = [f"# Daily reports ({len(linked)})", ""]
        lines += [f"- [{text(result['title'] or '')}]({result['url']})" for result in linked]
        return "\n".join(lines) + "\n"

    ConfluenceCreatePageOperator(
        task_id="publish_index",
        space_key="{{ params.space_key }}",
        title="Daily report index",
        body=index_markdown(find_reports.output),
        representation="markdown",
        if_exists="update",
    )
