"""Mirror a directory of Markdown files (here ``example_dags/mirror_docs``) to a page tree, like mark or md2conf.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) and, in the space whose
key is the ``space_key`` param, a page titled as the ``parent_title`` param: the directory's files and
subdirectories go under it. The first task previews the run (it sends no write); the second creates the missing
pages, writes a new version of the pages whose file changed and leaves the others alone. Pages under the parent
that the directory does not have are left alone too (``delete_missing=True`` would trash them). When Atlassian's
hourly points quota runs out midway, the mirror waits in the triggerer (``deferrable=True``) and then writes only
the pages it had not done yet.
"""

from __future__ import annotations

from pathlib import Path

import pendulum

from airflow_provider_confluence.operators.confluence import ConfluenceMirrorDirectoryOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

#: The Markdown to mirror: shipped next to this file, so that every worker has the same copy.
DOCS = Path(__file__).parent / "mirror_docs"

with DAG(
    dag_id="confluence_mirror_docs",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO", "parent_title": "Handbook"},
    tags=["confluence", "example"],
) as dag:
    # What a run would do, path by path (create, update or unchanged); read-only.
    preview = ConfluenceMirrorDirectoryOperator(
        task_id="preview",
        directory=str(DOCS),
        space_key="{{ params.space_key }}",
        parent_title="{{ params.parent_title }}",
        dry_run=True,
    )

    mirror = ConfluenceMirrorDirectoryOperator(
        task_id="mirror",
        directory=str(DOCS),
        space_key="{{ params.space_key }}",
        parent_title="{{ params.parent_title }}",
        labels=["handbook"],
        deferrable=True,  # out of points midway: wait for the quota's reset without holding a worker slot
    )

    preview >> mirror
