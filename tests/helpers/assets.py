"""The metadata database's asset tables (dataset tables on Airflow 2.11), read and written as the scheduler would."""

from __future__ import annotations

from typing import Any

from helpers.airflow_env import airflow_major


def tables() -> tuple[Any, Any, Any, str]:
    """(event, run queue, asset model, the event's foreign key) of this Airflow line."""
    if airflow_major() >= 3:
        from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel

        return AssetEvent, AssetDagRunQueue, AssetModel, "asset_id"
    from airflow.models.dataset import DatasetDagRunQueue, DatasetEvent, DatasetModel

    return DatasetEvent, DatasetDagRunQueue, DatasetModel, "dataset_id"


def events_of(uri: str, dag: Any) -> list[dict[str, Any]]:
    """The extras of the events of the asset ``uri`` that ``dag`` emitted, oldest first (the emulator of each
    test numbers its pages from the same start, the metadata database is shared)."""
    from airflow.utils.session import create_session

    event, _queue, model, key = tables()
    with create_session() as session:
        rows = (
            session.query(event.extra)
            .join(model, getattr(event, key) == model.id)
            .filter(model.uri == uri, event.source_dag_id == dag.dag_id)
            .order_by(event.id)
        )
        return [dict(extra or {}) for (extra,) in rows]


def triggered(dag_id: str) -> bool:
    """Whether the scheduler would now start an asset-triggered run of ``dag_id`` (its own query says so)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        _query, asset_triggered = DagModel.dags_needing_dagruns(session)
        return dag_id in asset_triggered


def consume_queue(dag_id: str) -> None:
    """Drop ``dag_id``'s queued asset events, as the scheduler does when it starts the triggered run."""
    from airflow.utils.session import create_session

    _event, queue, _model, _key = tables()
    with create_session() as session:
        session.query(queue).filter(queue.target_dag_id == dag_id).delete()


def register(*dags: Any) -> None:
    """Write the DAGs (schedules, outlets, aliases) to the metadata database as the DAG processor would; unpause."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    if airflow_major() >= 3:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.dag_processing.collection import update_dag_parsing_results_in_db
        from airflow.serialization.serialized_objects import LazyDeserializedDAG

        DagBundlesManager().sync_bundles_to_db()
        with create_session() as session:
            parsed = [LazyDeserializedDAG.from_dag(dag) for dag in dags]
            update_dag_parsing_results_in_db("dags-folder", None, parsed, {}, None, set(), session=session)
    else:
        from airflow.models.dag import DAG

        DAG.bulk_write_to_db(list(dags))
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id.in_([d.dag_id for d in dags])).update(
            {DagModel.is_paused: False}, synchronize_session=False
        )
