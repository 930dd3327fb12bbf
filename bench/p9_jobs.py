"""The Airflow side of row P9 of ``make bench``: 20 page-creating tasks meet an exhausted hourly quota with a
30-minute ``Retry-After``, deferring (the provider's ``deferrable=True``) or holding their worker slot (a task
that sleeps until ``retry_at``).

    python bench/p9_jobs.py PORT VARIANT   VARIANT: defer | hold; prints one line of JSON

Airflow runs the tasks with ``dag.test()`` (its in-process runner: each try goes through the task runner, its
state through the metadata database; a deferred task's trigger runs in line, then the task resumes), so the 20
tasks run one after the other. Before each task starts, the harness puts the emulator's clock at half past the
hour and spends the quota, so that every task meets it exhausted with ``Retry-After: 1800``, as 20 tasks running
at once would. Time is the emulator's clock: real time, plus the waits, which move it at once (the trigger's
sleep, or the holding task's sleep). A worker slot is held while a try runs (``run_task_in_process``, timed).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from typing import Any

import pendulum

from airflow_provider_confluence.exceptions import ConfluenceNotFound, ConfluenceRateLimited
from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator
from airflow_provider_confluence.testing import FakeAtlassian

TASKS = 20
BUDGET = 5  # points per hour: spent by the harness before each task
SPACE = "P9"
FAKE: FakeAtlassian | None = None
SLEPT = [0.0]  # what the trigger or the holding task slept since the current task started (emulator seconds)


def fake() -> FakeAtlassian:
    assert FAKE is not None
    return FAKE


def provider_now() -> float:
    """The provider's clock, on which the client computed ``retry_at`` (real time), plus what was slept since."""
    return time.time() + SLEPT[0]


async def emulator_sleep(seconds: float) -> None:
    SLEPT[0] += max(seconds, 0.0)
    fake().advance(max(seconds, 0.0))


class HoldingCreate(ConfluenceCreatePageOperator):
    """The same page creation, holding its slot: on an exhausted quota it sleeps until ``retry_at``, then goes on
    (the sleep moves the emulator's clock, as ``time.sleep`` would move a real one)."""

    def execute(self, context: Any) -> dict[str, Any]:
        for _ in range(5):
            try:
                return self.run_from(context, {})
            except ConfluenceRateLimited as exc:
                wait = float(exc.retry_at or 0) - provider_now()
                self.log.info("Quota exhausted: holding the slot for %.0f s", wait)
                SLEPT[0] += max(wait, 0.0)
                fake().advance(max(wait, 0.0))
        raise RuntimeError("still rate limited after 5 waits")


def exhaust(conn_id: str) -> None:
    """Put the emulator's clock at half past the hour, and spend the window's points (404 lookups, 1 point each)."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    emulator = fake()
    emulator.advance((1800 - emulator.now() % 3600) % 3600)
    client = ConfluenceOAuthHook(confluence_conn_id=conn_id).get_conn()
    while emulator.quota_usage().remaining > 0:
        try:
            client.request("GET", "/wiki/api/v2/pages/987654321")
        except ConfluenceNotFound:
            pass


def timed_runner(conn_id: str, intervals: dict[str, list[list[float]]]) -> None:
    """Time every try (``run_task_in_process``) on the emulator's clock; before a task's first try, exhaust."""
    from airflow.sdk.execution_time import supervisor

    original = supervisor.run_task_in_process

    def run(ti: Any, task: Any) -> Any:
        if ti.task_id not in intervals:
            exhaust(conn_id)
            SLEPT[0] = 0.0
            intervals[ti.task_id] = []
        start = fake().now()
        try:
            return original(ti=ti, task=task)
        finally:
            intervals[ti.task_id].append([start, fake().now()])

    supervisor.run_task_in_process = run  # type: ignore[assignment]


def serialize_for_test(dag: Any) -> None:
    """``dag.test()`` on Airflow 3 runs only a DAG serialized in the metadata database."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def overlap(intervals: list[list[float]], windows: list[tuple[float, float]]) -> float:
    return sum(
        max(0.0, min(end, w_end) - max(start, w_start)) for start, end in intervals for w_start, w_end in windows
    )


def main(port: int, variant: str) -> dict[str, Any]:
    global FAKE
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import DAG
    from airflow.utils.session import create_session
    from worker import put_connection

    from airflow_provider_confluence.triggers import rate_limit

    with FakeAtlassian(port=port) as emulator:
        FAKE = emulator
        os.environ.setdefault("AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS", emulator.allowed_endpoint_hosts)
        emulator.access_token_lifetime = 100 * 3600  # the emulator's clock moves an hour per task
        emulator.add_space(SPACE)
        conn_id = f"confluence_p9_{variant}"
        put_connection(conn_id, json.dumps(emulator.connection(conn_id)))
        rate_limit._now = provider_now  # type: ignore[assignment]
        rate_limit._sleep = emulator_sleep  # type: ignore[assignment]
        intervals: dict[str, list[list[float]]] = {}
        timed_runner(conn_id, intervals)
        emulator.enable_quota(BUDGET)  # aligned to the hour, as Atlassian's windows are
        titles = [f"Quota page {variant} {index}" for index in range(TASKS)]
        kind = HoldingCreate if variant == "hold" else ConfluenceCreatePageOperator
        extra = {} if variant == "hold" else {"deferrable": True}
        with DAG(
            f"bench_p9_{variant}_{uuid.uuid4().hex[:6]}",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            catchup=False,
        ) as dag:
            for index, title in enumerate(titles):
                kind(
                    task_id=f"create_{index}",
                    space_key=SPACE,
                    title=title,
                    body=f"<p>{title}</p>",
                    confluence_conn_id=conn_id,
                    **extra,
                )
        serialize_for_test(dag)
        emulator_start, real_start = emulator.now(), time.monotonic()
        run = dag.test()
        real_seconds = time.monotonic() - real_start
        emulator_seconds = emulator.now() - emulator_start
        with create_session() as session:
            states = [
                str(ti.state) for ti in session.query(TaskInstance).filter_by(dag_id=dag.dag_id, run_id=run.run_id)
            ]
        rejected = [r["at"] for r in emulator.requests if r["status"] == 429]
        windows = [(at, math.ceil(at / 3600) * 3600) for at in rejected]  # until the hour's window resets
        pages = [p["title"] for p in emulator.pages if p["title"] in titles]
    slot_waiting = {task: overlap(spans, windows) for task, spans in intervals.items()}
    return {
        "variant": variant,
        "tasks": TASKS,
        "quota_rejections": len(rejected),
        "retry_after_s": [round(end - at) for at, end in windows],
        "slot_seconds_while_exhausted": sum(slot_waiting.values()),
        "slot_seconds_while_exhausted_per_task": slot_waiting,
        "slot_seconds_total": sum(end - start for spans in intervals.values() for start, end in spans),
        "tries_per_task": {task: len(spans) for task, spans in intervals.items()},
        "task_states": {state: states.count(state) for state in set(states)},
        "failed_tasks": sum(1 for s in states if not s.endswith("success")),
        "pages_created": len(pages),
        "duplicate_pages": len(pages) - len(set(pages)),
        "missing_pages": len(set(titles) - set(pages)),
        "real_seconds": real_seconds,
        "emulator_seconds": emulator_seconds,
        "run_state": str(run.state),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(int(sys.argv[1]), sys.argv[2])) + "\n")
