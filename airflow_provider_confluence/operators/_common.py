"""Helpers shared by the Confluence operators: argument checks, finding the target page, the page link.

Operators import this module at DAG-parse time: it imports nothing heavy (no ``requests``, no hook).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceNotFound, ConfluencePageMissing

if TYPE_CHECKING:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

#: Log a progress line every this many results.
PROGRESS_EVERY = 1000

UPSERT_HINT = "Use ConfluenceCreatePageOperator with if_exists='update' for an upsert (create or update)."

#: The arguments that name a page (templated wherever an operator takes them): its id, or a space and a title.
PAGE_TARGET_FIELDS: tuple[str, ...] = ("page_id", "space_key", "space_id", "title")
#: The arguments that name a parent page (templated).
PARENT_FIELDS: tuple[str, ...] = ("parent_id", "parent_title")
#: The connection argument of every operator (templated).
CONN_ID_FIELD = "confluence_conn_id"


class ConfluenceOperatorMixin:
    """What every Confluence operator shares: its colour in the UI and the hook of its connection.

    Put it before ``BaseOperator`` in the bases; the operator sets ``confluence_conn_id`` in its constructor.
    """

    ui_color = "#deebff"
    confluence_conn_id: str

    def confluence_hook(self) -> ConfluenceOAuthHook:
        """The hook of ``confluence_conn_id`` (as rendered), imported only when a task runs."""
        return hook_for(self.confluence_conn_id)


class PageTargetMixin(ConfluenceOperatorMixin):
    """The operators that act on one page, named by :data:`PAGE_TARGET_FIELDS`: ``page_id``, or ``title`` in
    ``space_key``/``space_id``; checked in the constructor and again after templating."""

    page_id: str | None
    space_key: str | None
    space_id: str | None
    title: str | None

    def set_page_target(
        self, *, page_id: str | None, space_key: str | None, space_id: str | None, title: str | None
    ) -> None:
        """Check the page's name (:class:`ConfluenceConfigError` at DAG parse time) and keep it."""
        check_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        self.page_id = page_id
        self.space_key = space_key
        self.space_id = space_id
        self.title = title

    def find_target(
        self, hook: ConfluenceOAuthHook, *, body_format: str | None = None, hint: str = ""
    ) -> dict[str, Any]:
        """The page the rendered target names (see :func:`find_target_page`)."""
        return find_target_page(
            hook,
            page_id=self.page_id,
            space_key=self.space_key,
            space_id=self.space_id,
            title=self.title,
            body_format=body_format,
            hint=hint,
        )


def hook_for(conn_id: str) -> ConfluenceOAuthHook:
    """The hook of ``conn_id``, imported only when a task runs (it loads ``requests``)."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    return ConfluenceOAuthHook(confluence_conn_id=conn_id)


def given(value: object) -> bool:
    """True for a value that says something: not None and not a blank string."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def text_or_none(value: object) -> str | None:
    """A rendered id or title as a stripped string, or None when it is absent or blank."""
    return str(value).strip() if given(value) else None


def as_list(value: str | Iterable[Any] | None) -> list[str] | None:
    """Accept a list, a comma-separated string, or a list rendered as text by a template (``['a', 'b']``)."""
    if value is None:
        return None
    if isinstance(value, str):
        rendered = _rendered_list(value)
        items = rendered if rendered is not None else value.split(",")
    else:
        items = list(value)
    cleaned = [str(item).strip() for item in items if str(item).strip()]
    return cleaned or None


