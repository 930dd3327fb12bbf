"""Footer comments of a page over v2 (a mixin of the client).

``POST /wiki/api/v2/footer-comments`` (scope ``write:comment:confluence``) adds a top-level footer comment to a
page and answers 201; ``GET /wiki/api/v2/pages/{id}/footer-comments`` (scope ``read:comment:confluence``) lists
a page's footer comments with cursor pagination. Scopes from the ``x-atlassian-oauth2-scopes`` of Atlassian's v2
OpenAPI document (https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-comment/).

Each successful POST makes a new comment, so it is never re-sent after a failure that may have landed (a 5xx,
a read timeout); a 429 ("not processed") is waited out and re-sent, as for every call.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError

__all__ = ["COMMENT_REPRESENTATIONS", "FOOTER_COMMENTS_PATH", "CommentsMixin", "READ_SCOPE", "WRITE_SCOPE"]

log = logging.getLogger(__name__)

FOOTER_COMMENTS_PATH = "/wiki/api/v2/footer-comments"
READ_SCOPE = "read:comment:confluence"
WRITE_SCOPE = "write:comment:confluence"
#: The body formats a comment can be written in (``CommentBodyWrite.representation``).
COMMENT_REPRESENTATIONS = ("storage", "atlas_doc_format", "wiki")


def _page_comments_path(page_id: str) -> str:
    return f"/wiki/api/v2/pages/{quote(str(page_id), safe='')}/footer-comments"


def check_page_id(page_id: object) -> str:
    """A page id as Confluence takes it in a path: digits only."""
    text = str(page_id).strip() if page_id is not None else ""
    if not text.isdigit():
        raise ConfluenceConfigError(
            f"page_id={page_id!r} is not a page id: give the number after /pages/ in the page's URL."
        )
    return text


class CommentsMixin(MixinBase):
    """Footer-comment methods; the host class provides ``request``, ``paginate`` and ``_site_url``."""

    def add_footer_comment(self, page_id: str, body: str, *, representation: str = "storage") -> dict[str, Any]:
        """Add a footer comment to a page and return it (the v2 ``FooterCommentModel``, ``_links.base`` filled in).

        :param page_id: the page's id.
        :param body: the comment's body in ``representation``.
        :param representation: ``storage`` (default), ``atlas_doc_format`` or ``wiki``.
        :raises ConfluenceConfigError: for an empty body, a bad page id or representation; nothing is sent then.
        :raises ConfluenceNotFound: when there is no such page or the app's user cannot see it.
        """
        pid = check_page_id(page_id)
        if representation not in COMMENT_REPRESENTATIONS:
            raise ConfluenceConfigError(
                f"representation={representation!r} is not one of {', '.join(COMMENT_REPRESENTATIONS)}."
            )
        if not isinstance(body, str) or not body.strip():
            raise ConfluenceConfigError("A comment needs a body: give the text to post (it is empty).")
        payload = {"pageId": pid, "body": {"representation": representation, "value": body}}
        comment = self.request("POST", FOOTER_COMMENTS_PATH, json=payload)  # never re-sent: a new comment each time
        if not isinstance(comment, dict) or comment.get("id") is None:
            raise ConfluenceApiError(
                201,
                "POST",
                self.url(FOOTER_COMMENTS_PATH),
                None,
                "The answer is not a comment object; the comment may have been added.",
            )
        raw_links = comment.get("_links")
        links = raw_links if isinstance(raw_links, dict) else {}
        if not links.get("base") and self._site_url:
            comment["_links"] = {**links, "base": f"{self._site_url}/wiki"}
        log.info("Added footer comment %s to page %s.", comment.get("id"), pid)
        return comment

    def list_footer_comments(self, page_id: str, *, body_format: str | None = "storage") -> Iterator[dict[str, Any]]:
        """Yield the page's footer comments (v2 objects), following every page of results.

        :param page_id: the page's id.
        :param body_format: include each body in this format (``storage``, ``atlas_doc_format``), or None.
        :raises ConfluenceNotFound: when there is no such page or the app's user cannot see it.
        """
        params = {"body-format": body_format} if body_format else None
        return self.paginate(_page_comments_path(check_page_id(page_id)), params)
