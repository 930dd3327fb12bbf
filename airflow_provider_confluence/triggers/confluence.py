"""``ConfluencePageTrigger``: the deferrable half of :class:`~airflow_provider_confluence.sensors.confluence.
ConfluencePageSensor`, run by the triggerer.

Every ``poke_interval`` seconds it runs the sensor's own check (:class:`~airflow_provider_confluence.sensors.
page_check.PageWait`) in a thread of its own small pool, because the hook and its HTTP client are synchronous. The hook
resolves tokens exactly as in a task (``state_store`` rules, ``stores.choose_token_store``):

* Airflow 3: the triggerer runs triggers in a forked child whose ORM is blocked, like a task worker. Its
  ``SUPERVISOR_COMMS`` (``TriggerCommsDecoder`` in ``airflow/jobs/triggerer_job_runner.py``) accepts sync SDK
  calls from any thread other than the event loop's and bridges them to the loop with
  ``run_coroutine_threadsafe``; the triggerer's supervisor serves ``GetConnection``, ``GetVariable``,
  ``PutVariable`` and ``MaskSecret``. So ``Connection``/``Variable`` reads, the Variable store's writes and
  ``mask_secret`` work from the check's thread (called on the loop's own thread they would need greenback).
* Airflow 2.11: the triggerer may use the ORM; the thread keeps the blocking database and HTTP calls off the
  event loop, as Airflow's docs ask (``sync_to_async``).

Between two checks it sleeps ``poke_interval``, or, when an exhausted rate limit (Atlassian's hourly points
quota) refused the check, until the limit resets (the ``retry_at`` of ``ConfluenceRateLimited``) instead of
failing.

The event is JSON only: ``{"status": "found", "page": summary}`` or ``{"status": "error", "error_type",
"message", ...}`` (the error's class and facts, never a token).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_confluence.exceptions import ConfluenceError

if TYPE_CHECKING:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    from airflow_provider_confluence.triggers.page_check import PageWait


#: Checks run in a pool of their own, so that slow answers (retries wait out Retry-After) never hold the event
#: loop's default executor, which every trigger of the triggerer shares.
CHECK_THREADS = 4
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _now() -> float:
    """The clock (looked up at call time: tests put a fake one here)."""
    return time.time()


def _sleep(seconds: float) -> Awaitable[None]:
    """How the trigger waits between checks (looked up at call time: tests replace it)."""
    return asyncio.sleep(seconds)


def _check_threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=CHECK_THREADS, thread_name_prefix="confluence-page-check")
        return _pool


class ConfluencePageTrigger(BaseTrigger):
    """Wait in the triggerer until a Confluence page exists (and has ``min_version`` and ``label``).

    :param confluence_conn_id: the ``confluence_oauth`` connection.
    :param page_id: the page's id; or ``title`` with ``space_key`` or ``space_id``.
    :param space_key: the key of the space holding ``title``.
    :param space_id: the numeric id of that space.
    :param title: the page's exact title.
    :param min_version: wait until the page's version number is at least this.
    :param label: wait until the page carries this label.
    :param poke_interval: seconds between two checks.
    """

    def __init__(
        self,
        *,
        confluence_conn_id: str = "confluence_default",
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        min_version: int | None = None,
        label: str | None = None,
        poke_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.confluence_conn_id = confluence_conn_id
        self.page_id = page_id
        self.space_key = space_key
        self.space_id = space_id
        self.title = title
        self.min_version = min_version
        self.label = label
        self.poke_interval = float(poke_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the JSON-able arguments (ids, title, label, interval; never a token)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "confluence_conn_id": self.confluence_conn_id,
                "page_id": self.page_id,
                "space_key": self.space_key,
                "space_id": self.space_id,
                "title": self.title,
                "min_version": self.min_version,
                "label": self.label,
                "poke_interval": self.poke_interval,
            },
        )

    def _wait(self) -> PageWait:
        from airflow_provider_confluence.triggers.page_check import PageWait

        return PageWait.build(
            page_id=self.page_id,
            space_key=self.space_key,
            space_id=self.space_id,
            title=self.title,
            min_version=self.min_version,
            label=self.label,
        )

    def _hook(self) -> ConfluenceOAuthHook:
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        return ConfluenceOAuthHook(confluence_conn_id=self.confluence_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, sleep ``poke_interval``, check again; yield one event when the page is there or on an error."""
        try:
            wait = self._wait()
            hook = self._hook()
            while True:
                loop = asyncio.get_running_loop()
                summary, reason, retry_at = await loop.run_in_executor(_check_threads(), wait.look, hook)
                if summary is not None:
                    self.log.info("%s", reason)
                    yield TriggerEvent({"status": "found", "page": summary})
                    return
                pause = self.poke_interval if retry_at is None else max(self.poke_interval, retry_at - _now())
                self.log.info("%s; checking again in %g s", reason, pause)
                await _sleep(pause)
        except ConfluenceError as exc:
            self.log.error("Stopped waiting for the Confluence page: %s", exc.message)
            yield TriggerEvent({"status": "error", **exc.to_event()})
