"""Confluence pages as Airflow Assets (Datasets on 2.11), through Airflow on both major versions.

A publish that changed a page emits one asset event for ``confluence://<site host>/pages/<id>`` and queues the
DAGs scheduled on that asset (or on the alias it came through): the scheduler's own query
(``DagModel.dags_needing_dagruns``) then names them. An unchanged re-run emits nothing and queues nothing.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from airflow_provider_confluence.assets.confluence import (
    DEFAULT_PAGE_ALIAS,
    confluence_page_asset,
    confluence_pages_alias,
)
from airflow_provider_confluence.assets.uri import page_asset_uri
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceUpdatePageOperator,
)
from helpers.airflow_env import airflow_major
from helpers.assets import consume_queue, events_of, register, triggered
from helpers.dags import dagbag, new_dag, run_dag, task_decorator

pytestmark = pytest.mark.airflow2


def consumer_of(*schedule: Any) -> Any:
    task = task_decorator()
    with new_dag("consumer", schedule=list(schedule)) as dag:

        @task
        def noop() -> None:
            return None

        noop()
    return dag


# -- the URI scheme is Airflow's ------------------------------------------------------------------------


def test_airflow_normalises_confluence_uris_with_the_providers_handler():
    """The provider-info entry (``asset-uris`` / ``dataset-uris``) reaches Airflow's own Asset/Dataset class."""
    from airflow_provider_confluence.version_compat import Asset

    spelled = Asset("confluence://Fake-Site.Atlassian.net:443/pages/42/")
    assert spelled.uri == "confluence://fake-site.atlassian.net/pages/42"
    assert spelled.uri == confluence_page_asset("https://fake-site.atlassian.net", 42).uri
    assert Asset("confluence://127.0.0.1:8443/pages/7").uri == "confluence://127.0.0.1:8443/pages/7"


def test_a_uri_without_a_page_id_is_refused_with_the_form_to_use():
    """Airflow 3 refuses it when the Asset is made; Airflow 2.11 warns unless
    ``[core] strict_dataset_uri_validation``; the provider's helper refuses it on both."""
    from airflow_provider_confluence.version_compat import Asset

    with pytest.raises(ValueError, match=r"confluence://<site host>/pages/<numeric page id>"):
        confluence_page_asset("https://fake-site.atlassian.net", "Reports")
    if airflow_major() >= 3:
        with pytest.raises(ValueError, match="names no numeric page id"):
            Asset("confluence://fake-site.atlassian.net/pages/Reports")
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Asset("confluence://fake-site.atlassian.net/pages/Reports")
        assert any("names no numeric page id" in str(w.message) for w in caught)


# -- the operators' outlets -------------------------------------------------------------------------------


def test_the_operators_list_the_page_alias_and_refuse_a_direct_page_outlet():
    with new_dag("outlets"):
        create = ConfluenceCreatePageOperator(task_id="c", space_key="DEMO", title="t", body="b")
        quiet = ConfluenceUpdatePageOperator(task_id="u", page_id="1", body="b", asset_alias=None)
        custom = ConfluenceUpdatePageOperator(task_id="v", page_id="1", body="b", asset_alias="reports")
    assert create.outlets == [confluence_pages_alias(DEFAULT_PAGE_ALIAS)]
    assert quiet.outlets == []
    assert custom.outlets == [confluence_pages_alias("reports")]
    with pytest.raises(ConfluenceConfigError, match="emit") as refused:
        ConfluenceUpdatePageOperator(
            task_id="w",
            page_id="1",
            body="b",
            outlets=[confluence_page_asset("https://fake-site.atlassian.net", 1)],
        )
    assert "confluence://fake-site.atlassian.net/pages/1" in str(refused.value)
    with pytest.raises(ConfluenceConfigError, match="alias name"):
        ConfluenceCreatePageOperator(task_id="x", space_key="DEMO", title="t", body="b", asset_alias=" ")


# -- events only when the page changed --------------------------------------------------------------------


