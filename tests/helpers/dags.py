"""Building and running DAGs in-process (``dag.test()``), and reading what they stored."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from helpers.airflow_env import EXAMPLE_DAGS, airflow_major

DAG_HEADER = """
import pendulum
from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG
"""


def new_dag(name: str, **kwargs: Any) -> Any:
    try:  # Airflow 3
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2.11
        from airflow import DAG

    kwargs.setdefault("schedule", None)
    return DAG(
        dag_id=f"toolkit_{name}_{uuid.uuid4().hex[:8]}",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        **kwargs,
    )


def task_decorator() -> Any:
    try:
        from airflow.sdk import task
    except ImportError:
        from airflow.decorators import task
    return task


def run_dag(dag: Any) -> dict[str, dict[str, Any]]:
    """Run ``dag`` with ``dag.test()``; return ``{key: {task_id: value}}`` of the XComs it stored."""
    if airflow_major() >= 3:  # dag.test() runs only DAGs that are serialized in the metadata database
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.collection import update_dag_parsing_results_in_db
        from airflow.serialization.serialized_objects import LazyDeserializedDAG
        from airflow.utils.session import create_session

        DagBundlesManager().sync_bundles_to_db()
        with create_session() as session:
            update_dag_parsing_results_in_db(
                "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
            )
    run = dag.test()
    try:
        from airflow.models.xcom import XComModel as Model  # Airflow 3
    except ImportError:
        from airflow.models.xcom import BaseXCom as Model
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {
            ti.task_id: str(ti.state)
            for ti in session.query(TaskInstance).filter(
                TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id
            )
        }
        rows = session.query(Model.task_id, Model.key, Model.value).filter(
            Model.dag_id == dag.dag_id, Model.run_id == run.run_id
        )
        stored: dict[str, dict[str, Any]] = {}
        for task_id, key, value in rows:
            stored.setdefault(key, {})[task_id] = Model.deserialize_value(SimpleNamespace(value=value))
    assert str(run.state).endswith("success"), states
    return stored


def run_dag_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dag_id: str, body: str, header: str = DAG_HEADER
) -> Any:
    """Write a DAG file (``header`` + a ``with DAG(dag_id)`` block around ``body``), load it, ``dag.test()`` it."""
    folder = tmp_path / "dags"
    folder.mkdir(exist_ok=True)
    source = (
        header
        + textwrap.dedent(f"""
        with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
        """)
        + textwrap.indent(textwrap.dedent(body), "    ")
    )
    (folder / f"{dag_id}.py").write_text(source)
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
        json.dumps(
            [
                {
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {},
                },
                {
                    "name": "apc-test-dags",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(folder), "refresh_interval": 0},
                },
            ]
        ),
    )
    return load_dag(folder, dag_id).test()


def load_dag(folder: Path, dag_id: str) -> Any:
    """The DAG ``dag_id`` of the DAG files in ``folder`` (no import errors allowed)."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+

        bag = DagBag(dag_folder=str(folder))
    except ImportError:
        from airflow.models.dagbag import DagBag

        bag = DagBag(dag_folder=str(folder), include_examples=False)
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    """An XCom value as the metadata database holds it (None when there is none)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        if airflow_major() >= 3:
            from airflow.models.xcom import XComModel

            row = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key).first()
            return None if row is None else XComModel.deserialize_value(row)
        from airflow.models.xcom import XCom

        return XCom.get_one(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, session=session)


def dagbag() -> Any:
    """The example DAGs, parsed."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+

        return DagBag(dag_folder=str(EXAMPLE_DAGS))
    except ImportError:
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=str(EXAMPLE_DAGS), include_examples=False)
