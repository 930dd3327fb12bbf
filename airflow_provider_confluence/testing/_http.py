"""Small HTTP-level building blocks shared by the emulator's modules: replies and error bodies.

Each error form is the one Atlassian uses for that layer (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/): Confluence v2
``{"errors": [{"status", "code", "title", "detail"}]}``, Confluence v1 ``{"statusCode", "message"}``, the
API gateway ``{"code", "message"}`` and the token endpoint ``{"error", "error_description"}``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

#: the answer of every removed v1 endpoint behind the OAuth gateway (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/)
V1_GONE_BODY: dict[str, Any] = {
    "statusCode": 410,
    "data": {"authorized": True, "valid": True, "errors": [], "successful": True},
    "message": "com.atlassian.confluence.api.service.exceptions.pagesmodes.GoneException: "
    "This deprecated endpoint has been removed.",
}

#: the title of the duplicate-title error of Confluence v2 (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/)
DUPLICATE_TITLE = "A page with this title already exists: A page already exists with the same TITLE in this space"


@dataclass
class Reply:
    """One HTTP answer of the emulator.

    :param status: the HTTP status code.
    :param body: a JSON-able value (sent as JSON), ``str``/``bytes`` (sent as is) or None (no body).
    :param headers: extra response headers.
    :param content_type: the ``Content-Type`` for ``str``/``bytes`` bodies.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        """Return the body as bytes (JSON-encoded unless it already is text or bytes)."""
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class ApiRequest:
    """A request to a Confluence route.

    :param method: the HTTP method.
    :param path: the path without the gateway prefix, e.g. ``/wiki/api/v2/spaces``.
    :param pairs: the query parameters in their order.
    :param body: the raw body.
    :param headers: the request headers, names lower-cased.
    """

    method: str
    path: str
    pairs: list[tuple[str, str]]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
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


class ReplyError(Exception):
    """Raised by the models to answer a request with an error :class:`Reply`.

    :param reply: the answer to send.
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.status}: {reply.body!r}")
        self.reply = reply


def reason(status: int) -> str:
    """Return the standard reason phrase of ``status`` ("Error" when unknown)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def v2_error(status: int, code: str | None = None, title: str | None = None, detail: str | None = None) -> Reply:
    """Build a Confluence v2 error answer.

    :param status: the HTTP status.
    :param code: the error code (default: the upper-cased reason phrase, ``NOT_FOUND``).
    :param title: the human title (default: the reason phrase).
    :param detail: the detail (JSON null when None).
    """
    phrase = reason(status)
    body = {
        "errors": [
            {
                "status": status,
                "code": code or phrase.upper().replace(" ", "_").replace("-", "_"),
                "title": title or phrase,
                "detail": detail,
            }
        ]
    }
    return Reply(status, body)


def bad_param(title: str) -> ReplyError:
    """Return a 400 ``INVALID_REQUEST_PARAMETER`` error to raise for a bad query parameter."""
    return ReplyError(v2_error(400, "INVALID_REQUEST_PARAMETER", title))


def bad_request(title: str) -> ReplyError:
    """Return a 400 ``BAD_REQUEST`` error to raise for a bad request body."""
    return ReplyError(v2_error(400, "BAD_REQUEST", title))


def gateway_error(status: int, message: str | None = None) -> Reply:
    """Build an Atlassian API gateway error answer ``{"code", "message"}``."""
    return Reply(status, {"code": status, "message": message or reason(status)})


def v1_error(status: int, message: str, *, authorized: bool = False, valid: bool = True) -> Reply:
    """Build a Confluence v1 error answer ``{"statusCode", "data", "message"}``."""
    data = {"authorized": authorized, "valid": valid, "errors": [], "successful": False}
    return Reply(status, {"statusCode": status, "data": data, "message": message})


def v1_bad_request(message: str) -> ReplyError:
    """Return a 400 Confluence v1 error to raise, its message prefixed like Confluence's."""
    text = f"com.atlassian.confluence.api.service.exceptions.BadRequestException: {message}"
    return ReplyError(v1_error(400, text, authorized=True, valid=False))


def v1_not_found(content_id: str) -> ReplyError:
    """Return the 404 Confluence v1 error to raise for content that does not exist (or is trashed)."""
    text = (
        "com.atlassian.confluence.api.service.exceptions.NotFoundException: "
        f"No content found with id: ContentId{{id={content_id}}}"
    )
    return ReplyError(v1_error(404, text, authorized=True))


def oauth_error(status: int, error: str, description: str) -> Reply:
    """Build a token endpoint error answer ``{"error", "error_description"}``."""
    return Reply(status, {"error": error, "error_description": description}, {"Cache-Control": "no-store"})


def iso(epoch: float) -> str:
    """Format epoch seconds the way Confluence does: ``YYYY-MM-DDTHH:mm:ss.sssZ``."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: a route handler: the request and the path's groups, to a reply
Handler = Callable[[ApiRequest, tuple[str, ...]], Reply]
#: cursor pages of a list: ``(req, items, render)``
Paginate = Callable[[ApiRequest, list[Any], Callable[[Any], dict[str, Any]]], Reply]


class PageRoutes:
    """A group of v2 route handlers about pages, for :class:`~.v2.ConfluenceApi`'s route table.

    :param model: the spaces and pages of the emulated site.
    :param live_page: the id of a page that is not trashed (raises a 404 reply otherwise).
    :param paginate: cursor pages of a list.
    """

    def __init__(self, model: Any, live_page: Callable[[str], int], paginate: Paginate) -> None:
        self.model = model
        self._live_page = live_page
        self._paginate = paginate
