"""``ConfluencePageSensor``: wait until a Confluence page exists, optionally at a version and with a label."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError
from airflow_provider_confluence.links.confluence import ConfluencePageLink

if TYPE_CHECKING:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    from airflow_provider_confluence.triggers.page_check import PageWait


class ConfluencePageSensor(BaseSensorOperator):
    """Wait until a page exists: by ``page_id``, or by ``title`` in ``space_key``/``space_id``.

    Optionally wait until its version is at least ``min_version`` and/or until it carries ``label``. Works in
    ``poke`` and ``reschedule`` mode, and deferred to :class:`~airflow_provider_confluence.triggers.confluence.
    ConfluencePageTrigger` with ``deferrable=True``. A missing page (404) means "not yet", and so do passing
    failures (timeouts, 5xx, 429 after the client's retries); an exhausted hourly rate limit reschedules the
    task (``reschedule`` mode) or makes the trigger sleep (``deferrable``) until it resets; bad arguments, a missing space, authorization and
    scope errors fail the task at once.

    :param page_id: the page's id (templated).
    :param space_key: the key of the space holding ``title`` (templated).
    :param space_id: the numeric id of that space (templated).
    :param title: the page's exact title (templated).
    :param min_version: wait until the page's version number is at least this (templated).
    :param label: wait until the page carries this label (templated, as the attribute ``page_label``: ``label``
        is taken by Airflow; compared lower-cased).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default: ``[operators]
        default_deferrable``).
    :returns: the page's summary ``{"id", "title", "space_id", "version", "url"}`` (pushed to XCom).
    """

    template_fields: Sequence[str] = (
        "page_id",
        "space_key",
        "space_id",
        "title",
        "min_version",
        "page_label",
        "confluence_conn_id",
    )
    ui_color = "#deebff"
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        min_version: int | str | None = None,
        label: str | None = None,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(page_id) == bool(title):
            raise ConfluenceConfigError(
                "Give ConfluencePageSensor either page_id, or title with space_key or space_id."
            )
        if title and bool(space_key) == bool(space_id):
            raise ConfluenceConfigError("A title needs its space: give exactly one of space_key and space_id.")
        if page_id and (space_key or space_id):
            raise ConfluenceConfigError("page_id identifies the page on its own: drop space_key/space_id.")
        self.page_id = page_id
        self.space_key = space_key
        self.space_id = space_id
        self.title = title
        self.min_version = min_version
        self.page_label = label  # ``self.label`` is BaseOperator's (the task's label in its group)
        self.confluence_conn_id = confluence_conn_id
        self.deferrable = deferrable

    def _wait(self) -> PageWait:
        from airflow_provider_confluence.triggers.page_check import PageWait

        return PageWait.build(
            page_id=self.page_id,
            space_key=self.space_key,
            space_id=self.space_id,
            title=self.title,
            min_version=self.min_version,
            label=self.page_label,
        )

    def _hook(self) -> ConfluenceOAuthHook:
        """One hook per try: pokes reuse its HTTP session and the access token it holds."""
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        hook = getattr(self, "_confluence_hook", None)
        if hook is None or hook.confluence_conn_id != self.confluence_conn_id:
            hook = ConfluenceOAuthHook(confluence_conn_id=self.confluence_conn_id)
            self._confluence_hook = hook
        return hook

    def _done(self, context: Any, summary: dict[str, Any]) -> dict[str, Any]:
        ConfluencePageLink.persist(context, summary.get("url"))
        return summary

    def poke(self, context: Any) -> PokeReturnValue:
        """One check: done with the page's summary, or not yet (the reason is logged).

        In ``reschedule`` mode, a look refused by an exhausted rate limit reschedules the task to the moment the
        limit resets (``AirflowRescheduleException``), not to the next ``poke_interval``.
        """
        summary, reason, retry_at = self._wait().look(self._hook())
        self.log.info("%s", reason)
        if summary is None and retry_at is not None and self.reschedule:
            from airflow.exceptions import AirflowRescheduleException

            when = datetime.fromtimestamp(max(retry_at, time.time() + self.poke_interval), tz=UTC)
            self.log.info("Rescheduling to %s, when the rate limit resets.", when.isoformat(timespec="seconds"))
            raise AirflowRescheduleException(when)
        if summary is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._done(context, summary))

    def execute(self, context: Any) -> Any:
        """Poke (or reschedule); or, deferrable, check once and defer to the trigger when not there yet."""
        if not self.deferrable:
            return super().execute(context)
        wait = self._wait()
        summary, reason = wait.check(self._hook())
        self.log.info("%s", reason)
        if summary is not None:
            return self._done(context, summary)
        from airflow_provider_confluence.triggers.confluence import ConfluencePageTrigger

        self.log.info("Deferring: the triggerer checks every %s s.", self.poke_interval)
        self.defer(
            trigger=ConfluencePageTrigger(
                confluence_conn_id=self.confluence_conn_id, poke_interval=self.poke_interval, **wait.to_dict()
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout is not None else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: return the page's summary, or raise the error the trigger met."""
        if not isinstance(event, dict) or event.get("status") != "found" or not isinstance(event.get("page"), dict):
            raise ConfluenceError.from_event(event)
        return self._done(context, event["page"])
