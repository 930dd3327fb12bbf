"""Create a page, or decide what to do with an existing page of the same title (``if_exists``).

Nothing is overwritten silently: ``fail`` names the existing page, ``update`` writes a new version (never
touching the old ones) and skips it when the body is unchanged, and a lost race (a sibling created the page
between our check and our create) is resolved by reading the page again, not by creating a second one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceConflict,
)

if TYPE_CHECKING:  # the operators import this module at DAG parse time: keep requests out of it
    from airflow_provider_confluence.client import ConfluenceClient

log = logging.getLogger(__name__)

IF_EXISTS = ("fail", "skip", "update")
REPRESENTATIONS = ("storage", "atlas_doc_format", "wiki")
STATUSES = ("current", "draft")


def check_page_options(*, if_exists: str, representation: str, status: str) -> None:
    """Refuse unknown option values early (at DAG parse time when called from an operator's constructor)."""
    for name, value, allowed in (
        ("if_exists", if_exists, IF_EXISTS),
        ("representation", representation, REPRESENTATIONS),
        ("status", status, STATUSES),
    ):
        if value not in allowed:
            raise ConfluenceConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}.")


def page_url(page: dict[str, Any], site_url: str | None = None) -> str | None:
    """The address people open: ``_links.base + _links.webui`` (FACTS.md section 6)."""
    links = page.get("_links") or {}
    webui = links.get("webui")
    if not webui:
        return None
    base = links.get("base") or (f"{site_url.rstrip('/')}/wiki" if site_url else "")
    return f"{base}{webui}"


def page_summary(page: dict[str, Any], site_url: str | None = None) -> dict[str, Any]:
    """The JSON-able result operators return for a page."""
    return {
        "id": str(page.get("id")),
        "title": page.get("title"),
        "space_id": str(page.get("spaceId")) if page.get("spaceId") is not None else None,
        "version": (page.get("version") or {}).get("number"),
        "url": page_url(page, site_url),
    }


def _is_duplicate_title(exc: ConfluenceApiError) -> bool:
    return exc.status_code == 400 and "already exists" in exc.detail.lower()


def publish_page(
    client: ConfluenceClient,
    *,
    space_id: str,
    title: str,
    body: str,
    parent_id: str | None = None,
    representation: str = "storage",
    status: str = "current",
    if_exists: str = "fail",
) -> dict[str, Any]:
    """Create the page, or apply ``if_exists`` to the existing page with this title in the space.

    :returns: the page as Confluence answered it (created, existing or updated).
    :raises ConfluenceConflict: the page exists and ``if_exists`` is ``fail``.
    """
    check_page_options(if_exists=if_exists, representation=representation, status=status)
    existing = client.find_page(space_id=space_id, title=title)
    if existing is None:
        try:
            page = client.create_page(
                space_id=space_id,
                title=title,
                body=body,
                parent_id=parent_id,
                representation=representation,
                status=status,
            )
            log.info("Created page %s (%r) in space %s.", page.get("id"), title, space_id)
            return page
        except ConfluenceApiError as exc:
            if not _is_duplicate_title(exc):
                raise
            existing = client.find_page(space_id=space_id, title=title)
            if existing is None:
                raise
            log.info("Another writer created page %r meanwhile; applying if_exists=%s to it.", title, if_exists)
    if if_exists == "fail":
        raise ConfluenceConflict(
            409,
            "POST",
            "/wiki/api/v2/pages",
            "PAGE_EXISTS",
            f"A page titled {title!r} already exists in space {space_id} (id {existing.get('id')}, "
            f"{page_url(existing) or 'no URL'}). Nothing was changed. Use if_exists='skip' to keep it or "
            "if_exists='update' to write a new version.",
        )
    if if_exists == "skip":
        log.info("Page %r exists (id %s); if_exists=skip leaves it as it is.", title, existing.get("id"))
        return client.get_page(str(existing["id"]))
    return update_page_body(client, page_id=str(existing["id"]), title=title, body=body,
                            representation=representation, status=status)


def update_page_body(
    client: ConfluenceClient,
    *,
    page_id: str,
    title: str,
    body: str,
    representation: str = "storage",
    status: str = "current",
) -> dict[str, Any]:
    """Write ``body`` as a new version of the page, unless it is already the page's body.

    A 409 (someone else wrote a version meanwhile) re-reads the page and tries once more.
    """
    for attempt in (1, 2):
        current = client.get_page(page_id, body_format=representation if representation != "wiki" else "storage")
        if _current_body(current, representation) == body and current.get("title") == title:
            log.info("Page %s already has this body; no new version was made.", page_id)
            return current
        version = int((current.get("version") or {}).get("number") or 0) + 1
        try:
            page = client.update_page(
                page_id=page_id, title=title, body=body, version=version,
                representation=representation, status=status,
            )
        except ConfluenceConflict:
            if attempt == 2:
                raise
            log.info("Page %s changed while we wrote it (409); reading it again.", page_id)
            continue
        log.info("Updated page %s to version %s.", page_id, version)
        return page
    raise AssertionError("unreachable")


def _current_body(page: dict[str, Any], representation: str) -> str | None:
    body = (page.get("body") or {}).get(representation) or {}
    value = body.get("value")
    return str(value) if value is not None else None
