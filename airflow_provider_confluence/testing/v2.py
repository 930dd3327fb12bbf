"""The Confluence REST routes behind the gateway: v2 spaces and pages, and the removed v1 endpoints.

:class:`ConfluenceApi` maps ``(method, path)`` (the path without the ``/ex/confluence/{cloudId}`` prefix) to a
:class:`Route` carrying the OAuth scope the operation needs (FACTS.md §4, from ``x-atlassian-oauth2-scopes``) and
its handler. Lists are paginated with opaque cursors: URL-safe base64 of ``"<offset>:<hash>"`` where the hash
covers the endpoint, the filters and a per-emulator secret, so a tampered or foreign cursor answers 400. The
``next`` link is relative to the site root (``/wiki/api/v2/...``) and its cursor is never the last parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

from ._http import V1_GONE_BODY, Reply, ReplyError, bad_param, bad_request, v2_error
from .bodies import READ_FORMATS
from .confluence import SPACE_STATUSES, SPACE_TYPES, ConfluenceModel

MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_LIMIT = 25
MAX_LIMIT = 250
SPACE_SORTS = ("id", "-id", "key", "-key", "name", "-name")
PAGE_SORTS = ("id", "-id", "created-date", "-created-date", "modified-date", "-modified-date", "title", "-title")
PAGE_STATUSES = ("current", "archived", "deleted", "trashed")


@dataclass
class ApiRequest:
    """A request to a Confluence route.

    :param method: the HTTP method.
    :param path: the path without the gateway prefix, e.g. ``/wiki/api/v2/spaces``.
    :param pairs: the query parameters in their order.
    :param body: the raw body.
    """

    method: str
    path: str
    pairs: list[tuple[str, str]]
    body: bytes = b""
    query: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.query = {}
        for name, value in self.pairs:
            self.query.setdefault(name, []).append(value)

    def one(self, name: str) -> str | None:
        """The last value of a query parameter, or None when absent or empty."""
        values = self.query.get(name)
        return values[-1] if values and values[-1] != "" else None

    def many(self, name: str) -> list[str]:
        """Every value of an array parameter, repeated and/or comma-separated."""
        return [part.strip() for value in self.query.get(name, []) for part in value.split(",") if part.strip()]

    def json(self) -> Any:
        """The body parsed as JSON; a 400 v2 error when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            raise bad_request("The request body is not valid JSON") from None


Handler = Callable[[ApiRequest, tuple[str, ...]], Reply]


@dataclass(frozen=True)
class Route:
    """One route: ``template`` like ``"GET /wiki/api/v2/pages/{id}"``; ``scope`` None when none is checked."""

    template: str
    scope: str | None
    handler: Handler


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


def _limit(req: ApiRequest) -> int:
    raw = req.one("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise bad_param(f"Provided value {{{raw}}} for 'limit' is not the correct type. Expected type is int") from None
    if limit < 1:
        raise bad_param(f"'limit' must be between 1 and {MAX_LIMIT}, got {limit}")
    return min(limit, MAX_LIMIT)


def _path_id(value: str) -> int:
    if not value.isdigit():
        raise bad_param(f"Provided value {{{value}}} for 'id' is not the correct type. Expected type is long")
    return int(value)


def _gone(req: ApiRequest, args: tuple[str, ...]) -> Reply:
    return Reply(410, V1_GONE_BODY)


class ConfluenceApi:
    """The Confluence routes of one emulated site.

    :param model: the spaces and pages.
    :param cursor_secret: bytes mixed into every cursor hash.
    """

    def __init__(self, model: ConfluenceModel, cursor_secret: bytes) -> None:
        self.model = model
        self._secret = cursor_secret
        v2 = "/wiki/api/v2"
        table: list[tuple[str, str, str, str | None, Handler]] = [
            ("GET", r"/spaces", "/spaces", "read:space:confluence", self._list_spaces),
            ("GET", r"/spaces/([^/]+)", "/spaces/{id}", "read:space:confluence", self._get_space),
            ("GET", r"/spaces/([^/]+)/pages", "/spaces/{id}/pages", "read:page:confluence", self._space_pages),
            ("GET", r"/pages", "/pages", "read:page:confluence", self._list_pages),
            ("POST", r"/pages", "/pages", "write:page:confluence", self._create_page),
            ("GET", r"/pages/([^/]+)", "/pages/{id}", "read:page:confluence", self._get_page),
            ("PUT", r"/pages/([^/]+)", "/pages/{id}", "write:page:confluence", self._update_page),
            ("DELETE", r"/pages/([^/]+)", "/pages/{id}", "delete:page:confluence", self._delete_page),
        ]
        self._routes = [
            (method, re.compile(f"^{v2}{pattern}/?$"), Route(f"{method} {v2}{template}", scope, handler))
            for method, pattern, template, scope, handler in table
        ]
        self._v1_gone = re.compile(r"^/wiki/rest/api/(space|content)(/.*)?$")

    def match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]] | None:
        """Return the route for ``method path`` and the path's captured ids, or None when there is none."""
        if self._v1_gone.match(path):
            return Route(f"{method} {path}", None, _gone), ()
        for route_method, pattern, route in self._routes:
            found = pattern.match(path)
            if found and route_method == method:
                return route, found.groups()
        return None

    # ----------------------------------------------------------------- pagination
    def _signature(self, req: ApiRequest) -> str:
        filters = sorted((name, value) for name, value in req.pairs if name not in ("cursor", "limit"))
        material = json.dumps([req.method, req.path, filters]).encode()
        return hmac.new(self._secret, material, hashlib.sha256).hexdigest()[:16]

    def _offset(self, req: ApiRequest, signature: str) -> int:
        cursor = req.one("cursor")
        if cursor is None:
            return 0
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
            offset, given = text.split(":")
            if offset.isdigit() and hmac.compare_digest(given, signature):
                return int(offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise bad_param("Invalid cursor: use the next link of the previous page unchanged")

    def _paginate(self, req: ApiRequest, items: list[Any], render: Callable[[Any], dict[str, Any]]) -> Reply:
        limit = _limit(req)
        signature = self._signature(req)
        offset = self._offset(req, signature)
        links: dict[str, str] = {}
        headers = {"Link": f'<{self.model.base}>; rel="base"'}
        if offset + limit < len(items):
            cursor = base64.urlsafe_b64encode(f"{offset + limit}:{signature}".encode()).decode().rstrip("=")
            rest = [(name, value) for name, value in req.pairs if name not in ("cursor", "limit")]
            links["next"] = f"{req.path}?{urlencode([('cursor', cursor), ('limit', str(limit)), *rest])}"
            headers["Link"] = f'<{links["next"]}>; rel="next", ' + headers["Link"]
        links["base"] = self.model.base
        with self.model.lock:
            results = [render(item) for item in items[offset : offset + limit]]
        return Reply(200, {"results": results, "_links": links}, headers)

    # ----------------------------------------------------------------- spaces
    def _list_spaces(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        spaces = self.model.query_spaces(
            ids=_ints(req, "ids"), keys=req.many("keys"), type=_enum(req, "type", SPACE_TYPES),
            status=_enum(req, "status", SPACE_STATUSES), labels=req.many("labels"),
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
            ids=_ints(req, "id"), space_ids=space_ids, title=req.one("title"), statuses=statuses,
            sort=_enum(req, "sort", PAGE_SORTS) or "id", root_only=root_only,
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
