"""The example DAGs load without errors and run end to end against the emulator with ``dag.test()``."""

from __future__ import annotations

import pytest

from conftest import EXAMPLE_DAGS, read_connection_extra

pytestmark = pytest.mark.airflow2


def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+

        return DagBag(dag_folder=str(EXAMPLE_DAGS))
    except ImportError:
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=str(EXAMPLE_DAGS), include_examples=False)


def test_example_dags_load_without_import_errors(airflow_db):
    bag = dagbag()
    assert bag.import_errors == {}
    assert {"confluence_publish_report", "confluence_list_spaces"} <= set(bag.dag_ids)


def test_publish_report_runs_and_updates_in_place(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    planted = fake_atlassian.latest_refresh_token
    dag = dagbag().get_dag("confluence_publish_report")
    run = dag.test()
    assert str(run.state).endswith("success")
    pages = [p for p in fake_atlassian.pages if p["title"].startswith("Pipeline report ")]
    assert len(pages) == 1
    stored = read_connection_extra(confluence_conn)
    assert stored["refresh_token"] == fake_atlassian.latest_refresh_token != planted


def test_list_spaces_hands_the_spaces_downstream(fake_atlassian, confluence_conn):
    fake_atlassian.add_spaces(260)
    dag = dagbag().get_dag("confluence_list_spaces")
    run = dag.test()
    assert str(run.state).endswith("success")
    assert fake_atlassian.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces"] == 2
