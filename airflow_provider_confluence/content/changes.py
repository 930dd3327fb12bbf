"""Whether a page write would change anything: :func:`is_unchanged`, the one test that every write
(:func:`.publish.update_page_body`) and every dry run (the mirror's) uses.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["current_body", "is_unchanged"]


def is_unchanged(
    current: dict[str, Any],
    *,
    body: str,
    title: object,
    status: str,
    parent_id: str | None,
    fmt: str,
    version_mark: str | None = None,
) -> bool:
    """True when writing ``body``, ``title``, ``status`` and ``parent_id`` (None: keep the parent) over the page
    ``current`` (read with its body in ``fmt``) would make no difference: the one test of "unchanged" that every
    write and every dry run uses.

    Bodies are compared as stored. Confluence may store a body otherwise than it was sent (it adds ids to macros,
    for one), so a writer that knows where its body comes from gives a ``version_mark`` of that source and writes
    it into the version message: a page whose current version message holds that mark is unchanged
    whatever its stored body (with the same title, status and parent). Someone's edit in Confluence makes a
    version without it, and the body is compared again.
    """
    same_parent = not parent_id or str(current.get("parentId")) == str(parent_id)
    same_fields = title == current.get("title") and current.get("status", status) == status and same_parent
    if not same_fields:
        return False
    if version_mark and version_mark in str((current.get("version") or {}).get("message") or ""):
        return True
    return body == current_body(current, fmt)


def current_body(page: dict[str, Any], representation: str) -> str | None:
    """The page's body in ``representation`` as read, or None when the answer has none."""
    body = (page.get("body") or {}).get(representation) or {}
    value = body.get("value")
    return str(value) if value is not None else None
