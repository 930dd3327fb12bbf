"""Footer comments of the emulated site: the store and its two v2 routes (no HTTP server here).

``POST /wiki/api/v2/footer-comments`` (scope ``write:comment:confluence``) takes ``CreateFooterCommentModel``
(``pageId`` and ``body``; replies and comments on blog posts, attachments or custom content are not emulated:
400) and answers 201 with the comment; ``GET /wiki/api/v2/pages/{id}/footer-comments`` (scope
``read:comment:confluence``) lists a page's footer comments, oldest first, with cursor pages. A comment never
changes its page's version. Scopes from ``x-atlassian-oauth2-scopes`` of Atlassian's v2 OpenAPI document.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ._http import ApiRequest, Handler, PageRoutes, Reply, ReplyError, bad_param, bad_request, iso, v2_error
from .bodies import normalize_body, render_body
from .clock import Clock

COMMENT_SORTS = ("created-date", "-created-date", "modified-date", "-modified-date")
COMMENT_STATUSES = ("current", "archived", "trashed", "deleted", "historical", "draft")
COMMENT_READ_FORMATS = ("storage", "atlas_doc_format")


@dataclass
class FooterComment:
    """A footer comment on a page."""

    id: int
    page_id: int
    representation: str
    value: str
    created_at: float
    status: str = "current"


class CommentStore:
    """The footer comments of every page.

    :param clock: the emulator's clock.
    :param lock: the emulator's one lock.
    """

    def __init__(self, *, clock: Clock, lock: threading.RLock) -> None:
        self._clock = clock
        self._lock = lock
        self._by_page: dict[int, list[FooterComment]] = {}
        self._next_id = 3014657

    def add(self, page_id: int, representation: str, value: str) -> FooterComment:
        with self._lock:
            comment = FooterComment(self._next_id, page_id, representation, value, self._clock.now())
            self._next_id += 1
            self._by_page.setdefault(page_id, []).append(comment)
            return comment

    def of(self, page_id: int) -> list[FooterComment]:
        """A page's footer comments, oldest first."""
        with self._lock:
            return list(self._by_page.get(page_id, []))


def comment_json(
    comment: FooterComment, *, title: str, author_id: str, body_format: str | None, base: str | None = None
) -> dict[str, Any]:
    """Render a comment like ``FooterCommentModel`` (``body`` only with ``body_format``)."""
    out: dict[str, Any] = {
        "id": str(comment.id),
        "status": comment.status,
        "title": f"Re: {title}",
        "pageId": str(comment.page_id),
        "version": {
            "createdAt": iso(comment.created_at),
            "message": "",
            "number": 1,
            "minorEdit": False,
            "authorId": author_id,
        },
    }
    if body_format:
        out["body"] = render_body(comment.representation, comment.value, body_format)
    out["_links"] = {"webui": f"/pages/viewpage.action?pageId={comment.page_id}&focusedCommentId={comment.id}"}
    if base:
        out["_links"]["base"] = base
    return out


class CommentRoutes(PageRoutes):
    """The footer-comment handlers (``model`` holds the ``comments`` store, ``lock``, ``base`` and ``author_id``)."""

    def table(self) -> list[tuple[str, str, str, str, Handler]]:
        return [
            ("POST", r"/footer-comments", "/footer-comments", "write:comment:confluence", self.create),
            (
                "GET",
                r"/pages/([^/]+)/footer-comments",
                "/pages/{id}/footer-comments",
                "read:comment:confluence",
                self.list_for_page,
            ),
        ]

    def _title(self, page_id: int) -> str:
        return str(self.model.page(page_id).title)

    def create(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        payload = req.json()
        if not isinstance(payload, dict):
            raise bad_request("The request body must be a CreateFooterCommentModel object")
        others = [
            name
            for name in ("blogPostId", "parentCommentId", "attachmentId", "customContentId")
            if payload.get(name) is not None
        ]
        if others:
            raise bad_request(f"This emulator adds top-level page comments only ({others[0]} is not emulated)")
        page_ref = payload.get("pageId")
        if not isinstance(page_ref, str) or not page_ref.isdigit():
            raise bad_request("pageId must be the id of the page to comment on")
        representation, value = normalize_body(payload.get("body"))
        if not value.strip():
            raise bad_request("A comment body cannot be empty")
        with self.model.lock:
            try:
                page_id = self._live_page(page_ref)
            except ReplyError:
                return v2_error(404, "NOT_FOUND", f"Page {page_ref} was not found")
            comment = self.model.comments.add(page_id, representation, value)
            return Reply(
                201,
                comment_json(
                    comment,
                    title=self._title(page_id),
                    author_id=self.model.author_id,
                    body_format=representation if representation != "wiki" else "storage",
                    base=self.model.base,
                ),
            )

    def list_for_page(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        page_id = self._live_page(args[0])
        body_format = req.one("body-format")
        if body_format is not None and body_format not in COMMENT_READ_FORMATS:
            raise bad_param(f"Provided value {{{body_format}}} for 'body-format' is not valid")
        statuses = req.many("status") or ["current"]
        for status in statuses:
            if status not in COMMENT_STATUSES:
                raise bad_param(f"Provided value {{{status}}} for 'status' is not valid")
        sort = req.one("sort")
        if sort is not None and sort not in COMMENT_SORTS:
            raise bad_param(f"Provided value {{{sort}}} for 'sort' is not valid")
        found = [c for c in self.model.comments.of(page_id) if c.status in statuses]
        if sort is not None and sort.startswith("-"):
            found.reverse()
        title = self._title(page_id)
        return self._paginate(
            req, found, lambda c: comment_json(c, title=title, author_id=self.model.author_id, body_format=body_format)
        )
