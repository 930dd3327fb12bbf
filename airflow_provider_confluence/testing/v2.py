"""The Confluence REST routes behind the gateway: v2 spaces, pages, page labels, attachments, footer comments
(``comments.py``), children and folders (``tree.py``); v1 routing.

:class:`ConfluenceApi` maps ``(method, path)`` (the path without the ``/ex/confluence/{cloudId}`` prefix) to a
:class:`Route` carrying the OAuth scopes the operation accepts (from the OpenAPI document's ``x-atlassian-oauth2-scopes``)
and its handler. Lists are paginated with opaque signed cursors (``paging.py``): a tampered or foreign cursor
answers 400; the ``next`` link is relative to the site root (``/wiki/api/v2/...``) and its cursor is never the
last parameter. Of v1, only label add, attachment upload and CQL search are served (``v1.py``); every other
``/wiki/rest/api/space...`` and ``/wiki/rest/api/content...`` path answers 410 (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._http import V1_GONE_BODY, ApiRequest, Handler, Reply, ReplyError, bad_param, v2_error
from .bodies import READ_FORMATS
from .comments import CommentRoutes
from .confluence import SPACE_STATUSES, SPACE_TYPES, ConfluenceModel
from .labels import PREFIXES
from .paging import DEFAULT_LIMIT, MAX_LIMIT, Cursors, paginate_v2
from .tree import TreeRoutes
from .v1 import V1Api

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ApiRequest", "ConfluenceApi", "Route"]

MAX_BODY_BYTES = 5 * 1024 * 1024
ATTACHMENT_DEFAULT_LIMIT = 50
SPACE_SORTS = ("id", "-id", "key", "-key", "name", "-name")
PAGE_SORTS = ("id", "-id", "created-date", "-created-date", "modified-date", "-modified-date", "title", "-title")
PAGE_STATUSES = ("current", "archived", "deleted", "trashed")
LABEL_SORTS = ("created-date", "-created-date", "id", "-id", "name", "-name")
ATTACHMENT_SORTS = ("created-date", "-created-date", "modified-date", "-modified-date")
ATTACHMENT_STATUSES = ("current", "archived", "trashed")

Scopes = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Route:
    """One route: ``template`` like ``"GET /wiki/api/v2/pages/{id}"``.

    :param scopes: the accepted scope sets: a token passes with ALL the scopes of ANY one set; empty: unchecked.
    """

    template: str
    scopes: Scopes
    handler: Handler

    @property
    def scope(self) -> str | None:
        """The first scope of the first accepted set (None when no scope is checked)."""
        return self.scopes[0][0] if self.scopes and self.scopes[0] else None

    def allows(self, granted: Iterable[str]) -> bool:
        """Whether a token with the ``granted`` scopes may call this route."""
        have = set(granted)
        return not self.scopes or any(set(needed) <= have for needed in self.scopes)


def _enum(req: ApiRequest, name: str, allowed: tuple[str, ...]) -> str | None:
    value = req.one(name)
    if value is not None and value not in allowed:
        raise bad_param(f"Provided value {{{value}}} for '{name}' is not valid. Expected one of {', '.join(allowed)}")
    return value


def _ints(req: ApiRequest, name: str) -> list[int]:
    values = req.many(name)
    bad = [value for value in values if not value.isdigit()]
    if bad:
        raise bad_param(f"Provided value {{{bad[0]}}} for '{name}' is not the correct type. Expected type is long")
    return [int(value) for value in values]


def _bool(req: ApiRequest, name: str) -> bool:
    value = (req.one(name) or "false").lower()
    if value not in ("true", "false"):
        raise bad_param(f"Provided value {{{value}}} for '{name}' is not the correct type. Expected type is boolean")
    return value == "true"


def _path_id(value: str) -> int:
    if not value.isdigit():
        raise bad_param(f"Provided value {{{value}}} for 'id' is not the correct type. Expected type is long")
    return int(value)


def _gone(req: ApiRequest, args: tuple[str, ...]) -> Reply:
    return Reply(410, V1_GONE_BODY)


class ConfluenceApi:
    """The Confluence routes of one emulated site.

    :param model: the spaces and pages (with their labels and attachments).
    :param cursor_secret: bytes mixed into every cursor hash.
    """

    def __init__(self, model: ConfluenceModel, cursor_secret: bytes) -> None:
        self.model = model
        self._cursors = Cursors(cursor_secret)
        self.tree = TreeRoutes(model, self._live_page, self._paginate, model.now)
        v2 = "/wiki/api/v2"
        table: list[tuple[str, str, str, str, Handler]] = [
            ("GET", r"/spaces", "/spaces", "read:space:confluence", self._list_spaces),
            ("GET", r"/spaces/([^/]+)", "/spaces/{id}", "read:space:confluence", self._get_space),
            ("GET", r"/spaces/([^/]+)/pages", "/spaces/{id}/pages", "read:page:confluence", self._space_pages),
            ("GET", r"/pages", "/pages", "read:page:confluence", self._list_pages),
            ("POST", r"/pages", "/pages", "write:page:confluence", self._create_page),
            ("GET", r"/pages/([^/]+)", "/pages/{id}", "read:page:confluence", self._get_page),
            ("PUT", r"/pages/([^/]+)", "/pages/{id}", "write:page:confluence", self._update_page),
            ("DELETE", r"/pages/([^/]+)", "/pages/{id}", "delete:page:confluence", self._delete_page),
            ("GET", r"/pages/([^/]+)/labels", "/pages/{id}/labels", "read:page:confluence", self._page_labels),
            (
                "GET",
                r"/pages/([^/]+)/attachments",
                "/pages/{id}/attachments",
                "read:attachment:confluence",
                self._page_attachments,
            ),
            *CommentRoutes(model, self._live_page, self._paginate).table(),
            *self.tree.table(),
        ]
        self._routes = [
            (method, re.compile(f"^{v2}{pattern}/?$"), Route(f"{method} {v2}{template}", ((scope,),), handler))
            for method, pattern, template, scope, handler in table
        ]
        # an attachment's downloadLink, relative to the site's /wiki, served behind the gateway (never the site)
        self._routes.append(
            (
                "GET",
                re.compile(r"^/wiki/download/attachments/([^/]+)/([^/]+)$"),
                Route(
                    "GET /wiki/download/attachments/{id}/{filename}", (("read:attachment:confluence",),), self._download
                ),
            )
        )
        v1 = "/wiki/rest/api"
        self._routes += [
            (method, re.compile(f"^{v1}{pattern}/?$"), Route(f"{method} {v1}{template}", scopes, handler))
            for method, pattern, template, scopes, handler in [
                *V1Api(model, self._cursors).routes(),
                *self.tree.v1_routes(),
            ]
        ]
        self._v1_gone = re.compile(r"^/wiki/rest/api/(space|content)(/.*)?$")

    def match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]] | None:
        """Return the route for ``method path`` and the path's captured ids, or None when there is none.

        The served v1 routes come first; any other method or path under ``/wiki/rest/api/space`` or
        ``/wiki/rest/api/content`` is the removed v1 API (410).
        """
        for route_method, pattern, route in self._routes:
            found = pattern.match(path)
            if found and route_method == method:
                return route, found.groups()
        if self._v1_gone.match(path):
            return Route(f"{method} {path}", (), _gone), ()
        return None

    def _paginate(
        self,
        req: ApiRequest,
        items: list[Any],
        render: Callable[[Any], dict[str, Any]],
        default_limit: int = DEFAULT_LIMIT,
    ) -> Reply:
        return paginate_v2(
            req,
            items,
            render,
            cursors=self._cursors,
            base=self.model.base,
            lock=self.model.lock,
            default_limit=default_limit,
        )

    # ----------------------------------------------------------------- spaces
    def _list_spaces(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        spaces = self.model.query_spaces(
            ids=_ints(req, "ids"),
            keys=req.many("keys"),
            type=_enum(req, "type", SPACE_TYPES),
            status=_enum(req, "status", SPACE_STATUSES),
            labels=req.many("labels"),
            sort=_enum(req, "sort", SPACE_SORTS) or "id",
        )
        return self._paginate(req, spaces, self.model.space_json)

    def _get_space(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        with self.model.lock:
            space = self.model.space(_path_id(args[0]))
            if space is None:
                return v2_error(404, "NOT_FOUND", f"Space {args[0]} was not found")
            return Reply(200, self.model.space_json(space, single=True, include_labels=_bool(req, "include-labels")))

    # ----------------------------------------------------------------- pages
    def _pages(self, req: ApiRequest, space_ids: list[int], root_only: bool) -> Reply:
        body_format = _enum(req, "body-format", ("storage", "atlas_doc_format"))
        statuses = req.many("status") or ["current", "archived"]
        for status in statuses:
            if status not in PAGE_STATUSES:
                raise bad_param(f"Provided value {{{status}}} for 'status' is not valid")
        pages = self.model.query_pages(
            ids=_ints(req, "id"),
            space_ids=space_ids,
            title=req.one("title"),
            statuses=statuses,
            sort=_enum(req, "sort", PAGE_SORTS) or "id",
            root_only=root_only,
        )
        return self._paginate(req, pages, lambda page: self.model.page_json(page, body_format=body_format))

    def _list_pages(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        return self._pages(req, _ints(req, "space-id"), root_only=False)

    def _space_pages(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        space_id = _path_id(args[0])
        if self.model.space(space_id) is None:
            return v2_error(404, "NOT_FOUND", f"Space {args[0]} was not found")
        return self._pages(req, [space_id], root_only=_enum(req, "depth", ("all", "root")) == "root")

    def _get_page(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        page_id = _path_id(args[0])
        body_format = _enum(req, "body-format", READ_FORMATS)
        statuses = req.many("status") or ["current", "archived", "draft"]
        with self.model.lock:
            page = self.model.page(page_id)
            if page is None or page.status not in statuses:
                return v2_error(404, "NOT_FOUND", f"Page {page_id} was not found")
            return Reply(200, self.model.page_json(page, body_format=body_format, single=True))

    def _check_size(self, req: ApiRequest) -> None:
        if len(req.body) > MAX_BODY_BYTES:
            raise ReplyError(v2_error(413, "REQUEST_ENTITY_TOO_LARGE", "The request is larger than 5 MB"))

    def _create_page(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        self._check_size(req)
        root_level = _bool(req, "root-level")
        with self.model.lock:
            page = self.model.create_page(req.json(), root_level=root_level)
            return Reply(200, self.model.page_json(page, body_format=page.representation, single=True))

    def _update_page(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        self._check_size(req)
        page_id = _path_id(args[0])
        with self.model.lock:
            page = self.model.update_page(page_id, req.json())
            return Reply(200, self.model.page_json(page, body_format=page.representation, single=True))

    def _delete_page(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        self.model.delete_page(_path_id(args[0]), purge=_bool(req, "purge"), draft=_bool(req, "draft"))
        return Reply(204)

    # ----------------------------------------------------------------- labels and attachments
    def _live_page(self, value: str) -> int:
        page_id = _path_id(value)
        page = self.model.page(page_id)
        if page is None or page.status in ("trashed", "deleted"):
            raise ReplyError(v2_error(404, "NOT_FOUND", f"Page {value} was not found"))
        return page_id

    def _page_labels(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        page_id = self._live_page(args[0])
        labels = self.model.labels.of(page_id, _enum(req, "prefix", (*PREFIXES, "system")))
        sort = _enum(req, "sort", LABEL_SORTS)
        if sort is not None and sort.lstrip("-") != "created-date":
            field = sort.lstrip("-")
            labels.sort(key=lambda label: getattr(label, field))
        if sort is not None and sort.startswith("-"):
            labels.reverse()
        return self._paginate(req, labels, lambda label: label.v2_json())

    def _page_attachments(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        page_id = self._live_page(args[0])
        statuses = req.many("status") or ["current", "archived"]
        for status in statuses:
            if status not in ATTACHMENT_STATUSES:
                raise bad_param(f"Provided value {{{status}}} for 'status' is not valid")
        filename, media_type = req.one("filename"), req.one("mediaType")
        found = [
            att
            for att in self.model.attachments.of(page_id)
            if att.status in statuses
            and (filename is None or att.title == filename)
            and (media_type is None or att.media_type == media_type)
        ]
        sort = _enum(req, "sort", ATTACHMENT_SORTS)
        if sort is not None:
            field = "created_at" if sort.lstrip("-") == "created-date" else "version_at"
            found.sort(key=lambda att: (getattr(att, field), att.id), reverse=sort.startswith("-"))
        author = self.model.author_id
        return self._paginate(
            req, found, lambda att: self.model.attachments.v2_json(att, author), default_limit=ATTACHMENT_DEFAULT_LIMIT
        )

    def _download(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        """The content of the page's attachment (its current version; an older ``version`` answers 404)."""
        page_id = self._live_page(args[0])
        found = self.model.attachments.find(page_id, unquote(args[1]))
        version = req.one("version")
        if found is None or found.status != "current" or (version is not None and version != str(found.version)):
            return v2_error(404, "NOT_FOUND", "The attachment was not found")
        return Reply(200, found.data, content_type=found.media_type)
