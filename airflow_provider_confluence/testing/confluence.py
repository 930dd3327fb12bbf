"""Spaces and pages of the emulated Confluence site: pure logic, no HTTP.

Objects are stored as small records and rendered into the shapes of Atlassian's OpenAPI document for
Confluence v2 (``SpaceBulk``/``SpaceSingle``, ``PageBulk``/``PageSingle``). Ids are increasing numeric strings.
Every space gets a homepage (``"<name> Home"``) like a real space, and a page created without ``parentId``
goes under it. Deleting a page moves it to the trash (status ``trashed``); ``purge`` removes a trashed page.
Page labels (:attr:`ConfluenceModel.labels`) and attachments (:attr:`ConfluenceModel.attachments`) live in their
own stores.
Callers hold :attr:`ConfluenceModel.lock` around reads that span several calls; every method takes it too.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from ._http import DUPLICATE_TITLE, ReplyError, bad_param, bad_request, iso, v2_error
from .attachments import AttachmentStore
from .bodies import normalize_body, render_body
from .clock import Clock
from .comments import CommentStore
from .labels import LabelStore

SPACE_TYPES = ("global", "collaboration", "knowledge_base", "personal")
SPACE_STATUSES = ("current", "archived")
_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,255}$")


@dataclass
class Space:
    """A stored space."""

    id: int
    key: str
    name: str
    type: str
    status: str
    created_at: float
    labels: tuple[str, ...]
    homepage_id: int | None = None


@dataclass
class Page:
    """A stored page and its current version."""

    id: int
    space_id: int
    title: str
    status: str
    parent_id: int | None
    position: int
    created_at: float
    representation: str
    value: str
    version: int = 1
    version_at: float = 0.0
    version_message: str = ""
    minor_edit: bool = False
    parent_type: str = "page"


def _numeric(value: Any, name: str) -> int:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise bad_param(f"Provided value {{{value}}} for '{name}' is not the correct type. Expected type is long")
    return int(text)


class ConfluenceModel:
    """The spaces and pages of one site.

    :param clock: the emulator's clock (``createdAt`` and version times).
    :param lock: the emulator's one lock.
    :param site_url: the site URL, for ``_links.base``.
    :param author_id: the account id written as author of everything.
    """

    def __init__(self, *, clock: Clock, lock: threading.RLock, site_url: str, author_id: str) -> None:
        self.lock = lock
        self._clock = clock
        self.base = site_url.rstrip("/") + "/wiki"
        self.author_id = author_id
        self.labels = LabelStore(lock)
        self.attachments = AttachmentStore(clock=clock, lock=lock, base=self.base)
        self.comments = CommentStore(clock=clock, lock=lock)
        self._spaces: dict[int, Space] = {}
        self._pages: dict[int, Page] = {}
        #: The folders (``tree.Folder``, kept by the tree routes): a page may be created under one.
        self.folders: dict[int, Any] = {}
        self._next_space = 98305
        self._next_page = 1769473

    # ----------------------------------------------------------------- seeding (the test's side)
    def add_space(
        self,
        key: str,
        name: str | None = None,
        *,
        type: str = "global",
        status: str = "current",
        labels: tuple[str, ...] | list[str] = (),
        homepage: bool = True,
    ) -> Space:
        """Create a space (and its homepage unless ``homepage`` is False); raise ValueError on a bad key."""
        if not _KEY_RE.match(key) or type not in SPACE_TYPES or status not in SPACE_STATUSES:
            raise ValueError(f"bad space: key={key!r} type={type!r} status={status!r}")
        with self.lock:
            if any(space.key == key for space in self._spaces.values()):
                raise ValueError(f"a space with key {key} already exists")
            space = Space(self._next_space, key, name or key.title(), type, status, self._clock.now(), tuple(labels))
            self._next_space += 1
            self._spaces[space.id] = space
            if homepage:
                home = self._insert(space, f"{space.name} Home", "storage", "", None, "current")
                space.homepage_id = home.id
            return space

    def add_page(
        self, space_key_or_id: str | int, title: str, body: str = "<p>x</p>", parent_id: str | int | None = None
    ) -> Page:
        """Create a current page through the same checks as ``POST /pages``; raise ValueError if refused."""
        with self.lock:
            space = self.find_space(space_key_or_id)
            if space is None:
                raise ValueError(f"no space {space_key_or_id!r}")
            payload: dict[str, Any] = {
                "spaceId": str(space.id),
                "title": title,
                "status": "current",
                "body": {"representation": "storage", "value": body},
            }
            if parent_id is not None:
                payload["parentId"] = str(parent_id)
            try:
                return self.create_page(payload, root_level=False)
            except ReplyError as exc:
                raise ValueError(f"page refused: {exc.reply.body}") from None

    def find_space(self, key_or_id: str | int) -> Space | None:
        """Return the space with this key or numeric id, or None."""
        with self.lock:
            if isinstance(key_or_id, int) or str(key_or_id).isdigit():
                found = self._spaces.get(int(key_or_id))
                if found is not None:
                    return found
            return next((space for space in self._spaces.values() if space.key == key_or_id), None)

    def now(self) -> float:
        """The emulator clock's time (epoch seconds)."""
        return self._clock.now()

    def all_spaces(self) -> list[Space]:
        """Every space, by id."""
        with self.lock:
            return sorted(self._spaces.values(), key=lambda space: space.id)

    def all_pages(self) -> list[Page]:
        """Every page not purged (trashed ones included), by id."""
        with self.lock:
            return sorted(self._pages.values(), key=lambda page: page.id)

    def space(self, space_id: int) -> Space | None:
        """The space with this id, or None."""
        return self._spaces.get(space_id)

    def page(self, page_id: int) -> Page | None:
        """The page with this id (whatever its status), or None."""
        return self._pages.get(page_id)

    # ----------------------------------------------------------------- rendering
    def space_json(self, space: Space, *, single: bool = False, include_labels: bool = False) -> dict[str, Any]:
        """Render a space like ``SpaceBulk`` (or ``SpaceSingle`` with ``_links.base`` when ``single``)."""
        out: dict[str, Any] = {
            "id": str(space.id),
            "key": space.key,
            "name": space.name,
            "type": space.type,
            "status": space.status,
            "authorId": self.author_id,
            "createdAt": iso(space.created_at),
            "homepageId": str(space.homepage_id) if space.homepage_id is not None else None,
        }
        if include_labels:
            labels = [
                {"id": str(1000 + index), "name": label, "prefix": "global"} for index, label in enumerate(space.labels)
            ]
            out["labels"] = {"results": labels, "meta": {"hasMore": False}}
        out["_links"] = {"webui": f"/spaces/{space.key}"}
        if single:
            out["_links"]["base"] = self.base
        return out

    def page_json(self, page: Page, *, body_format: str | None = None, single: bool = False) -> dict[str, Any]:
        """Render a page like ``PageBulk`` (or ``PageSingle``); ``body`` only when ``body_format`` is given."""
        space = self._spaces[page.space_id]
        tiny = base64.urlsafe_b64encode(page.id.to_bytes(8, "little").rstrip(b"\0")).decode().rstrip("=")
        out: dict[str, Any] = {
            "id": str(page.id),
            "status": page.status,
            "title": page.title,
            "spaceId": str(page.space_id),
            "parentId": str(page.parent_id) if page.parent_id is not None else None,
            "parentType": page.parent_type if page.parent_id is not None else None,
            "position": page.position,
            "authorId": self.author_id,
            "ownerId": self.author_id,
            "lastOwnerId": None,
            "createdAt": iso(page.created_at),
            "version": {
                "createdAt": iso(page.version_at),
                "message": page.version_message,
                "number": page.version,
                "minorEdit": page.minor_edit,
                "authorId": self.author_id,
            },
        }
        if body_format:
            out["body"] = render_body(page.representation, page.value, body_format)
        out["_links"] = {
            "webui": f"/spaces/{space.key}/pages/{page.id}/{quote_plus(page.title)}",
            "editui": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": f"/x/{tiny}",
        }
        if single:
            out["_links"]["base"] = self.base
        return out

    # ----------------------------------------------------------------- queries
    def query_spaces(
        self, *, ids: list[int], keys: list[str], type: str | None, status: str | None, labels: list[str], sort: str
    ) -> list[Space]:
        """Spaces matching every given filter (``labels``: any of them), sorted by ``sort`` (``-`` = desc)."""
        with self.lock:
            found = [
                space
                for space in self._spaces.values()
                if (not ids or space.id in ids)
                and (not keys or space.key in keys)
                and (type is None or space.type == type)
                and (status is None or space.status == status)
                and (not labels or set(labels) & set(space.labels))
            ]
        field = sort.lstrip("-")
        found.sort(key=lambda space: (getattr(space, field), space.id), reverse=sort.startswith("-"))
        return found

    def query_pages(
        self,
        *,
        ids: list[int],
        space_ids: list[int],
        title: str | None,
        statuses: list[str],
        sort: str,
        root_only: bool = False,
    ) -> list[Page]:
        """Pages matching every given filter, sorted by ``sort`` (``id``, ``title``, ``created-date``, ...)."""
        with self.lock:
            found = [
                page
                for page in self._pages.values()
                if (not ids or page.id in ids)
                and (not space_ids or page.space_id in space_ids)
                and (title is None or page.title == title)
                and page.status in statuses
                and (not root_only or page.parent_id is None)
            ]
        field = {"created-date": "created_at", "modified-date": "version_at"}.get(sort.lstrip("-"), sort.lstrip("-"))
        found.sort(key=lambda page: (getattr(page, field), page.id), reverse=sort.startswith("-"))
        return found

    # ----------------------------------------------------------------- writes (raise ReplyError)
    def _insert(self, space: Space, title: str, representation: str, value: str, parent: Any, status: str) -> Page:
        """Store a new page under ``parent`` (a page, a folder, or None)."""
        now = self._clock.now()
        parent_id = parent.id if parent else None
        siblings = sum(1 for page in self._pages.values() if page.space_id == space.id and page.parent_id == parent_id)
        page = Page(
            self._next_page,
            space.id,
            title,
            status,
            parent.id if parent else None,
            siblings,
            now,
            representation,
            value,
            version_at=now,
            parent_type="folder" if parent is not None and parent.id in self.folders else "page",
        )
        self._next_page += 1
        self._pages[page.id] = page
        return page

    def _title_taken(self, space_id: int, title: str, exclude: int | None = None) -> bool:
        return any(
            page.space_id == space_id and page.status == "current" and page.title == title and page.id != exclude
            for page in self._pages.values()
        )

    def _parent(self, value: Any, space: Space, child: int | None = None) -> Any:
        """The parent page, or folder (anything with ``id`` and ``space_id``), of a page being written."""
        folder = self.folders.get(_numeric(value, "parentId"))
        if folder is not None and folder.space_id == space.id:
            return folder
        parent = self._pages.get(_numeric(value, "parentId"))
        if parent is None or parent.status in ("trashed", "deleted"):
            raise ReplyError(v2_error(404, "NOT_FOUND", f"Parent page {value} was not found"))
        if parent.space_id != space.id or parent.id == child:
            raise bad_request(f"Parent page {value} is not in space {space.id}, or is the page itself")
        return parent

    @staticmethod
    def _check_title(title: Any, status: str) -> str:
        if title is not None and not isinstance(title, str):
            raise bad_request("title must be a string")
        if status == "current" and not (title or "").strip():
            raise bad_request("Title is required for a page whose status is current")
        if len(title or "") > 255:
            raise bad_request("Title must not be longer than 255 characters")
        return title or ""

    def create_page(self, payload: Any, *, root_level: bool) -> Page:
        """Create a page from a ``POST /pages`` body (see the module docstring for the rules)."""
        if not isinstance(payload, dict):
            raise bad_request("The request body must be a JSON object")
        if payload.get("spaceId") in (None, ""):
            raise bad_request("spaceId is required")
        with self.lock:
            space = self._spaces.get(_numeric(payload["spaceId"], "spaceId"))
            if space is None:
                raise ReplyError(v2_error(404, "NOT_FOUND", f"Space {payload['spaceId']} was not found"))
            status = payload.get("status", "current")
            if status not in ("current", "draft"):
                raise bad_request("status must be current or draft")
            title = self._check_title(payload.get("title"), status)
            if payload.get("parentId") is not None and root_level:
                raise bad_request("parentId may not be given with root-level=true")
            if payload.get("parentId") is not None:
                parent: Any = self._parent(payload["parentId"], space)
            else:
                parent = None if root_level or space.homepage_id is None else self._pages.get(space.homepage_id)
            representation, value = normalize_body(payload.get("body"))
            if status == "current" and self._title_taken(space.id, title):
                raise bad_request(DUPLICATE_TITLE)
            return self._insert(space, title, representation, value, parent, status)

    def update_page(self, page_id: int, payload: Any) -> Page:
        """Apply a ``PUT /pages/{id}`` body; 409 unless ``version.number`` is the current number plus one."""
        with self.lock:
            page = self._pages.get(page_id)
            if page is None or page.status in ("trashed", "deleted"):
                raise ReplyError(v2_error(404, "NOT_FOUND", f"Page {page_id} was not found"))
            if not isinstance(payload, dict):
                raise bad_request("The request body must be a JSON object")
            for name in ("id", "status", "title", "body", "version"):
                if name not in payload:
                    raise bad_request(f"{name} is required")
            if str(payload["id"]) != str(page_id):
                raise bad_request(f"The id in the body ({payload['id']}) is not the id in the path ({page_id})")
            version = payload["version"]
            number = version.get("number") if isinstance(version, dict) else None
            if not isinstance(number, int) or isinstance(number, bool):
                raise bad_request("version.number is required")
            if number != page.version + 1:
                title = f"Version must be incremented on update. Current version is: {page.version}"
                raise ReplyError(v2_error(409, "CONFLICT", title))
            status = payload["status"]
            if status not in ("current", "draft"):
                raise bad_request("status must be current or draft")
            title = self._check_title(payload["title"], status)
            space = self._spaces[page.space_id]
            if payload.get("spaceId") is not None and str(payload["spaceId"]) != str(space.id):
                raise bad_request("A page cannot be moved to another space")
            parent_id, parent_type = page.parent_id, page.parent_type
            if payload.get("parentId") is not None:
                parent_id = self._parent(payload["parentId"], space, child=page.id).id
                parent_type = "folder" if parent_id in self.folders else "page"
            representation, value = normalize_body(payload["body"])
            if status == "current" and self._title_taken(space.id, title, exclude=page.id):
                raise bad_request(DUPLICATE_TITLE)
            page.title, page.status, page.parent_id, page.parent_type = title, status, parent_id, parent_type
            page.representation, page.value = representation, value
            page.version, page.version_at = number, self._clock.now()
            page.version_message = str(version.get("message") or "")
            page.minor_edit = bool(version.get("minorEdit", False))
            return page

    def delete_page(self, page_id: int, *, purge: bool = False, draft: bool = False) -> None:
        """Trash a page; ``purge`` removes a trashed page; ``draft`` removes a draft."""
        with self.lock:
            page = self._pages.get(page_id)
            if page is None or (page.status == "trashed") != purge or (page.status == "draft") != draft:
                raise ReplyError(v2_error(404, "NOT_FOUND", f"Page {page_id} was not found"))
            if purge or draft:
                del self._pages[page_id]
            else:
                page.status = "trashed"