def _rendered_list(text: str) -> list[Any] | None:
    """The list a template rendered as text (JSON, or Python's ``['a', 'b']``), None when it is not one."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    import ast
    import json

    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(parsed, (list, tuple)):
            return list(parsed)
    return None


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """Refuse an option value that is not one of ``allowed``."""
    if value not in allowed:
        raise ConfluenceConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}.")


def check_positive(name: str, value: int | None, *, maximum: int | None = None, none_means: str = "") -> None:
    """Refuse a count that is not a positive integer (at most ``maximum``)."""
    if value is None and none_means:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (maximum and value > maximum):
        limit = f" between 1 and {maximum}" if maximum else " (1 or more)"
        alternative = f", or None for {none_means}" if none_means else ""
        raise ConfluenceConfigError(f"{name}={value!r} must be a whole number{limit}{alternative}.")


def check_space(space_key: object, space_id: object) -> None:
    """At most one of ``space_key`` and ``space_id``."""
    if given(space_key) and given(space_id):
        raise ConfluenceConfigError("Give space_key or space_id, not both.")


def check_page_target(*, page_id: object, space_key: object, space_id: object, title: object) -> None:
    """Exactly one way to name a page: ``page_id``, or a space (``space_key`` or ``space_id``) and ``title``."""
    check_space(space_key, space_id)
    has_space = given(space_key) or given(space_id)
    if given(page_id):
        if has_space or given(title):
            raise ConfluenceConfigError(
                "Give page_id, or a space (space_key or space_id) and title, not both: they could name different pages."
            )
        return
    if not (has_space and given(title)):
        raise ConfluenceConfigError("Say which page: give page_id, or title together with space_key or space_id.")


def check_parent(parent_id: object, parent_title: object) -> None:
    """At most one of ``parent_id`` and ``parent_title``."""
    if given(parent_id) and given(parent_title):
        raise ConfluenceConfigError("Give parent_id or parent_title, not both: drop one of them.")


def find_target_page(
    hook: ConfluenceOAuthHook,
    *,
    page_id: object,
    space_key: object,
    space_id: object,
    title: object,
    body_format: str | None = None,
    hint: str = "",
) -> dict[str, Any]:
    """The page named by id or by space and title (checked again after templating).

    :raises ConfluenceNotFound: Confluence answered 404 for ``page_id`` (no such page, or the connection's user
        may not see it); the message names the page and, with ``hint``, what to do.
    :raises ConfluencePageMissing: no current page has ``title`` in the space (a lookup, not a 404).
    """
    check_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
    pid = text_or_none(page_id)
    if pid is not None:
        try:
            return hook.get_page(pid, body_format=body_format)
        except ConfluenceNotFound as exc:
            raise ConfluenceNotFound(
                exc.status_code or 404,
                exc.method,
                exc.url,
                exc.code,
                f"There is no page with id {pid}, or the connection's user may not see it: check page_id (the "
                f"number after /pages/ in the page's URL). {hint}".strip(),
                trace_id=exc.trace_id,
                headers=exc.headers,
            ) from exc
    key, sid, name = text_or_none(space_key), text_or_none(space_id), str(title)
    page = hook.find_page(space_key=key, space_id=sid, title=name, body_format=body_format)
    if page is None:
        space = f"space {key}" if key else f"space id {sid}"
        raise ConfluencePageMissing(
            f"There is no current page titled {name!r} in {space} (or the connection's user may not see it). "
            f"Check the title and space. {hint}".strip(),
            title=name,
            space_key=key,
            space_id=sid,
        )
    return page


def persist_link(context: Any, url: str | None) -> None:
    """Store the "Confluence page" extra link of this task instance (nothing outside a task run)."""
    from airflow_provider_confluence.links.confluence import ConfluencePageLink

    if context is not None and hasattr(context, "get") and context.get("ti") is not None:
        ConfluencePageLink.persist(context, url)


def run_key(context: Any) -> str | None:
    """What names this task run (``dag/task/run_id``, plus the map index of a mapped task): the same for every
    try of the run, different for the next run. None outside a task run."""
    ti = context.get("ti") if context is not None and hasattr(context, "get") else None
    if ti is None:
        return None
    key = f"{ti.dag_id}/{ti.task_id}/{ti.run_id}"
    map_index = getattr(ti, "map_index", -1)
    return key if map_index is None or map_index < 0 else f"{key}/{map_index}"


def changed_version(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """True when ``after`` is a newer version than ``before`` (a write made a new version)."""
    return _version(after) != _version(before)


def _version(page: dict[str, Any]) -> int | None:
    number = (page.get("version") or {}).get("number")
    return int(number) if number is not None else None
