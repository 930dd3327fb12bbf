"""A deployment's PostgreSQL metadata database read as it is (psycopg2, no Airflow import): runs, task states,
import errors, Variables, the stored connection extras and the rendered template fields.

The same tables on Airflow 2.11 and 3.x, so a test that starts its runs with the scheduler (``schedule="@once"``,
not paused at creation) can wait for them the same way on both lines, with or without an API server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from helpers.processes import libpq_url


class MetadataDb:
    """Read-only queries on a metadata database.

    :param sqlalchemy_url: the ``postgresql+psycopg2://`` URL Airflow was given.
    """

    def __init__(self, sqlalchemy_url: str) -> None:
        import psycopg2

        self._db = psycopg2.connect(libpq_url(sqlalchemy_url))
        self._db.autocommit = True

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with self._db.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def runs(self, dag_id: str) -> dict[str, str]:
        """The DAG's runs: their state by run id."""
        return {str(r): str(s) for r, s in self._rows("SELECT run_id, state FROM dag_run WHERE dag_id = %s", dag_id)}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """The state of each task instance of a run, by task id."""
        rows = self._rows("SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
        return {str(task): str(state) for task, state in rows}

    def import_errors(self) -> list[str]:
        """The stack traces of the DAG files that did not import."""
        return [str(trace) for (trace,) in self._rows("SELECT stacktrace FROM import_error")]

    def variable_keys(self) -> list[str]:
        return sorted(str(key) for (key,) in self._rows("SELECT key FROM variable"))

    def raw_extra(self, conn_id: str) -> str:
        """A connection's extra column as stored: Fernet ciphertext, which changes on any write."""
        rows = self._rows("SELECT extra FROM connection WHERE conn_id = %s", conn_id)
        assert rows, f"no connection row {conn_id!r}"
        return str(rows[0][0])

    def rendered_fields(self, dag_id: str) -> dict[str, str]:
        """The stored rendered template fields of the DAG's task instances (as text), by task id."""
        rows = self._rows(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = %s", dag_id
        )
        return {str(task): str(fields) for task, fields in rows}

    def wait_for_run(
        self, dag_id: str, timeout: float, check_alive: Callable[[], None], tails: Callable[[], str]
    ) -> tuple[str, str, dict[str, str]]:
        """Until the DAG's one run is finished (bounded): its run id, state and task states.

        :param check_alive: fails the test when a process of the deployment died.
        :param tails: the output tails to show when the run does not finish in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            check_alive()
            runs = self.runs(dag_id)
            finished = {run: state for run, state in runs.items() if state in ("success", "failed")}
            if finished:
                run_id, state = next(iter(finished.items()))
                return run_id, state, self.task_states(dag_id, run_id)
            if time.monotonic() > deadline:
                states = {run: self.task_states(dag_id, run) for run in runs}
                errors = "\n".join(trace[-1500:] for trace in self.import_errors())
                pytest.fail(
                    f"no finished run of {dag_id} in {timeout:.0f} s; runs {runs}, tasks {states}\n"
                    f"import errors: {errors or 'none'}\n{tails()}"
                )
            time.sleep(1.0)
