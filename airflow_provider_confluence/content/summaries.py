"""JSON-able summaries of Confluence objects: what operators return and push to XCom.

Every function here is total: odd or missing fields (a number where a string was expected, no ``_links``, no
``version``) give ``None`` for that key, never an exception, since Confluence's answers vary between v1 and v2
and between endpoints. The URL people open is ``_links.base + _links.webui`` (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/); when an
object carries no ``base``, ``{site_url}/wiki`` is used.

This module imports nothing from Airflow and does no I/O.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["attachment_summary", "page_summary", "page_url", "search_result_summary", "tree_node_summary"]

#: Longest excerpt kept in a search result summary (Confluence's own are about 300 characters).
MAX_EXCERPT = 500

_HIGHLIGHT = re.compile(r"@@@(?:end)?hl@@@")
_SPACES = re.compile(r"\s+")
_CONTAINER_ID = re.compile(r"/content/([^/?#]+)/?$")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return None
    return str(value)


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _wiki_base(links: Mapping[str, Any], site_url: str | None) -> str:
    base = _text(links.get("base"))
    if base:
        return base.rstrip("/")
    return f"{site_url.rstrip('/')}/wiki" if site_url else ""


def _join(base: str, value: Any) -> str | None:
    link = _text(value)
    if not link:
        return None
    if link.lower().startswith(("https://", "http://")):
        return link
    if not base:
        return None
    return f"{base}{link if link.startswith('/') else '/' + link}"


def page_url(page: Mapping[str, Any], site_url: str | None = None) -> str | None:
    """The address people open: ``_links.base + _links.webui`` (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/).

    :param page: a page object (v2).
    :param site_url: the Confluence site, used when the page has no ``_links.base``.
    """
    links = _dict(_dict(page).get("_links"))
    webui = _text(links.get("webui"))
    if not webui:
        return None
    return f"{_wiki_base(links, site_url)}{webui}"


def page_summary(page: Mapping[str, Any], site_url: str | None = None) -> dict[str, Any]:
    """``{"id", "title", "space_id", "version", "url"}`` of a page (the result page operators return).

    :param page: a page object (v2).
    :param site_url: the Confluence site, used when the page has no ``_links.base``.
    """
    page = _dict(page)
    return {
        "id": _text(page.get("id")),
        "title": _text(page.get("title")),
        "space_id": _text(page.get("spaceId")),
        "version": _number(_dict(page.get("version")).get("number")),
        "url": page_url(page, site_url),
    }


def attachment_summary(attachment: Mapping[str, Any], site_url: str | None = None) -> dict[str, Any]:
    """``{"id", "title", "page_id", "media_type", "file_size", "version", "url", "download_url"}``.

    Reads both shapes: v2 (``pageId``, ``mediaType``, ``fileSize``, ``downloadLink``) and v1, as the upload
    answers (``extensions.mediaType``, ``extensions.fileSize``, ``container.id`` or ``_expandable.container``).

    :param attachment: an attachment object (v1 or v2).
    :param site_url: the Confluence site, used when the object has no ``_links.base``.
    """
    att = _dict(attachment)
    links = _dict(att.get("_links"))
    extensions = _dict(att.get("extensions"))
    metadata = _dict(att.get("metadata"))
    page_id = _text(att.get("pageId")) or _text(_dict(att.get("container")).get("id"))
    if page_id is None:
        match = _CONTAINER_ID.search(_text(_dict(att.get("_expandable")).get("container")) or "")
        page_id = match.group(1) if match else None
    base = _wiki_base(links, site_url)
    return {
        "id": _text(att.get("id")),
        "title": _text(att.get("title")),
        "page_id": page_id,
        "media_type": _text(att.get("mediaType") or extensions.get("mediaType") or metadata.get("mediaType")),
        "file_size": _number(att.get("fileSize") if att.get("fileSize") is not None else extensions.get("fileSize")),
        "version": _number(_dict(att.get("version")).get("number")),
        "url": _join(base, links.get("webui")),
        "download_url": _join(base, links.get("download") or att.get("downloadLink")),
    }


def _clean(text: Any, limit: int | None = None) -> str | None:
    value = _text(text)
    if value is None:
        return None
    value = _SPACES.sub(" ", html.unescape(_HIGHLIGHT.sub("", value))).strip()
    if limit is not None and len(value) > limit:
        value = value[: limit - 3].rstrip() + "..."
    return value


def search_result_summary(result: Mapping[str, Any], base_url: str | None) -> dict[str, Any]:
    """``{"id", "type", "title", "space", "url", "excerpt", "last_modified"}`` of a v1 search result.

    Highlight markers (``@@@hl@@@``) and HTML entities are removed from the title and excerpt.

    :param result: one item of :meth:`~.search.SearchMixin.search`.
    :param base_url: the site's wiki URL (``https://x.atlassian.net/wiki``, the search answer's ``_links.base``);
        a bare site URL gets ``/wiki`` added, since result URLs are relative to it.
    """
    result = _dict(result)
    content = _dict(result.get("content"))
    container = _dict(result.get("resultGlobalContainer"))
    base = (base_url or "").strip().rstrip("/")
    if base and not base.endswith("/wiki"):
        base += "/wiki"
    return {
        "id": _text(content.get("id")),
        "type": _text(content.get("type") or result.get("entityType")),
        "title": _clean(content.get("title")) or _clean(result.get("title")),
        "space": _text(container.get("title")) or _text(_dict(content.get("space")).get("key")),
        "url": _join(base, result.get("url") or _dict(content.get("_links")).get("webui")),
        "excerpt": _clean(result.get("excerpt"), MAX_EXCERPT),
        "last_modified": _text(result.get("lastModified")),
    }


def tree_node_summary(node: Mapping[str, Any], site_url: str | None = None) -> dict[str, Any]:
    """The summary of an item of a tree listing (a v2 ``ChildrenResponse`` with ``parentId`` and ``depth`` added, or
    a ``DescendantsResponse``; ``type`` is ``page`` when the listing gives none, as ``ChildPage`` does not).

    These carry no links; ``url`` is the site's ``/wiki/pages/viewpage.action?pageId=...`` for a page, None for the
    other kinds.
    """
    page_id = _text(node.get("id"))
    kind = _text(node.get("type")) or "page"
    base = f"{site_url.rstrip('/')}/wiki" if site_url else ""
    return {
        "id": page_id,
        "title": _text(node.get("title")),
        "type": kind,
        "status": _text(node.get("status")),
        "parent_id": _text(node.get("parentId")),
        "depth": _number(node.get("depth")),
        "position": _number(node.get("childPosition")),
        "url": f"{base}/pages/viewpage.action?pageId={page_id}" if base and page_id and kind == "page" else None,
    }
