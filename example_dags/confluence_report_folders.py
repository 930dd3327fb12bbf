"""Keep monthly reports in folders: ``Reports/<year>/Report <year>-<month>``, where Reports and the year are v2 folders.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) whose grant has the
``write:folder:confluence`` and ``read:hierarchical-content:confluence`` scopes besides the defaults, and a space
whose key is the ``space_key`` param. Each run makes sure the two folders exist (a re-run finds them and creates
nothing), publishes the month's page into the year's folder (updating it on a re-run), then finds the page by its
path of titles and lists what the Reports folder holds, two levels down.
"""

from __future__ import annotations

import pendulum

from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreateFolderOperator,
    ConfluenceCreatePageOperator,
    ConfluenceFindPageByPathOperator,
    ConfluenceListChildrenOperator,
)

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG(
    dag_id="confluence_report_folders",
    schedule="@monthly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO"},
    tags=["confluence", "example"],
) as dag:
    # On the space's top level (its homepage's children); created only when missing.
    reports = ConfluenceCreateFolderOperator(task_id="reports", title="Reports", space_key="{{ params.space_key }}")
    reports_id = "{{ ti.xcom_pull(task_ids='reports')['id'] }}"

    year = ConfluenceCreateFolderOperator(
        task_id="year",
        title="{{ ds[:4] }}",
        space_key="{{ params.space_key }}",
        parent_id=reports_id,
        parent_type="folder",  # saves trying the id as a page first
    )

    month = ConfluenceCreatePageOperator(
        task_id="month",
        space_key="{{ params.space_key }}",
        title="Report {{ ds[:7] }}",
        body="# Report {{ ds[:7] }}\n\nThe month's numbers go here.",
        representation="markdown",
        parent_id="{{ ti.xcom_pull(task_ids='year')['id'] }}",  # a folder is a parent like a page
        if_exists="update",
    )

    find = ConfluenceFindPageByPathOperator(
        task_id="find",
        space_key="{{ params.space_key }}",
        path="Reports/{{ ds[:4] }}/Report {{ ds[:7] }}",
    )

    tree = ConfluenceListChildrenOperator(task_id="tree", folder_id=reports_id, depth=2)

    reports >> year >> month >> find >> tree
