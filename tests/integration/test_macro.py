"""``{{ macros.confluence.access_token(...) }}``: a working token in templates, masked where Airflow stores it.

The plugin (``airflow.plugins`` entry point) exposes :func:`airflow_provider_confluence.macros.access_token`;
Airflow 2.11 integrates plugin macros into ``airflow.macros.confluence``, Airflow 3's task runner into
``airflow.sdk.execution_time.macros.confluence``. Here the HTTP example DAG calls the emulator's gateway with
the rendered bearer token through ``dag.test()`` on both versions; the stored rendered fields
(RenderedTaskInstanceFields) must show ``***`` in its place. The real Airflow 3 worker path, where the
supervisor masks the task log, is in test_airflow3_worker.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_confluence.testing import issued_secrets
from helpers.airflow_env import EXAMPLE_DAGS, airflow_major, put_connection
from helpers.dags import load_dag, xcom
from helpers.gateway import put_gateway_connection

pytestmark = [pytest.mark.airflow2, pytest.mark.every_line]

DAG_ID = "confluence_http_with_token"


def rendered_fields(dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(RTIF).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        fields = row.rendered_fields
        return json.loads(fields) if isinstance(fields, str) else fields


def test_the_http_example_calls_confluence_with_the_rendered_token(fake_atlassian, airflow_db):
    fake = fake_atlassian
    space = fake.add_space("DEMO")
    for title in ("Alpha", "Beta", "Gamma"):
        fake.add_page("DEMO", title)
    put_connection("confluence_default", fake.connection("confluence_default"))
    put_gateway_connection(fake)

    run = load_dag(EXAMPLE_DAGS, DAG_ID).test(run_conf={"space_id": space["id"]})

    assert str(run.state).endswith("success")
    assert fake.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces/{id}/pages"] == 1
    pages = xcom(DAG_ID, run.run_id, "recent_pages")
    assert [page["title"] for page in pages][:3] == ["Gamma", "Beta", "Alpha"]  # newest first, then the home page
    assert xcom(DAG_ID, run.run_id, "show") == len(pages) == 4

    fields = rendered_fields(DAG_ID, run.run_id, "recent_pages")
    # Airflow hides the whole value of a header named Authorization (a sensitive name); the worker test in
    # test_airflow3_worker.py shows the token itself masked where no sensitive name helps
    assert fields["headers"]["Authorization"] in ("***", "Bearer ***"), fields["headers"]
    assert fields["endpoint"] == f"/wiki/api/v2/spaces/{space['id']}/pages"
    stored = json.dumps(fields)
    clean = not [secret for secret in issued_secrets() if secret in stored]  # a bool: pytest would print the list
    assert clean


def test_the_macro_is_registered_under_the_plugin_name(fake_atlassian, confluence_conn):
    from airflow import plugins_manager

    if airflow_major() >= 3:
        from airflow.sdk.execution_time import macros

        try:  # Airflow 3.2+: the Task SDK's own plugins manager
            from airflow.sdk.plugins_manager import integrate_macros_plugins
        except ImportError:  # 3.0 and 3.1: the task runner integrates them with the core one
            integrate_macros_plugins = plugins_manager.integrate_macros_plugins
    else:
        from airflow import macros

        integrate_macros_plugins = plugins_manager.integrate_macros_plugins
    integrate_macros_plugins()
    token = macros.confluence.access_token("confluence_default")
    # (booleans first: a failing comparison must not print a token)
    issued = token in issued_secrets()  # a real access token the emulator issued
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    reused = ConfluenceOAuthHook("confluence_default").get_access_token() == token  # still valid: not re-minted
    assert issued and reused
    assert fake_atlassian.counters["refreshes"] == 1
