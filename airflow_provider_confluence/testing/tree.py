"""The page tree, folders and label removal of the emulated site (route handlers; no HTTP server here).

* ``GET /wiki/api/v2/pages/{id}/children`` (``read:page:confluence``): the child pages that are current or
  archived, as ``ChildPage`` (id, status, title, spaceId, childPosition), by position unless ``sort`` says
  otherwise; cursor pages. A trashed or missing page answers 404.
* ``POST /wiki/api/v2/folders`` (``write:folder:confluence``): ``{"spaceId", "title", "parentId"}``, answers 200
  with ``FolderSingle``; the parent is a page or a folder of the same space. ``GET /wiki/api/v2/folders/{id}``
  (``read:folder:confluence``). A page may be created under a folder (``parentId``; its ``parentType`` is then
  ``folder``). A folder without ``parentId`` has none (``FolderSingle.parentId``: "null if there is no parent").
* The direct children and descendants of pages and folders are in ``hierarchy.py``.
* v1 ``DELETE /wiki/rest/api/content/{id}/label/{label}`` (``write:label:confluence``, or the classic
  ``write:confluence-content``): 204, or 404 when the content or the label does not exist.

Paths, statuses and scopes from Atlassian's v2 OpenAPI document (``x-atlassian-oauth2-scopes``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._http import (
    ApiRequest,
    Handler,
    PageRoutes,
    Paginate,
    Reply,
    ReplyError,
    bad_param,
    bad_request,
    iso,
    v1_error,
    v1_not_found,
    v2_error,
)
from .hierarchy import HierarchyRoutes

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
_SORT_FIELDS = {"created-date": "created_at", "modified-date": "version_at", "id": "id", "child-position": "position"}


@dataclass
class Folder:
    """A stored folder."""

    id: int
    space_id: int
    title: str
    parent_id: int | None
    parent_type: str | None
    created_at: float
    position: int = 0
    status: str = "current"


class TreeRoutes(PageRoutes):
    """Children, folder and label-removal handlers, for :class:`~.v2.ConfluenceApi`'s route tables.

    :param model: the spaces and pages (``page``, ``space``, ``all_pages``, ``labels``, ``lock``, ``base``).
    :param live_page: the id of a page that is not trashed (raises a 404 reply otherwise).
    :param paginate: cursor pages of a list: ``(req, items, render)``.
    :param now: the emulator's clock.
    """

    def __init__(
        self,
        model: Any,
        live_page: Callable[[str], int],
        paginate: Paginate,
        now: Callable[[], float],
    ) -> None:
        super().__init__(model, live_page, paginate)
        self._now = now
        self.folders: dict[int, Folder] = model.folders  # shared: the model creates pages under them
        self._next_folder = 5898241
        self.hierarchy = HierarchyRoutes(model, live_page, paginate)

    def table(self) -> list[tuple[str, str, str, str, Handler]]:
        """The v2 routes: (method, path regex under /wiki/api/v2, template, scope, handler)."""
        return [
            ("GET", r"/pages/([^/]+)/children", "/pages/{id}/children", "read:page:confluence", self.children),
            ("POST", r"/folders", "/folders", "write:folder:confluence", self.create_folder),
            ("GET", r"/folders/([^/]+)", "/folders/{id}", "read:folder:confluence", self.get_folder),
            *self.hierarchy.table(),
        ]

    def v1_routes(self) -> list[tuple[str, str, str, tuple[tuple[str, ...], ...], Handler]]:
        """The v1 routes: (method, path regex under /wiki/rest/api, template, scope alternatives, handler)."""
        scopes = (("write:label:confluence",), ("write:confluence-content",))
        return [("DELETE", r"/content/([^/]+)/label/([^/]+)", "/content/{id}/label/{label}", scopes, self.remove_label)]

    # ----------------------------------------------------------------- children
    def children(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        sort = req.one("sort")
        if sort is not None and sort not in CHILD_SORTS:
            raise bad_param(f"Provided value {{{sort}}} for 'sort' is not valid")
        with self.model.lock:
            parent = self._live_page(args[0])
            found = [
                page
                for page in self.model.all_pages()
                if page.parent_id == parent and page.status in ("current", "archived")
            ]
        field = _SORT_FIELDS[(sort or "child-position").lstrip("-")]
        found.sort(key=lambda page: (getattr(page, field), page.id), reverse=bool(sort and sort.startswith("-")))
        return self._paginate(
            req,
            found,
            lambda page: {
                "id": str(page.id),
                "status": page.status,
                "title": page.title,
                "spaceId": str(page.space_id),
                "childPosition": page.position,
            },
        )

    # ----------------------------------------------------------------- folders
    def _folder_json(self, folder: Folder) -> dict[str, Any]:
        return {
            "id": str(folder.id),
            "type": "folder",
            "status": "current",
            "title": folder.title,
            "parentId": None if folder.parent_id is None else str(folder.parent_id),
            "parentType": folder.parent_type,
            "position": folder.position,
            "spaceId": str(folder.space_id),
            "authorId": self.model.author_id,
            "ownerId": self.model.author_id,
            "createdAt": iso(folder.created_at),
            "version": {"number": 1, "createdAt": iso(folder.created_at), "authorId": self.model.author_id},
            "_links": {"base": self.model.base},
        }

    def create_folder(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        payload = req.json()
        if not isinstance(payload, dict) or payload.get("spaceId") in (None, ""):
            raise bad_request("spaceId is required")
        space_ref, title = str(payload["spaceId"]), payload.get("title")
        if not isinstance(title, str) or not title.strip():
            raise bad_request("A folder needs a title")
        with self.model.lock:
            space = self.model.space(int(space_ref)) if space_ref.isdigit() else None
            if space is None:
                return v2_error(404, "NOT_FOUND", f"Space {space_ref} was not found")
            parent_id, parent_type = self._parent(payload.get("parentId"), space.id)
            siblings = len(self.hierarchy.children((parent_type, parent_id))) if parent_type and parent_id else 0
            folder = Folder(self._next_folder, space.id, title.strip(), parent_id, parent_type, self._now(), siblings)
            self._next_folder += 1
            self.folders[folder.id] = folder
            return Reply(200, self._folder_json(folder))

    def _parent(self, value: Any, space_id: int) -> tuple[int | None, str | None]:
        if value is None:
            return None, None
        text = str(value)
        if not text.isdigit():
            raise bad_param(f"Provided value {{{value}}} for 'parentId' is not the correct type. Expected type is long")
        folder = self.folders.get(int(text))
        if folder is not None and folder.space_id == space_id:
            return folder.id, "folder"
        page = self.model.page(int(text))
        if page is not None and page.space_id == space_id and page.status not in ("trashed", "deleted"):
            return page.id, "page"
        raise ReplyError(v2_error(404, "NOT_FOUND", f"The parent {text} was not found in this space"))

    def get_folder(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        folder = self.folders.get(int(args[0])) if args[0].isdigit() else None
        if folder is None:
            return v2_error(404, "NOT_FOUND", f"Folder {args[0]} was not found")
        return Reply(200, self._folder_json(folder))

    # ----------------------------------------------------------------- labels (v1)
    def remove_label(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        content_id, name = args[0], unquote(args[1]).strip().lower()
        with self.model.lock:
            page = self.model.page(int(content_id)) if content_id.isdigit() else None
            if page is None or page.status in ("trashed", "deleted"):
                raise v1_not_found(content_id)
            if not self.model.labels.remove(page.id, name):
                return v1_error(404, f"Label {name} is not on content {content_id}", authorized=True)
        return Reply(204)
