"""The page tree over v2 (a mixin of the client).

Endpoints and scopes from Atlassian's v2 OpenAPI document (``x-atlassian-oauth2-scopes``;
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-children/ and
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-descendants/):

* ``GET /wiki/api/v2/{pages|folders}/{id}/direct-children`` (``read:hierarchical-content:confluence``): a page's
  or folder's children of every kind (``ChildrenResponse``: id, status, title, type, spaceId, childPosition),
  cursor-paginated, ``sort`` one of :data:`CONTENT_SORTS`. :meth:`TreeMixin.list_direct_children`.
* ``GET /wiki/api/v2/{pages|folders}/{id}/descendants`` (same scope): everything below, top to bottom
  (``DescendantsResponse``: ..., parentId, depth), ``depth`` 1 to 5 per call. :meth:`TreeMixin.list_tree` goes
  deeper by asking again below each page or folder at depth 5, as the document advises.
* ``GET /wiki/api/v2/pages/{id}/children`` (``read:page:confluence``; deprecated in the February 2026 document):
  child pages only. Retention (:mod:`.cleanup`) and the mirror's clean-up (:meth:`TreeMixin.list_descendants`, a
  level-by-level walk) still use it: they act on pages only and need no other scope.
* Folders are in :mod:`.folders`.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.client.comments import check_page_id
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceDuplicateTitle

__all__ = [
    "CHILD_SORTS",
    "CONTENT_SORTS",
    "DESCENDANTS_MAX_DEPTH",
    "MAX_DEPTH",
    "PARENT_TYPES",
    "TreeMixin",
    "check_id",
    "duplicate_folders",
    "split_title_path",
]

log = logging.getLogger(__name__)

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
#: The ``sort`` values of the ``direct-children`` listings (``ContentSortOrder``).
CONTENT_SORTS = (*CHILD_SORTS, "title", "-title")
#: What a tree listing can start from, and the path segment of each.
PARENT_TYPES = {"page": "pages", "folder": "folders"}
#: The deepest tree listing (one ``descendants`` call per page or folder at every fifth level).
MAX_DEPTH = 20
#: The most levels one ``descendants`` call returns (its ``depth`` parameter, 1 to 5).
DESCENDANTS_MAX_DEPTH = 5


def check_id(value: object, what: str) -> str:
    """A numeric id as Confluence takes it (``what``: "The space", "The folder", "The parent")."""
    text = str(value).strip() if value is not None else ""
    if not text.isdigit():
        raise ConfluenceConfigError(f"{what} id {value!r} is not an id: Confluence ids are numbers.")
    return text


def _children_path(page_id: str) -> str:
    return f"/wiki/api/v2/pages/{quote(check_page_id(page_id), safe='')}/children"


def _tree_path(parent_id: str, parent_type: str, what: str) -> str:
    """``/wiki/api/v2/{pages|folders}/{id}/{what}``; a bad id or type is refused before anything is sent."""
    if parent_type not in PARENT_TYPES:
        raise ConfluenceConfigError(f"parent_type={parent_type!r} must be one of {', '.join(PARENT_TYPES)}.")
    return f"/wiki/api/v2/{PARENT_TYPES[parent_type]}/{check_id(parent_id, f'The {parent_type}')}/{what}"


def duplicate_folders(
    found: Sequence[dict[str, Any]], title: str, parent_type: str, parent: str, advice: str
) -> ConfluenceDuplicateTitle:
    """The error for two or more folders titled ``title`` under one parent, naming their ids."""
    ids = [str(folder.get("id")) for folder in found]
    return ConfluenceDuplicateTitle(
        f"{len(ids)} folders titled {title!r} are under {parent_type} {parent}: {', '.join(ids)}. {advice}, or give "
        "the id of the one you mean.",
        title=title,
        parent_id=parent,
        ids=ids,
    )


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
    """Tree methods; the host class provides ``request``, ``paginate``, ``find_page``, ``get_page`` and
    ``space_homepage_id``."""

    def list_children(
        self, page_id: str, *, sort: str | None = None, cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield a page's child pages (v2 ``ChildPage`` objects; pages only), following every page of results.

        ``GET /pages/{id}/children`` is deprecated: prefer :meth:`list_direct_children`, which lists folders too.

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

    def list_direct_children(
        self, parent_id: str, *, parent_type: str = "page", sort: str | None = None, cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the children of a page or folder, of every kind (``ChildrenResponse``: ``type`` is ``page``,
        ``folder``, ``whiteboard``, ``database`` or ``embed``), following every page of results.

        :param parent_type: ``page`` or ``folder``: which ``direct-children`` endpoint to ask (a page's id asked
            as a folder, or the reverse, is a 404).
        :param sort: one of :data:`CONTENT_SORTS` (Confluence's default: by position in the tree).
        :param cursor: resume at this page of results (a ``ConfluenceRateLimited``'s ``progress["cursor"]``).
        :raises ConfluenceConfigError: for a bad id, type or sort; nothing is sent then.
        """
        if sort is not None and sort not in CONTENT_SORTS:
            raise ConfluenceConfigError(f"sort={sort!r} is not one of {', '.join(CONTENT_SORTS)}.")
        path = _tree_path(parent_id, parent_type, "direct-children")
        return self.paginate(path, {"sort": sort} if sort else None, cursor=cursor)

    def list_tree(
        self, parent_id: str, *, parent_type: str = "page", depth: int = 2, cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield everything below a page or folder down to ``depth`` levels, top to bottom (``DescendantsResponse``:
        ``parentId`` and ``depth``, 1 = a child, relative to ``parent_id``).

        Down to 5 levels, one cursor-paginated ``descendants`` listing (250 items a request); below that, one more
        listing under each page or folder at every fifth level.

        :param depth: levels to go down, 1 to :data:`MAX_DEPTH`.
        :param cursor: resume a listing of 5 levels or fewer at this page of results.
        :raises ConfluenceConfigError: for a depth out of range, a bad id or type, or a cursor with a deeper
            listing; nothing is sent then.
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise ConfluenceConfigError(f"depth={depth!r} must be a whole number from 1 to {MAX_DEPTH}.")
        if cursor and depth > DESCENDANTS_MAX_DEPTH:
            raise ConfluenceConfigError(f"A cursor resumes a listing of at most {DESCENDANTS_MAX_DEPTH} levels.")
        path = _tree_path(parent_id, parent_type, "descendants")
        return self._descend(path, depth, 0, cursor)

    def _descend(self, path: str, depth: int, above: int, cursor: str | None) -> Iterator[dict[str, Any]]:
        step = min(depth, DESCENDANTS_MAX_DEPTH)
        deepest: list[dict[str, Any]] = []
        for node in self.paginate(path, {"depth": step}, cursor=cursor):
            level = int(node.get("depth") or 0)
            yield {**node, "depth": level + above}
            if level == step and node.get("type") in PARENT_TYPES:
                deepest.append(node)
        for node in deepest if depth > step else []:
            below = _tree_path(str(node.get("id")), str(node.get("type")), "descendants")
            yield from self._descend(below, depth - step, above + step, None)

    def list_descendants(self, page_id: str, *, depth: int = 5) -> Iterator[dict[str, Any]]:
        """Yield the pages below a page, level by level, each a ``ChildPage`` with ``depth`` (1 = a child) and
        ``parentId`` added (pages only, over ``GET /pages/{id}/children``: one listing per page visited; see
        :meth:`list_tree` for every kind of content in fewer requests).

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

        Every title but the last may be a folder's. The first title is a page of the space (page titles are
        unique in a space) or else a folder at the space's top level (the homepage's children); each next one is
        found among the direct children of the page or folder before it; the last page is read in full.

        :param space_id: the space's numeric id.
        :param path: titles separated by ``/``, or a list of titles.
        :raises ConfluenceConfigError: for an empty path or title; nothing is sent then.
        :raises ConfluenceDuplicateTitle: when two folders under one parent have a title of the path.
        """
        titles = split_title_path(path)
        page = self.find_page(space_id=str(space_id), title=titles[0])
        if page is not None:
            current, kind = str(page.get("id")), "page"
        elif len(titles) > 1:
            try:
                home = self.space_homepage_id(str(space_id))
            except ConfluenceConfigError:  # no homepage: no top level to look for a folder in
                log.info("No page titled %r in space %s, which has no homepage.", titles[0], space_id)
                return None
            folder = self._child_titled(home, "page", titles[0], ("folder",))
            if folder is None:
                log.info("No page, and no folder on the top level, titled %r in space %s.", titles[0], space_id)
                return None
            current, kind = str(folder.get("id")), "folder"
        else:
            log.info("No page titled %r in space %s.", titles[0], space_id)
            return None
        for at, title in enumerate(titles[1:], start=2):
            last = at == len(titles)
            child = self._child_titled(current, kind, title, ("page",) if last else ("page", "folder"))
            if child is None:
                log.info("%s %s has no child %stitled %r.", kind.capitalize(), current, "page " if last else "", title)
                return None
            current, kind = str(child.get("id")), str(child.get("type"))
        return page if len(titles) == 1 else self.get_page(current)

    def _child_titled(self, parent: str, parent_type: str, title: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """The child of these kinds with this title (a page before a folder); None when there is none."""
        found = [
            child
            for child in self.list_direct_children(parent, parent_type=parent_type)
            if child.get("type") in kinds and child.get("title") == title
        ]
        pages = [child for child in found if child.get("type") == "page"]
        if pages:
            return pages[0]  # page titles are unique in a space
        if len(found) > 1:
            raise duplicate_folders(found, title, parent_type, parent, "Rename all but one")
        return found[0] if found else None
