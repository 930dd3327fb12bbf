"""v2 folders: read, create, and create only when missing (a mixin of the client).

Endpoints and scopes from Atlassian's v2 OpenAPI document (``x-atlassian-oauth2-scopes``;
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-folder/ and
https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-children/):

* ``POST /wiki/api/v2/folders`` (``write:folder:confluence``, answers 200) and ``GET /wiki/api/v2/folders/{id}``
  (``read:folder:confluence``).
* v2 cannot search folders by title, so :meth:`FoldersMixin.ensure_folder` looks for one among the direct children
  of its parent (``GET /pages/{id}/direct-children`` or ``GET /folders/{id}/direct-children``,
  ``read:hierarchical-content:confluence``), which list folders, pages and the other kinds of content by ``type``.
* "The space's top level" is the space's homepage (``homepageId`` of ``GET /spaces/{id}``): where Confluence puts a
  page created without ``parentId`` (``createPage``'s ``parentId``), and where its web editor shows top-level
  content. Without a parent, :meth:`FoldersMixin.ensure_folder` looks there and creates the folder there, naming the
  homepage as ``parentId`` (the document does not say where a folder sent without one goes).

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.client.tree import check_id, duplicate_folders
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceNotFound,
)

__all__ = ["FOLDERS_PATH", "FoldersMixin"]

log = logging.getLogger(__name__)

FOLDERS_PATH = "/wiki/api/v2/folders"


class FoldersMixin(MixinBase):
    """Folder methods; the host class provides ``request``, ``get_space`` and ``list_direct_children``."""

    def get_folder(self, folder_id: str) -> dict[str, Any]:
        """Return one folder (v2 ``FolderSingle``).

        :raises ConfluenceNotFound: when there is no such folder or the app's user cannot see it.
        """
        path = f"{FOLDERS_PATH}/{check_id(folder_id, 'The folder')}"
        return self._folder(self.request("GET", path), "GET", path)

    def create_folder(self, *, space_id: str, title: str, parent_id: str | None = None) -> dict[str, Any]:
        """Create a folder (``POST /wiki/api/v2/folders``, which answers 200) and return it.

        The POST is sent once (a second one would make a second folder).

        :param space_id: the space's numeric id.
        :param title: the folder's title.
        :param parent_id: the page or folder to create it under (default: none sent; Confluence chooses).
        :raises ConfluenceConfigError: for an empty title or a bad id; nothing is sent then.
        """
        if not isinstance(title, str) or not title.strip():
            raise ConfluenceConfigError("A folder needs a title.")
        payload: dict[str, Any] = {"spaceId": check_id(space_id, "The space"), "title": title.strip()}
        if parent_id:
            payload["parentId"] = check_id(parent_id, "The parent")
        folder = self._folder(self.request("POST", FOLDERS_PATH, json=payload), "POST", FOLDERS_PATH)
        log.info("Created folder %s (%r) in space %s.", folder.get("id"), title, space_id)
        return folder

    def space_homepage_id(self, space_id: str) -> str:
        """The id of the space's homepage (``GET /spaces/{id}``), the top of its page tree.

        :raises ConfluenceConfigError: when the space has no homepage (then name a parent).
        """
        homepage = self.get_space(check_id(space_id, "The space")).get("homepageId")
        if homepage in (None, ""):
            raise ConfluenceConfigError(
                f"Space {space_id} has no homepage, so it has no top level to look in: give parent_id (a page or folder)."
            )
        return str(homepage)

    def children_of(self, parent_id: str, parent_type: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """The direct children of a page or folder, and which of the two it is.

        :param parent_type: ``page``, ``folder``, or None to try it as a page first, then (on 404) as a folder.
        :raises ConfluenceNotFound: when it is neither (or the app's user cannot see it).
        """
        kinds = ("page", "folder") if parent_type is None else (parent_type,)
        for kind in kinds:
            try:
                return list(self.list_direct_children(parent_id, parent_type=kind)), kind
            except ConfluenceNotFound:
                if kind == kinds[-1]:
                    raise
                log.info("%s is not a page that can be seen; looking for a folder with that id.", parent_id)
        raise AssertionError("unreachable")  # pragma: no cover

    def ensure_folder(
        self,
        *,
        space_id: str | Callable[[], str],
        title: str,
        parent_id: str | None = None,
        parent_type: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """The folder titled ``title`` directly under the parent, created when there is none; and whether it was.

        One listing of the parent's direct children (two when ``parent_type`` is not given and the parent is a
        folder; one more, ``GET /spaces/{id}``, without ``parent_id``), then the create only when no folder has the
        title. Titles are compared exactly, after trimming spaces; archived folders do not count.

        :param space_id: the space's numeric id, or a function that returns it, called only when it is needed (to
            create the folder, or to find the homepage): a folder found under ``parent_id`` then costs no space lookup.
        :param title: the folder's title.
        :param parent_id: the page or folder to look under and create in (default: the space's homepage).
        :param parent_type: ``page`` or ``folder`` when known (saves a request for a folder).
        :returns: ``(folder, created)``; a found folder is its ``direct-children`` entry (id, title, type, status)
            with ``parentId`` and ``parentType`` added.
        :raises ConfluenceDuplicateTitle: when two or more folders under the parent have the title; nothing is
            created then.
        """
        if not isinstance(title, str) or not title.strip():
            raise ConfluenceConfigError("A folder needs a title.")
        if parent_type not in (None, "page", "folder"):
            raise ConfluenceConfigError(f"parent_type={parent_type!r} must be 'page' or 'folder'.")
        wanted = title.strip()

        def space() -> str:
            return space_id() if callable(space_id) else space_id

        if parent_id:
            parent = check_id(parent_id, "The parent")
        else:
            parent, parent_type = self.space_homepage_id(space()), "page"
        children, kind = self.children_of(parent, parent_type)
        found = [
            child
            for child in children
            if child.get("type") == "folder"
            and str(child.get("title", "")).strip() == wanted
            and child.get("status", "current") == "current"
        ]
        if len(found) > 1:
            raise duplicate_folders(found, wanted, kind, parent, "Nothing was created: rename or delete all but one")
        if found:
            log.info("Folder %s (%r) is already under %s %s.", found[0].get("id"), wanted, kind, parent)
            return {**found[0], "parentId": parent, "parentType": kind}, False
        return self.create_folder(space_id=space(), title=wanted, parent_id=parent), True

    def _folder(self, folder: Any, method: str, path: str) -> dict[str, Any]:
        if not isinstance(folder, dict) or folder.get("id") is None:
            raise ConfluenceApiError(200, method, self.url(path), None, "The answer is not a folder object.")
        raw_links = folder.get("_links")
        links: dict[str, Any] = raw_links if isinstance(raw_links, dict) else {}
        if not links.get("base") and self._site_url:
            folder["_links"] = {**links, "base": f"{self._site_url}/wiki"}
        return folder
