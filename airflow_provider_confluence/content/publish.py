"""Create or update a page without ever overwriting anything silently.

* :func:`publish` (and :func:`publish_page`, which returns only the page): create the page, or apply ``if_exists`` to the existing page of the same title: ``fail``
  names it, ``skip`` keeps it, ``update`` writes a new version. A lost race (a sibling created the page between
  our check and our create) is resolved by reading the page again, not by creating a second one.
* :func:`update_page_body`: write a new version of a page by id, ``replace`` or ``append``; an unchanged page
  makes no new version, and a 409 (someone wrote a version meanwhile) re-reads the page and tries once more.
* :func:`resolve_parent_id`: the parent page by id or by title.

Each takes a :class:`~airflow_provider_confluence.content.page_spec.PageSpec`, whose body was converted and whose
options and label names were checked once, when it was built, before anything is written: a bad label never
leaves a half-done page behind. Labels are added after the page is written, and only those it lacks.

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.content.changes import current_body, is_unchanged
from airflow_provider_confluence.content.page_spec import (
    IF_EXISTS,
    REPRESENTATIONS,
    STATUSES,
    UPDATE_MODES,
    PageSpec,
    check_page_options,
    update_read_format,
)
from airflow_provider_confluence.content.storage_format import escape_text
from airflow_provider_confluence.content.summaries import page_summary, page_url
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceConflict,
    ConfluencePageExists,
    ConfluencePageMissing,
    ConfluenceRateLimited,
)

if TYPE_CHECKING:  # the operators import this module at DAG parse time: keep requests out of it
    from airflow_provider_confluence.client.confluence import ConfluenceClient

__all__ = [
    "IF_EXISTS",
    "PageSpec",
    "Published",
    "REPRESENTATIONS",
    "STATUSES",
    "UPDATE_MODES",
    "check_page_options",
    "is_unchanged",
    "page_summary",
    "page_url",
    "publish",
    "publish_page",
    "resolve_parent_id",
    "update_page_body",
]

log = logging.getLogger(__name__)


def _is_duplicate_title(exc: ConfluenceApiError) -> bool:
    return exc.status_code == 400 and "already exists" in exc.detail.lower()


def _add_labels(
    client: ConfluenceClient,
    page: dict[str, Any],
    labels: list[str],
    *,
    written: str = "",
    current: list[str] | None = None,
) -> None:
    """Add the missing labels (``current``: the page's labels when known, as for a page just created: none). When
    the quota refuses them after the page was ``written`` (``created`` or ``updated``), the
    :class:`ConfluenceRateLimited` says so in its ``progress`` (``page_id``, ``action``): a resumed task then
    finishes the labels and reports what was written, and never writes the page again."""
    if not labels:
        return
    try:
        client.add_page_labels(str(page["id"]), labels, current=current)
    except ConfluenceRateLimited as exc:
        if written:
            exc.with_progress(page_id=str(page["id"]), action=written)
        raise


@dataclass(frozen=True)
class Published:
    """What :func:`publish` did: the page as Confluence answered it, and ``action``, one of
    ``created``, ``updated``, ``unchanged`` (``if_exists="update"`` with nothing to change) or ``skipped``."""

    page: dict[str, Any]
    action: str

    @property
    def changed(self) -> bool:
        """True when a page or a new version was written."""
        return self.action in ("created", "updated")


def publish_page(client: ConfluenceClient, spec: PageSpec | None = None, /, **fields: Any) -> dict[str, Any]:
    """:func:`publish`, returning only the page."""
    return publish(client, spec, **fields).page


def publish(client: ConfluenceClient, spec: PageSpec | None = None, /, **fields: Any) -> Published:
    """Create the page, or apply ``spec.if_exists`` to the existing page with this title in the space.

    :param spec: the page, checked (:meth:`PageSpec.build`), with its space's numeric ``space_id``. Instead of a
        spec, the keyword arguments of :meth:`PageSpec.build` (``space_id=``, ``title=``, ``body=``, ...) are
        accepted, and a spec is built from them.
    :returns: the page as Confluence answered it (created, existing or updated), and what was done.
    :raises ConfluencePageExists: the page exists and ``if_exists`` is ``fail`` (nothing is changed, no label is
        added).
    :raises ConfluenceConfigError: for a bad option, body or label name, or no title or space id, before
        anything is sent.
    :raises ConfluencePageMissing: no page titled ``parent_title`` in the space (nothing is created).
    """
    spec = PageSpec.of(spec, fields)
    space_id, title = spec.space_id, spec.title
    if not space_id:
        raise ConfluenceConfigError("Say which space the page goes in: give its space_id (resolve a key first).")
    if not title:
        raise ConfluenceConfigError("The page has no title: give title.")
    wanted = list(spec.labels)
    parent_id = resolve_parent_id(client, space_id=space_id, parent_id=spec.parent_id, parent_title=spec.parent_title)
    # if_exists=update compares bodies: the lookup brings the body along, so the update need not read it again
    read_format = update_read_format(spec.representation) if spec.if_exists == "update" else None
    existing = client.find_page(space_id=space_id, title=title, body_format=read_format)
    if existing is None:
        try:
            page = client.create_page(
                space_id=space_id,
                title=title,
                body=spec.body,
                parent_id=parent_id,
                representation=spec.representation,
                status=spec.status,
            )
        except ConfluenceApiError as exc:
            if not _is_duplicate_title(exc):
                raise
            existing = client.find_page(space_id=space_id, title=title, body_format=read_format)
            if existing is None:
                raise
            log.info("Another writer created page %r meanwhile; applying if_exists=%s to it.", title, spec.if_exists)
        else:
            log.info("Created page %s (%r) in space %s.", page.get("id"), title, space_id)
            _add_labels(client, page, wanted, written="created", current=[])  # a new page has no labels
            return Published(page, "created")
    if spec.if_exists == "fail":
        raise ConfluencePageExists(
            f"A page titled {title!r} already exists in space {space_id} (id {existing.get('id')}, "
            f"{page_url(existing) or 'no URL'}). Nothing was changed. Use if_exists='skip' to keep it or "
            "if_exists='update' to write a new version.",
            title=title,
            space_id=str(space_id),
            page_id=str(existing.get("id")),
            page_url=page_url(existing),
        )
    if spec.if_exists == "skip":
        log.info("Page %r exists (id %s); if_exists=skip leaves it as it is.", title, existing.get("id"))
        page = client.get_page(str(existing["id"]))
        _add_labels(client, page, wanted)
        return Published(page, "skipped")
    new_version = spec.with_changes(mode="replace", message=None, parent_id=None, parent_title=None)
    page = update_page_body(client, new_version, page_id=str(existing["id"]), read=existing)
    return Published(page, "updated" if _version(page) != _version(existing) else "unchanged")


def update_page_body(
    client: ConfluenceClient,
    spec: PageSpec | None = None,
    /,
    *,
    page_id: str,
    append_key: str | None = None,
    read: dict[str, Any] | None = None,
    version_mark: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Write a new version of a page, unless it would be the same as the current one (:func:`.changes.is_unchanged`).

    ``replace`` writes the body as the page's body; no new version is made when the body, title, status and
    parent are already the page's. ``append`` (storage only) writes the current storage body followed by the
    body. With an ``append_key`` (the operator passes one per task run), the appended part starts with an
    invisible anchor naming the key, and nothing is written when the page already holds that anchor: a retried
    or re-run task appends once, while another run appends the same text again. Without a key, every call
    appends. A 409 (someone else wrote a version meanwhile) re-reads the page and tries once more.

    :param spec: the new version, checked (:meth:`PageSpec.build`): its body (or the part to append), ``title``
        (None keeps the current one), ``representation``, ``status``, ``mode``, ``message`` (the version comment),
        ``labels`` (only missing ones are added) and ``parent_id`` (move the page under this parent, same space).
        Instead of a spec, the keyword arguments of :meth:`PageSpec.build` are accepted.
    :param page_id: the page's id.
    :param append_key: with ``mode="append"``, what identifies this append (such as the task run).
    :param read: the page as the caller has just read it, with its body in the format this update reads
        (:func:`~airflow_provider_confluence.content.page_spec.update_read_format`): the first attempt uses it instead of reading the page again. Without that body
        (or None), the page is read.
    :param version_mark: what identifies the body's source (see :func:`.changes.is_unchanged`); give it inside
        ``spec.message`` too, so that the version written carries it.
    :raises ConfluenceConfigError: for a bad option or label name, before anything is sent.
    :raises ConfluenceConflict: when the page changed again during the retry.
    """
    spec = PageSpec.of(spec, fields)
    if spec.parent_title is not None:
        raise ConfluenceConfigError(
            f"Moving page {page_id} needs its new parent's id: resolve parent_title {spec.parent_title!r} first "
            "(ConfluenceOAuthHook.resolve_parent_id), or give parent_id."
        )
    representation, status, mode, title = spec.representation, spec.status, spec.mode, spec.title
    parent_id = spec.parent_id
    wanted = list(spec.labels)
    read_format = update_read_format(representation)
    for attempt in (1, 2):
        if attempt == 1 and read is not None and current_body(read, read_format) is not None:
            current = read
        else:
            current = client.get_page(page_id, body_format=read_format)
        new_title = current.get("title") if title is None else title
        stored = current_body(current, read_format)
        if mode == "append":
            marker = append_marker(append_key) if append_key else ""
            new_body = stored or ""
            if not (marker and marker in new_body):
                new_body += marker + spec.body
        else:
            new_body = spec.body
        if is_unchanged(
            current,
            body=new_body,
            title=new_title,
            status=status,
            parent_id=parent_id,
            fmt=read_format,
            version_mark=version_mark,
        ):
            log.info("Page %s already has this body and title; no new version was made.", page_id)
            _add_labels(client, current, wanted)
            return current
        version = int((current.get("version") or {}).get("number") or 0) + 1
        try:
            page = client.update_page(
                page_id=page_id,
                title=str(new_title),
                body=new_body,
                version=version,
                representation=representation,
                status=status,
                message=spec.message,
                parent_id=parent_id,
            )
        except ConfluenceConflict:
            if attempt == 2:
                raise
            log.warning(
                "Page %s got version %s from someone else while we wrote it (409); reading it again and "
                "writing over it (mode=%s).",
                page_id,
                version,
                mode,
            )
            continue
        log.info("Updated page %s to version %s (%s).", page_id, version, mode)
        _add_labels(client, page, wanted, written="updated")
        return page
    raise AssertionError("unreachable")


def append_marker(key: str) -> str:
    """The invisible anchor that starts an appended part: Confluence's anchor macro, named after ``key``."""
    name = escape_text(f"airflow-append:{key}")
    return f'<ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">{name}</ac:parameter></ac:structured-macro>'


def resolve_parent_id(
    client: ConfluenceClient, *, space_id: str, parent_id: str | None = None, parent_title: str | None = None
) -> str | None:
    """The id of the parent page: ``parent_id`` as given, or the page titled ``parent_title`` in the space.

    Titles are unique within a space, so a title names at most one page; only an exact title matches.

    :param space_id: the space's numeric id.
    :param parent_id: the parent's id.
    :param parent_title: the parent's exact title.
    :returns: the parent's id, or None when neither is given (the page goes under the space's home page).
    :raises ConfluenceConfigError: when both are given.
    :raises ConfluencePageMissing: when no page in the space has this title.
    """
    parent_id = str(parent_id).strip() if parent_id is not None and str(parent_id).strip() else None
    parent_title = parent_title if parent_title and parent_title.strip() else None
    if parent_id and parent_title:
        raise ConfluenceConfigError(
            f"Give either parent_id ({parent_id!r}) or parent_title ({parent_title!r}), not both."
        )
    if parent_title is None:
        return parent_id
    parent = client.find_page(space_id=space_id, title=parent_title)
    if parent is None or parent.get("id") is None:
        raise ConfluencePageMissing(
            f"No page titled {parent_title!r} in space {space_id} to use as the parent. Check the title (it must "
            "match exactly, including case), create the parent page first, or pass parent_id instead.",
            title=parent_title,
            space_id=str(space_id),
        )
    log.info("Parent page %r in space %s is page %s.", parent_title, space_id, parent["id"])
    return str(parent["id"])


def _version(page: dict[str, Any]) -> Any:
    return (page.get("version") or {}).get("number")
