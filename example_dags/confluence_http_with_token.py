"""Call a Confluence endpoint that the provider's operators do not wrap, with the HTTP provider.

``{{ macros.confluence.access_token('confluence_default') }}`` renders a valid access token of the
``confluence_oauth`` connection (refreshed and saved when due, masked as ``***`` in logs and in the rendered
fields). Here ``HttpOperator`` lists the ten most recently modified pages of a space.

Needs two connections:

* ``confluence_default``, type ``confluence_oauth`` (see the README);
* ``confluence_gateway``, type ``http``, host ``https://api.atlassian.com/ex/confluence/<cloud id>`` (the
  gateway: OAuth tokens are refused on ``https://<site>.atlassian.net``). The cloud id is in the extra of
  ``confluence_default`` after its first use, and in ``airflow-confluence status``.

The ``space_id`` param is the space's numeric id (``ConfluenceGetSpacesOperator`` returns it).
"""

from __future__ import annotations

import json

import pendulum
from airflow.providers.http.operators.http import HttpOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="confluence_http_with_token",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_id": "1"},
    tags=["confluence", "example"],
) as dag:
    recent_pages = HttpOperator(
        task_id="recent_pages",
        http_conn_id="confluence_gateway",
        method="GET",
        endpoint="/wiki/api/v2/spaces/{{ params.space_id }}/pages",
        data={"sort": "-modified-date", "limit": "10"},
        headers={
            "Authorization": "Bearer {{ macros.confluence.access_token('confluence_default') }}",
            "Accept": "application/json",
        },
        response_check=lambda response: response.status_code == 200,
        response_filter=lambda response: [
            {"id": page["id"], "title": page["title"]} for page in json.loads(response.text)["results"]
        ],
        log_response=False,
    )

    @task
    def show(pages: list[dict]) -> int:
        """Stand-in for whatever the DAG does with the answer."""
        for page in pages:
            print(f"{page['id']}: {page['title']}")
        return len(pages)

    show(recent_pages.output)
