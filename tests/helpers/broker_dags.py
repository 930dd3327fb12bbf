"""The DAG files of the Airflow 3 deployment tests (test_deployment.py, test_celery_deployment.py), built from one
header and one hook-calling task.

A template's placeholders are ``__NAME__`` (filled in by :func:`fill`, which the other DAG-file templates of the
system tests use too), so that the DAG code keeps its own braces.
"""

from __future__ import annotations

from collections.abc import Mapping

HEADER = r"""
from __future__ import annotations

import hashlib
import json
import logging
import socket
import tempfile
import time

import pendulum
from airflow.sdk import dag, get_current_context, task
__IMPORTS__
log = logging.getLogger("apc_deployment")


@dag(
    dag_id="__DAG_ID__",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=__MAX_ACTIVE_TASKS__,
    default_args={"retries": 0},
    tags=["confluence", "test"],
)
def the_dag():
"""

FOOTER = """

dag_object = the_dag()
"""

#: A task that calls Confluence through the hook like a user's task, at least ``__MIN_CALLS__`` times and for
#: ``__TASK_SECONDS__`` s, then logs ``__RESULT__ <json>`` with what it saw (the token source, the process's
#: hostname and TMPDIR). The pause between calls only paces the load on a 2-core machine: nothing is timed.
USE_CONFLUENCE = r"""
    @task
    def use_confluence(index: int) -> dict:
        from airflow_provider_confluence.version_compat import orm_available
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        hook = ConfluenceOAuthHook()
        source = hook.token_manager
        started = time.monotonic()
        calls, space_ids, listed = 0, set(), 0
        while calls < 400 and (calls < __MIN_CALLS__ or time.monotonic() - started < __TASK_SECONDS__):
            space_ids.add(hook.get_space_id("DEMO"))
            calls += 1
            if calls % 3 == 0:
                listed = len(list(hook.iter_spaces()))
                calls += 1
            time.sleep(0.2)
        result = {
            "index": index, "calls": calls, "space_ids": sorted(space_ids), "listed": listed,
            "orm": orm_available(), "store": source.store.name, "broker_url": getattr(source, "url", None),
            "broker_requests": getattr(source, "requests_sent", None),
            "hostname": socket.gethostname(), "tmpdir": tempfile.gettempdir(),
        }
        log.info("__RESULT__ %s", json.dumps(result))
        return result
"""


def fill(template: str, values: Mapping[str, object]) -> str:
    """``template`` with each ``__NAME__`` replaced by ``str(values[NAME])``."""
    for name, value in values.items():
        template = template.replace(f"__{name}__", str(value))
    return template


def dag_file(
    dag_id: str,
    body: str,
    *,
    max_active_tasks: int,
    values: Mapping[str, object],
    imports: str = "",
    main: str = "",
) -> str:
    """The source of a DAG file: :data:`HEADER`, ``body`` (the ``@dag`` function's body, indented four spaces;
    it may include :data:`USE_CONFLUENCE`), the module-level ``dag_object``, then ``main``.

    :param values: the placeholders of ``body`` and ``main`` (``__DAG_ID__`` and ``__MAX_ACTIVE_TASKS__`` are set).
    :param imports: import lines added after the header's own.
    """
    source = HEADER + body + FOOTER + main
    return fill(source, {**values, "DAG_ID": dag_id, "MAX_ACTIVE_TASKS": max_active_tasks, "IMPORTS": imports})
