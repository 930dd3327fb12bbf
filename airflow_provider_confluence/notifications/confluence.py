"""``ConfluenceNotifier``: write a task's incident to Confluence from ``on_failure_callback`` and friends.

Built on Airflow's ``BaseNotifier`` (see https://airflow.apache.org/docs/apache-airflow/stable/howto/notifications.html).
A notifier runs inside a callback, so it never raises: a failure to write is logged (never with a token) and the
task keeps its own outcome and error.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.notifier import BaseNotifier

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError
from airflow_provider_confluence.operators._common import (
    check_choice,
    check_page_target,
    check_parent,
    check_space,
    given,
    hook_for,
    text_or_none,
)

__all__ = ["ConfluenceNotifier"]

#: The default entry: Markdown, so that an exception text with ``<`` or ``&`` is shown as written.
DEFAULT_MESSAGE = (
    "- `{{ ti.dag_id }}.{{ ti.task_id }}` run `{{ run_id }}`, try {{ ti.try_number }}"
    "{% if ti.map_index is not none and ti.map_index >= 0 %}, map index {{ ti.map_index }}{% endif %}"
    "{% if exception is defined and exception %}: {{ exception }}{% endif %}\n"
)
DEFAULT_TITLE = "Airflow incident"
REPRESENTATIONS = ("markdown", "storage")


def incident_key(context: Any) -> str:
    """What names one try of one task instance: ``dag_id/run_id/task_id/map_index/try_number``.

    A callback that runs twice for the same try gets the same key; the next try gets another.
    """
    ti = context.get("ti") or context.get("task_instance")
    if ti is not None:
        map_index = getattr(ti, "map_index", -1)
        map_index = -1 if map_index is None else map_index
        return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{map_index}/{ti.try_number}"
    dag_run = context.get("dag_run")  # a DAG-level callback
    dag = context.get("dag")
    dag_id = getattr(dag_run, "dag_id", None) or getattr(dag, "dag_id", "unknown")
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id") or "unknown"
    return f"{dag_id}/{run_id}/dag"


class ConfluenceNotifier(BaseNotifier):
    """Write an incident to Confluence: an entry appended to an incident-log page, or a page per incident.

    Use it as ``on_failure_callback``, ``on_retry_callback`` or ``on_success_callback`` (of a task or a DAG).
    Each try of a task instance is written once: a callback that runs twice for the same try writes nothing the
    second time (the appended entry starts with an invisible anchor naming the try; a page per incident carries
    the try in its title and an existing one is left alone). A failure to write is logged and never raised, so
    the task's own error is never hidden.

    Append to a log page: give ``page_id``, or ``space_key`` (or ``space_id``) and ``title``. A page per incident:
    give ``parent_id`` or ``parent_title``, and ``space_key`` (or ``space_id``); ``title`` is then the start of the
    new page's title, which ends with the try's key (``dag_id/run_id/task_id/map_index/try_number``).

    :param message: the entry or page body (templated; the callback's context, such as ``ti``, ``run_id`` and,
        for a failure, ``exception``).
    :param page_id: the incident-log page's id (templated).
    :param space_key: the space's key (templated).
    :param space_id: the space's numeric id (templated).
    :param title: the incident-log page's title, or the start of an incident page's title (templated).
    :param parent_id: create a page per incident under this page (templated).
    :param parent_title: create a page per incident under the page with this title in the space (templated).
    :param representation: ``markdown`` (default; converted to storage format) or ``storage``.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    """

    template_fields: Sequence[str] = (
        "message",
        "page_id",
        "space_key",
        "space_id",
        "title",
        "parent_id",
        "parent_title",
        "confluence_conn_id",
    )

    def __init__(
        self,
        *,
        message: str = DEFAULT_MESSAGE,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        parent_id: str | None = None,
        parent_title: str | None = None,
        representation: str = "markdown",
        confluence_conn_id: str = "confluence_default",
    ) -> None:
        super().__init__()
        check_choice("representation", representation, REPRESENTATIONS)
        check_parent(parent_id, parent_title)
        if given(parent_id) or given(parent_title):
            check_space(space_key, space_id)
            if given(page_id):
                raise ConfluenceConfigError(
                    "Give page_id (append to an incident-log page) or parent_id/parent_title (a page per incident), "
                    "not both: drop one of them."
                )
            if not (given(space_key) or given(space_id)):
                raise ConfluenceConfigError(
                    "A page per incident needs its space: give space_key or space_id with parent_id or parent_title."
                )
        else:
            check_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        if not given(message):
            raise ConfluenceConfigError("message is empty: say what to write about the incident.")
        self.message = message
        self.page_id = page_id
        self.space_key = space_key
        self.space_id = space_id
        self.title = title
        self.parent_id = parent_id
        self.parent_title = parent_title
        self.representation = representation
        self.confluence_conn_id = confluence_conn_id
        # BaseNotifier renders the fields in place: keep the templates, so every call renders its own context
        self._templates = {name: copy.deepcopy(getattr(self, name)) for name in self.template_fields}

    @property
    def per_incident(self) -> bool:
        """True when each incident gets its own page (a parent was given)."""
        return given(self.parent_id) or given(self.parent_title)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        for name, template in self._templates.items():
            setattr(self, name, copy.deepcopy(template))
        super().render_template_fields(context, jinja_env)

    def __call__(self, *args: Any) -> None:
        """Run as a callback: render and write, logging (never raising) any failure."""
        try:
            super().__call__(*args)
        except Exception as exc:  # a bad template, for example: the callback must not raise
            self._log_failure(exc)

    def notify(self, context: Any) -> None:
        """Write the incident (synchronously); any failure is logged, never raised."""
        try:
            self._write(context)
        except Exception as exc:
            self._log_failure(exc)

    async def async_notify(self, context: Any) -> None:
        """Write the incident from the triggerer (Airflow 3): the synchronous write, in a thread."""
        import asyncio

        await asyncio.to_thread(self.notify, context)

    def _write(self, context: Any) -> dict[str, Any]:
        from airflow_provider_confluence.content.page_spec import PageSpec

        key = incident_key(context)
        space_key, space_id = text_or_none(self.space_key), text_or_none(self.space_id)
        if self.per_incident:
            title = f"{text_or_none(self.title) or DEFAULT_TITLE} {key}"
            spec = PageSpec.build(
                space_key=space_key,
                space_id=space_id,
                title=title,
                body=str(self.message),
                parent_id=text_or_none(self.parent_id),
                parent_title=text_or_none(self.parent_title),
                representation=self.representation,
                if_exists="skip",
            )
            published = hook_for(str(self.confluence_conn_id)).publish(spec)
            self.log.info("Incident %s: page %s %s.", key, published.page.get("id"), published.action)
            return published.page
        from airflow_provider_confluence.operators._common import find_target_page

        spec = PageSpec.build(
            body=str(self.message), representation=self.representation, mode="append", message=f"Airflow incident {key}"
        )
        hook = hook_for(str(self.confluence_conn_id))
        page = find_target_page(hook, page_id=self.page_id, space_key=space_key, space_id=space_id, title=self.title)
        updated = hook.update_page(spec, page_id=str(page["id"]), append_key=key)
        self.log.info(
            "Incident %s: written to page %s (version %s).",
            key,
            updated.get("id"),
            (updated.get("version") or {}).get("number"),
        )
        return updated

    def _log_failure(self, exc: BaseException) -> None:
        # a ConfluenceError's message is written to carry no secret; any other text is cleaned of token-like parts
        if isinstance(exc, ConfluenceError):
            detail = exc.message
        else:
            from airflow_provider_confluence.client.responses import redact

            detail = redact(str(exc))[:300]
        self.log.error(
            "The Confluence notification was not written (%s: %s). The task's own outcome is unchanged.",
            type(exc).__name__,
            detail,
        )
