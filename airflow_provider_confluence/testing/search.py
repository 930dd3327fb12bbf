"""CQL search over the emulated site: which content matches a parsed query, and the v1 search result shape.

Only current pages and the attachments of current pages are searched: trashed, draft and archived content never
matches. Without ``ORDER BY`` results come in id order (Confluence orders by relevance, which a client must not
rely on). A result looks like one of ``GET /wiki/rest/api/search``: ``content`` (``id``, ``type``, ``status``,
``title``, ``_links``), ``title``, ``excerpt``, ``url`` (relative to the wiki URL), ``entityType``,
``lastModified``, ``resultGlobalContainer`` (the space).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from ._http import iso
from .attachments import Attachment
from .bodies import plain_text
from .confluence import ConfluenceModel, Page
from .cql import Doc, Query, matches

EXCERPT_CHARS = 240
_SPACES = re.compile(r"\s+")


@dataclass
class Hit:
    """One matching piece of content: a page, or an attachment of ``page``."""

    doc: Doc
    page: Page
    attachment: Attachment | None
    created: float
    modified: float


def _ancestors(model: ConfluenceModel, page: Page) -> list[int]:
    chain: list[int] = []
    parent_id = page.parent_id
    while parent_id is not None and parent_id not in chain:
        chain.append(parent_id)
        parent = model.page(parent_id)
        parent_id = parent.parent_id if parent is not None else None
    return chain


def _hits(model: ConfluenceModel) -> list[Hit]:
    hits: list[Hit] = []
    for page in model.all_pages():
        if page.status != "current":
            continue
        space = model.space(page.space_id)
        key = space.key if space is not None else ""
        ancestors = _ancestors(model, page)
        text = plain_text(page.representation, page.value)
        doc = Doc(
            "page",
            str(page.id),
            key,
            page.title,
            text,
            set(model.labels.names(page.id)),
            str(page.parent_id) if page.parent_id is not None else None,
            {str(a) for a in ancestors},
        )
        hits.append(Hit(doc, page, None, page.created_at, page.version_at))
        for att in model.attachments.of(page.id):
            if att.status != "current":
                continue
            att_doc = Doc(
                "attachment",
                str(att.id),
                key,
                att.title,
                att.comment,
                set(),
                str(page.id),
                {str(page.id), *(str(a) for a in ancestors)},
            )
            hits.append(Hit(att_doc, page, att, att.created_at, att.version_at))
    return hits


def find(model: ConfluenceModel, query: Query) -> list[Hit]:
    """Every piece of content matching ``query``, in its ``ORDER BY`` order (id order without one)."""
    with model.lock:
        found = [hit for hit in _hits(model) if matches(query.where, hit.doc)]
    found.sort(key=lambda hit: (hit.attachment is not None, int(hit.doc.id)))
    for name, descending in reversed(query.order):
        value = {
            "title": lambda hit: hit.doc.title.lower(),
            "created": lambda hit: hit.created,
            "lastmodified": lambda hit: hit.modified,
        }[name]
        found.sort(key=value, reverse=descending)
    return found


def _excerpt(text: str) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3].rstrip() + "..."


def render(model: ConfluenceModel, hit: Hit) -> dict[str, Any]:
    """Render a hit like one result of ``GET /wiki/rest/api/search``."""
    space = model.space(hit.page.space_id)
    page_links = model.page_json(hit.page)["_links"]
    if hit.attachment is None:
        content_id, kind, webui = str(hit.page.id), "page", page_links["webui"]
        links = {"webui": webui, "self": f"{model.base}/rest/api/content/{content_id}", "tinyui": page_links["tinyui"]}
        icon = "aui-icon content-type-page"
    else:
        content_id, kind, webui = f"att{hit.attachment.id}", "attachment", hit.attachment.webui()
        links = {
            "webui": webui,
            "download": hit.attachment.download(),
            "self": f"{model.base}/rest/api/content/{content_id}",
        }
        icon = "aui-icon content-type-attachment"
    modified = datetime.datetime.fromtimestamp(hit.modified, tz=datetime.UTC)
    return {
        "content": {
            "id": content_id,
            "type": kind,
            "status": "current",
            "title": hit.doc.title,
            "childTypes": {},
            "macroRenderedOutput": {},
            "restrictions": {},
            "_links": links,
        },
        "title": hit.doc.title,
        "excerpt": _excerpt(hit.doc.text),
        "url": webui,
        "resultGlobalContainer": {
            "title": space.name if space else "",
            "displayUrl": f"/spaces/{space.key}" if space else "",
        },
        "breadcrumbs": [],
        "entityType": "content",
        "iconCssClass": icon,
        "lastModified": iso(hit.modified),
        "friendlyLastModified": modified.strftime("%b %d, %Y"),
        "score": 0.0,
    }
