"""The content tree of the emulated site: direct children and descendants of pages and folders (route handlers).

* ``GET /wiki/api/v2/{pages|folders}/{id}/direct-children`` (``read:hierarchical-content:confluence``): the pages
  (current or archived) and folders right below, as ``ChildrenResponse`` (id, status, title, type, spaceId,
  childPosition), by position unless ``sort`` (``ContentSortOrder``) says otherwise; cursor pages (default 25).
* ``GET /wiki/api/v2/{pages|folders}/{id}/descendants`` (same scope): everything below down to ``depth`` (1 to 5,
  default 2; 400 otherwise), top to bottom, as ``DescendantsResponse`` (..., parentId, depth); cursor pages.
* A missing or trashed page, a page's id asked as a folder or a folder's as a page: 404.

Paths, parameters, shapes and scopes from Atlassian's v2 OpenAPI document (``getPageDirectChildren``,
``getFolderDirectChildren``, ``getPageDescendants``, ``getFolderDescendants``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._http import ApiRequest, Handler, PageRoutes, Reply, ReplyError, bad_param, v2_error

SCOPE = "read:hierarchical-content:confluence"
CONTENT_SORTS = (
    "created-date",
    "-created-date",
    "id",
    "-id",
    "modified-date",
    "-modified-date",
    "child-position",
    "-child-position",
    "title",
    "-title",
)
_SORT_KEYS: dict[str, Callable[[Any], Any]] = {
    "created-date": lambda item: item.created_at,
    "modified-date": lambda item: getattr(item, "version_at", item.created_at),
    "id": lambda item: item.id,
    "child-position": lambda item: item.position,
    "title": lambda item: item.title,
}
DESCENDANTS_DEPTH = (1, 5, 2)  # minimum, maximum, default


class HierarchyRoutes(PageRoutes):
    """Direct-children and descendants handlers of pages and folders (``model`` holds the ``folders`` too)."""

    def table(self) -> list[tuple[str, str, str, str, Handler]]:
        """The v2 routes: (method, path regex under /wiki/api/v2, template, scope, handler)."""
        return [
            (
                "GET",
                rf"/{kind}s/([^/]+)/{what}",
                f"/{kind}s/{{id}}/{what}",
                SCOPE,
                self._handler(kind, what),
            )
            for kind in ("page", "folder")
            for what in ("direct-children", "descendants")
        ]

    def _handler(self, kind: str, what: str) -> Handler:
        def handle(req: ApiRequest, args: tuple[str, ...]) -> Reply:
            parent = self._parent(kind, args[0])
            return self.direct_children(req, parent) if what == "direct-children" else self.descendants(req, parent)

        return handle

    def _parent(self, kind: str, ref: str) -> tuple[str, int]:
        if kind == "page":
            return "page", self._live_page(ref)
        folder = self.model.folders.get(int(ref)) if ref.isdigit() else None
        if folder is None:
            raise ReplyError(v2_error(404, "NOT_FOUND", f"Folder {ref} was not found"))
        return "folder", folder.id

    def children(self, parent: tuple[str, int], sort: str | None = None) -> list[Any]:
        """The pages (current or archived) and folders right below ``(kind, id)``, sorted."""
        kind, parent_id = parent
        with self.model.lock:
            found: list[Any] = [
                page
                for page in self.model.all_pages()
                if page.parent_id == parent_id and page.parent_type == kind and page.status in ("current", "archived")
            ]
            found += [
                folder
                for folder in self.model.folders.values()
                if folder.parent_id == parent_id and folder.parent_type == kind
            ]
        key = _SORT_KEYS[(sort or "child-position").lstrip("-")]
        found.sort(key=lambda item: (key(item), item.id), reverse=bool(sort and sort.startswith("-")))
        return found

    def direct_children(self, req: ApiRequest, parent: tuple[str, int]) -> Reply:
        sort = req.one("sort")
        if sort is not None and sort not in CONTENT_SORTS:
            raise bad_param(f"Provided value {{{sort}}} for 'sort' is not valid")
        return self._paginate(req, self.children(parent, sort), self._child_json)

    def descendants(self, req: ApiRequest, parent: tuple[str, int]) -> Reply:
        low, high, default = DESCENDANTS_DEPTH
        raw = req.one("depth")
        if raw is not None and not (raw.isdigit() and low <= int(raw) <= high):
            raise bad_param(f"'depth' must be between {low} and {high}, got {raw}")
        depth = int(raw) if raw is not None else default
        found: list[tuple[Any, int, int]] = []  # (item, its parent's id, depth), top to bottom
        level = [parent]
        for at in range(1, depth + 1):
            below: list[tuple[str, int]] = []
            for above in level:
                for item in self.children(above):
                    found.append((item, above[1], at))
                    below.append((_kind(item), item.id))
            level = below
        return self._paginate(req, found, self._descendant_json)

    @staticmethod
    def _child_json(item: Any) -> dict[str, Any]:
        return {
            "id": str(item.id),
            "status": getattr(item, "status", "current"),
            "title": item.title,
            "type": _kind(item),
            "spaceId": str(item.space_id),
            "childPosition": item.position,
        }

    def _descendant_json(self, entry: tuple[Any, int, int]) -> dict[str, Any]:
        item, parent_id, depth = entry
        shown = self._child_json(item)
        del shown["spaceId"]  # DescendantsResponse has no spaceId
        return {**shown, "parentId": str(parent_id), "depth": depth}


def _kind(item: Any) -> str:
    return "page" if hasattr(item, "representation") else "folder"
