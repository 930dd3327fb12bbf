"""The "Confluence page" extra link, resolved the way each Airflow version's web server does it.

* Airflow 2.11: the webserver loads the serialized DAG, whose operators get a ``ConfluencePageLink`` back
  (the class is registered through the provider info's ``extra-links``), and calls
  ``operator.get_extra_links(ti, "Confluence page")`` -> ``ConfluencePageLink.get_link(operator, ti_key=...)``,
  which reads the ``confluence_page_url`` XCom.
* Airflow 3: the task runner stored ``get_link``'s answer in XCom ``_link_ConfluencePageLink`` at the end of
  the try; the API server's serialized operator holds a generic ``XComOperatorLink`` that reads it. Here the
  same call on the serialized operator, in process; test_airflow3_worker.py reads it over the REST API of a
  real api-server after a forked worker ran the task.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.airflow_env import airflow_major, put_connection
from helpers.dags import load_dag, run_dag_source, xcom

pytestmark = pytest.mark.airflow2

HEADER = """
import pendulum
from airflow_provider_confluence.links.confluence import ConfluencePageLink
from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator
from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor
try:
    from airflow.sdk import DAG, BaseOperator
except ImportError:
    from airflow import DAG
    from airflow.models.baseoperator import BaseOperator


class PersistOperator(BaseOperator):
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(self, *, url, **kwargs):
        super().__init__(**kwargs)
        self.url = url

    def execute(self, context):
        ConfluencePageLink.persist(context, self.url)
"""


def served_link(folder: Path, dag_id: str, run_id: str, task_id: str) -> str:
    """The link as the web server computes it: from the serialized DAG and the task instance in the metadata DB.

    Airflow 3's ``dag.test()`` stored the serialized DAG; on Airflow 2.11 the DAG processor would, so the DAG is
    serialized and deserialized here as the DAG processor and the webserver do.
    """
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        if airflow_major() >= 3:
            dag = SerializedDagModel.get_dag(dag_id, session=session)
        else:
            from airflow.serialization.serialized_objects import SerializedDAG

            dag = SerializedDAG.from_dict(SerializedDAG.to_dict(load_dag(folder, dag_id)))
        task = dag.get_task(task_id)
        link_types = {type(link).__name__ for link in task.operator_extra_links}
        expected = "ConfluencePageLink" if airflow_major() < 3 else "XComOperatorLink"
        assert link_types == {expected}, link_types
        assert task.extra_links == ["Confluence page"]
        ti = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id).one()
        return task.get_extra_links(ti, "Confluence page")


def test_the_created_page_is_linked(fake_atlassian, confluence_conn, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_link_create",
        """
        ConfluenceCreatePageOperator(task_id="publish", space_key="DEMO", title="Linked report",
                                     body="<p>hello</p>")
        """,
        header=HEADER,
    )
    assert str(run.state).endswith("success")
    page = next(p for p in fake.pages if p["title"] == "Linked report")
    url = f"{fake.site_url}/wiki{page['_links']['webui']}"
    assert served_link(tmp_path / "dags", "apc_link_create", run.run_id, "publish") == url
    assert xcom("apc_link_create", run.run_id, "publish", key="confluence_page_url") == url
    if airflow_major() >= 3:
        assert xcom("apc_link_create", run.run_id, "publish", key="_link_ConfluencePageLink") == url


def test_a_sensor_links_the_page_it_waited_for(fake_atlassian, confluence_conn, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Runbook")
    fake.fail_next(404, times=1, route="GET /wiki/api/v2/pages/{id}")  # defers once: a try without a link
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_link_sensor",
        f"""
        ConfluencePageSensor(task_id="wait", page_id="{page["id"]}", deferrable=True, poke_interval=0.1)
        """,
        header=HEADER,
    )
    assert str(run.state).endswith("success")
    url = f"{fake.site_url}/wiki{page['_links']['webui']}"
    assert served_link(tmp_path / "dags", "apc_link_sensor", run.run_id, "wait") == url


def test_no_link_when_the_task_ended_on_no_page(fake_atlassian, airflow_db, tmp_path, monkeypatch):
    fake = fake_atlassian
    fake.add_space("DEMO")
    put_connection(
        "confluence_default", fake.connection("confluence_default", scopes="offline_access read:space:confluence")
    )
    run = run_dag_source(
        tmp_path,
        monkeypatch,
        "apc_link_none",
        """
        ConfluenceCreatePageOperator(task_id="publish", space_key="DEMO", title="Never", body="<p>x</p>")
        PersistOperator(task_id="not_web", url="javascript:alert(1)")
        PersistOperator(task_id="no_url", url=None)
        """,
        header=HEADER,
    )
    assert str(run.state).endswith("failed")  # the create task lacks write:page:confluence
    for task_id in ("publish", "not_web", "no_url"):
        assert served_link(tmp_path / "dags", "apc_link_none", run.run_id, task_id) == "", task_id
        assert xcom("apc_link_none", run.run_id, task_id, key="confluence_page_url") is None, task_id


def test_the_link_module_is_cheap_to_import():
    """Operators import it at DAG-parse time: it adds no HTTP stack, hook or client to what Airflow loads."""
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_confluence.version_compat; before = set(sys.modules); "
        "import airflow_provider_confluence.links.confluence; "
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('requests', 'pandas') "
        "or m in ('airflow_provider_confluence.hooks.confluence', 'airflow_provider_confluence.client.confluence')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
