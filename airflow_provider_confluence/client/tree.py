"""The page tree and folders over v2 (a mixin of the client).

Endpoints and scopes from Atlassian's v2 OpenAPI document (``x-atlassian-oauth2-scopes``;
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-children/ and
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-folder/):

* ``GET /wiki/api/v2/pages/{id}/children`` (``read:page:confluence``): a page's child pages (``ChildPage``: id,
  status, title, spaceId, childPosition), cursor-paginated, ``sort`` one of :data:`CHILD_SORTS`.
* The document has no descendants endpoint: :meth:`TreeMixin.list_descendants` walks the children level by
  level, down to ``depth``.
* ``POST /wiki/api/v2/folders`` (``write:folder:confluence``, answers 200) and ``GET /wiki/api/v2/folders/{id}``
  (``read:folder:confluence``). The document has no way to list a folder's children nor to find a folder by
  title, so a folder is named by its id; a page can be created under one (``parentId``).

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.client.comments import check_page_id
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError

__all__ = ["CHILD_SORTS", "FOLDERS_PATH", "MAX_DEPTH", "TreeMixin", "split_title_path"]

log = logging.getLogger(__name__)

FOLDERS_PATH = "/wiki/api/v2/folders"
#: The ``sort`` values ``GET /pages/{id}/children`` takes (``ChildPageSortOrder``).
CHILD_SORTS = (
    "created-date",
    "-created-date",
    "id",
    "-id",
    "child-position",
    "-child-position",
    "modified-date",
    "-modified-date",
)
#: The deepest walk :meth:`TreeMixin.list_descendants` makes (one listing per page visited).
MAX_DEPTH = 20


def _id(value: object, what: str) -> str:
    """A numeric id as Confluence takes it (``what``: "space", "folder", "parent")."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit():
        raise ConfluenceConfigError(f"{what} id {value!r} is not an id: Confluence ids are numbers.")
    return text


def _children_path(page_id: str) -> str:
    return f"/wiki/api/v2/pages/{quote(check_page_id(page_id), safe='')}/children"


def split_title_path(path: str | Sequence[str]) -> list[str]:
    """The titles of a path such as ``"Reports/2026/December"`` (give a list when a title holds a ``/``).

    :raises ConfluenceConfigError: for an empty path or an empty title in it.
    """
    titles = [str(part) for part in ([path] if isinstance(path, str) else path)]
    if isinstance(path, str):
        titles = path.strip().strip("/").split("/")
    titles = [title.strip() for title in titles]
    if not titles or any(not title for title in titles):
        raise ConfluenceConfigError(
            f"The path {path!r} has an empty title; give titles separated by '/', such as 'Reports/2026/December'."
        )
    return titles