def test_a_changed_page_triggers_the_dag_scheduled_on_it_and_an_unchanged_rerun_does_not(
    fake_atlassian, confluence_conn
):
    """Page id known when the DAG is written: the downstream DAG is scheduled on the page's asset."""
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Status", body="<p>old</p>")
    uri = page_asset_uri(fake_atlassian.site_url, page["id"])
    consumer = consumer_of(confluence_page_asset(fake_atlassian.site_url, page["id"]))
    with new_dag("update_asset", params={"body": "<p>new</p>"}) as producer:
        ConfluenceUpdatePageOperator(task_id="update", page_id=page["id"], body="{{ params.body }}")
    register(consumer, producer)

    result = run_dag(producer)["return_value"]["update"]
    assert result["changed"] is True
    (event,) = events_of(uri, producer)
    assert event["id"] == page["id"] and event["action"] == "updated" and event["version"] == result["version"]
    assert triggered(consumer.dag_id)

    consume_queue(consumer.dag_id)  # the scheduler started that run
    assert run_dag(producer)["return_value"]["update"]["changed"] is False
    assert len(events_of(uri, producer)) == 1, "an unchanged re-run emitted an asset event"
    assert not triggered(consumer.dag_id)


def test_a_page_created_at_run_time_emits_through_the_alias(fake_atlassian, confluence_conn):
    """Page id known only after the run: the event names the created page; a DAG on the alias is triggered."""
    fake_atlassian.add_space("DEMO")
    consumer = consumer_of(confluence_pages_alias("reports_alias"))
    with new_dag("create_asset") as producer:
        ConfluenceCreatePageOperator(
            task_id="create",
            space_key="DEMO",
            title="Daily",
            body="<p>rows: 1</p>",
            if_exists="update",
            asset_alias="reports_alias",
        )
    register(consumer, producer)

    created = run_dag(producer)["return_value"]["create"]
    assert created["action"] == "created"
    uri = page_asset_uri(fake_atlassian.site_url, created["id"])
    assert [e["action"] for e in events_of(uri, producer)] == ["created"]
    assert triggered(consumer.dag_id)

    consume_queue(consumer.dag_id)
    assert run_dag(producer)["return_value"]["create"]["action"] == "unchanged"
    assert [e["action"] for e in events_of(uri, producer)] == ["created"]
    assert not triggered(consumer.dag_id)


def test_the_example_pair_runs_the_consumer_after_a_change_only(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    bag = dagbag()
    producer, consumer = bag.get_dag("confluence_asset_publish"), bag.get_dag("confluence_asset_consumer")
    register(producer, consumer)

    assert str(producer.test().state).endswith("success")
    (page,) = [p for p in fake_atlassian.pages if p["title"] == "Pipeline status"]
    assert len(events_of(page_asset_uri(fake_atlassian.site_url, page["id"]), producer)) == 1
    assert triggered("confluence_asset_consumer")

    consume_queue("confluence_asset_consumer")
    assert str(producer.test().state).endswith("success")
    assert len(events_of(page_asset_uri(fake_atlassian.site_url, page["id"]), producer)) == 1
    assert not triggered("confluence_asset_consumer")


def test_asset_alias_none_emits_nothing_even_when_the_page_changed(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Quiet", body="<p>old</p>")
    with new_dag("no_alias") as producer:
        ConfluenceUpdatePageOperator(task_id="update", page_id=page["id"], body="<p>new</p>", asset_alias=None)
    assert run_dag(producer)["return_value"]["update"]["changed"] is True
    assert events_of(page_asset_uri(fake_atlassian.site_url, page["id"]), producer) == []


def test_a_dag_never_parsed_into_the_database_still_runs_and_records_its_event(fake_atlassian, confluence_conn):
    """``dag.test()`` on a fresh database (the way users test DAGs): Airflow 3 creates the alias row itself;
    Airflow 2.11 fails the task with ``FlushError: Can't flush None value found in collection
    DatasetModel.aliases`` unless the alias has a row, so the operator registers it first."""
    fake_atlassian.add_space("DEMO")
    alias = f"never_parsed_{fake_atlassian.site_url.rsplit(':', 1)[-1]}"
    with new_dag("unregistered_producer") as producer:
        ConfluenceCreatePageOperator(
            task_id="create", space_key="DEMO", title="Fresh", body="<p>1</p>", asset_alias=alias
        )

    created = run_dag(producer)["return_value"]["create"]
    assert created["action"] == "created"
    (event,) = events_of(page_asset_uri(fake_atlassian.site_url, created["id"]), producer)
    assert event["action"] == "created"
