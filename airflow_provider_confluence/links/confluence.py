"""The "Confluence page" button on a task instance, linking to the page the task created, updated or read.

How the link travels (the same code serves both Airflow versions):

* At the end of ``execute``, an operator calls :meth:`ConfluencePageLink.persist`, which pushes the page URL
  to XCom under :data:`XCOM_KEY` (``confluence_page_url``; templates may pull it too) and keeps it on the
  operator object for the rest of the try.
* Airflow 3: after every try (also when it defers or fails), the Task SDK's task runner (``finalize`` in
  ``airflow/sdk/execution_time/task_runner.py``) calls :meth:`ConfluencePageLink.get_link` in the worker with
  the running task instance as ``ti_key``, and stores its answer under the link's ``xcom_key``
  (``_link_ConfluencePageLink``); the API server answers ``/api/v2/.../taskInstances/{task_id}/links`` from that
  XCom (a generic ``XComOperatorLink``; this class is not imported there). In the worker, ``get_link`` answers
  from the operator object, so a try that stored no URL does not look XCom up (the Task SDK logs a missing
  XCom as an error).
* Airflow 2.11: the webserver imports this class (listed under ``extra-links`` in the provider info) and calls
  :meth:`ConfluencePageLink.get_link`, which reads :data:`XCOM_KEY` from the metadata database.

Importing this module is cheap: Airflow's XCom model is imported only inside :meth:`get_link`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_confluence.version_compat import BaseOperatorLink

log = logging.getLogger(__name__)

#: The XCom key under which :meth:`ConfluencePageLink.persist` stores the page URL.
XCOM_KEY = "confluence_page_url"
_ON_TASK = "_confluence_page_url"  # the URL persisted by the current try, on the operator object


def _is_web_url(value: object) -> bool:
    """Only ``http(s)://`` URLs become links (never ``javascript:`` or relative paths from a bad XCom)."""
    return isinstance(value, str) and value.lower().startswith(("https://", "http://"))


class ConfluencePageLink(BaseOperatorLink):
    """The "Confluence page" extra link: opens the page a Confluence task ended on."""

    name = "Confluence page"

    @staticmethod
    def persist(context: Any, url: str | None) -> None:
        """Remember ``url`` as this task instance's page link (an XCom under :data:`XCOM_KEY`).

        :param context: the task's execution context (``execute``'s argument).
        :param url: the page URL (``_links.base`` + ``_links.webui``); ``None`` or a non-web URL stores nothing.
        """
        if not url:
            log.debug("No Confluence page URL to link to")
            return
        if not _is_web_url(url):
            log.warning("Not linking to %r: a Confluence page link must be an http(s) URL", url)
            return
        context["ti"].xcom_push(key=XCOM_KEY, value=url)
        # On the operator that runs: the task instance's. Airflow 3.0's task runner builds the context before it
        # swaps ``ti.task`` for the copy that executes (``prepare_for_execution``), and asks that copy for the
        # link at the end of the try, so ``context["task"]`` alone left the link empty there.
        tasks = (context.get("task"), getattr(context["ti"], "task", None))
        for task in {id(task): task for task in tasks if task is not None}.values():
            setattr(task, _ON_TASK, url)

    def get_link(self, operator: Any, *, ti_key: Any) -> str:  # TaskInstanceKey: a different class per line
        """The stored page URL of the task instance ``ti_key``, or ``""`` when it stored none."""
        value = getattr(operator, _ON_TASK, None)
        if value is None and hasattr(ti_key, "xcom_push"):
            return ""  # Airflow 3 worker (a running task instance, not a key): this try stored no URL
        if value is None:
            from airflow.providers.common.compat.sdk import XCom

            value = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        return value if _is_web_url(value) else ""