class TreeMixin(MixinBase):
    """Tree and folder methods; the host class provides ``request``, ``paginate``, ``find_page`` and ``get_page``."""

    def list_children(
        self, page_id: str, *, sort: str | None = None, cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield a page's child pages (v2 ``ChildPage`` objects), following every page of results.

        :param page_id: the parent page's id.
        :param sort: one of :data:`CHILD_SORTS` (Confluence's default: by position in the tree).
        :param cursor: resume the listing at this page of results (a ``ConfluenceRateLimited``'s
            ``progress["cursor"]``).
        :raises ConfluenceConfigError: for a bad page id or sort; nothing is sent then.
        :raises ConfluenceRateLimited: with ``progress["cursor"]``, where to resume.
        """
        if sort is not None and sort not in CHILD_SORTS:
            raise ConfluenceConfigError(f"sort={sort!r} is not one of {', '.join(CHILD_SORTS)}.")
        path = _children_path(page_id)
        return self.paginate(path, {"sort": sort} if sort else None, cursor=cursor)

    def list_descendants(self, page_id: str, *, depth: int = 5) -> Iterator[dict[str, Any]]:
        """Yield the pages below a page, level by level, each a ``ChildPage`` with ``depth`` (1 = a child) and
        ``parentId`` added.

        :param page_id: the top page's id (not yielded itself).
        :param depth: how many levels down to go, 1 to :data:`MAX_DEPTH`.
        :raises ConfluenceConfigError: for a depth out of range or a bad page id; nothing is sent then.
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise ConfluenceConfigError(f"depth={depth!r} must be a whole number from 1 to {MAX_DEPTH}.")
        check_page_id(page_id)
        return self._walk(str(page_id).strip(), depth)

    def _walk(self, top: str, depth: int) -> Iterator[dict[str, Any]]:
        level, seen = [top], {top}
        for at in range(1, depth + 1):
            below: list[str] = []
            for parent in level:
                for child in self.list_children(parent):
                    child_id = str(child.get("id"))
                    if child_id in seen:  # a page is visited once, whatever the listing says
                        continue
                    seen.add(child_id)
                    below.append(child_id)
                    yield {**child, "parentId": parent, "depth": at}
            if not below:
                return
            level = below

    def find_page_by_path(self, *, space_id: str, path: str | Sequence[str]) -> dict[str, Any] | None:
        """The page at a path of titles in a space (``"Reports/2026/December"``), or None when a title is missing.

        The first title is found among the space's pages (titles are unique in a space), each next one among the
        children of the page before it; the last page is read in full (with ``_links``).

        :param space_id: the space's numeric id.
        :param path: titles separated by ``/``, or a list of titles.
        :raises ConfluenceConfigError: for an empty path or title; nothing is sent then.
        """
        titles = split_title_path(path)
        page = self.find_page(space_id=str(space_id), title=titles[0])
        if page is None:
            log.info("No page titled %r in space %s.", titles[0], space_id)
            return None
        current = str(page.get("id"))
        for title in titles[1:]:
            child = next((c for c in self.list_children(current) if c.get("title") == title), None)
            if child is None:
                log.info("Page %s has no child titled %r.", current, title)
                return None
            current = str(child.get("id"))
        return page if len(titles) == 1 else self.get_page(current)

    def get_folder(self, folder_id: str) -> dict[str, Any]:
        """Return one folder (v2 ``FolderSingle``).

        :raises ConfluenceNotFound: when there is no such folder or the app's user cannot see it.
        """
        path = f"{FOLDERS_PATH}/{_id(folder_id, 'The folder')}"
        return self._folder(self.request("GET", path), "GET", path)

    def create_folder(self, *, space_id: str, title: str, parent_id: str | None = None) -> dict[str, Any]:
        """Create a folder (``POST /wiki/api/v2/folders``, which answers 200) and return it.

        The POST is sent once (a second one would make a second folder).

        :param space_id: the space's numeric id.
        :param title: the folder's title.
        :param parent_id: the page or folder to create it under (default: the space's top level).
        :raises ConfluenceConfigError: for an empty title or a bad id; nothing is sent then.
        """
        if not isinstance(title, str) or not title.strip():
            raise ConfluenceConfigError("A folder needs a title.")
        payload: dict[str, Any] = {"spaceId": _id(space_id, "The space"), "title": title.strip()}
        if parent_id:
            payload["parentId"] = _id(parent_id, "The parent")
        folder = self._folder(self.request("POST", FOLDERS_PATH, json=payload), "POST", FOLDERS_PATH)
        log.info("Created folder %s (%r) in space %s.", folder.get("id"), title, space_id)
        return folder

    def _folder(self, folder: Any, method: str, path: str) -> dict[str, Any]:
        if not isinstance(folder, dict) or folder.get("id") is None:
            raise ConfluenceApiError(200, method, self.url(path), None, "The answer is not a folder object.")
        raw_links = folder.get("_links")
        links: dict[str, Any] = raw_links if isinstance(raw_links, dict) else {}
        if not links.get("base") and self._site_url:
            folder["_links"] = {**links, "base": f"{self._site_url}/wiki"}
        return folder
