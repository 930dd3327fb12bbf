"""Airflow's triggerer, played in the test process for ``dag.test()``.

``dag.test()`` normally runs a deferred task's trigger in line, inside the task's run, and on Airflow 3 it even
puts the task instance back to ``queued`` before it does, so a test never sees ``deferred``. With
:class:`InlineTriggerer` installed, ``dag.test()`` runs a task as it would with a triggerer running: a task that
defers ends its run ``deferred`` in the metadata database, with its trigger row, holding no worker slot. The
triggerer then records what the database holds, runs each trigger from its row and resumes its task instances with
``Trigger.submit_event``, as Airflow's triggerer does; ``dag.test()`` picks them up as ``scheduled``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest

from helpers.airflow_env import airflow_major
from helpers.quota import first_event


class InlineTriggerer:
    """Plays the triggerer while ``dag.test()`` waits.

    :param dag_id: the DAG whose deferred task instances it serves.
    :param observe: called with each deferred task instance before its trigger runs; what it returns is kept in
        :attr:`observed` with the task instance's state and trigger.
    """

    def __init__(self, dag_id: str, observe: Callable[[Any], dict[str, Any]] | None = None) -> None:
        self.dag_id = dag_id
        self.observe = observe
        self.observed: list[dict[str, Any]] = []
        self.rounds = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> InlineTriggerer:
        """Make ``dag.test()`` run each task as with a triggerer running, then play the triggerer."""
        module: Any
        if airflow_major() >= 3:
            import airflow.sdk.definitions.dag as module

            flag = "run_triggerer"
        else:
            import airflow.models.dag as module

            flag = "inline_trigger"
        run_task = module._run_task

        def run_then_trigger(**kwargs: Any) -> Any:
            result = run_task(**{**kwargs, flag: False})
            self.step()
            return result

        monkeypatch.setattr(module, "_run_task", run_then_trigger)
        return self

    def step(self) -> None:
        """One round: record and fire the triggers of the DAG's deferred task instances."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import Trigger
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session

        self.rounds += 1
        if self.rounds > 50:
            raise RuntimeError(f"50 task runs; deferred so far: {self.observed}")
        fire: list[tuple[int, str, dict[str, Any]]] = []
        with create_session() as session:
            tis = session.query(TaskInstance).filter(TaskInstance.dag_id == self.dag_id).all()
            for ti in tis:
                if not str(ti.state).endswith("deferred"):
                    continue
                row = session.get(Trigger, ti.trigger_id)
                assert row is not None, f"{ti.task_id} is deferred without a trigger row"
                seen = {
                    "task_id": ti.task_id,
                    "state": str(ti.state).rsplit(".", 1)[-1],
                    "classpath": row.classpath,
                    "others": {o.task_id: str(o.state).rsplit(".", 1)[-1] for o in tis if o.task_id != ti.task_id},
                }
                self.observed.append({**seen, **(self.observe(ti) if self.observe else {})})
                fire.append((row.id, row.classpath, dict(row.kwargs)))
        for trigger_id, classpath, kwargs in fire:
            module, _, name = classpath.rpartition(".")
            payload = first_event(getattr(importlib.import_module(module), name)(**kwargs))
            with create_session() as session:
                Trigger.submit_event(trigger_id=trigger_id, event=TriggerEvent(payload), session=session)
