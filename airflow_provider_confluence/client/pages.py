"""Typed page methods of :class:`~airflow_provider_confluence.client.confluence.ConfluenceClient` (a mixin).

Besides the plain calls, this is where "a write that may have landed" is resolved:

* ``create_page``: a POST is never re-sent. When it fails in a way that may have reached Confluence (a
  connection error or timeout, a 5xx), the page is looked up by space and title: if it is there, the POST
  landed and the page is returned; if not, the original error is raised, saying the page was not created.
* ``update_page``: a PUT is idempotent and may be re-sent after a 5xx or a timeout; if that re-sent PUT then
  answers 409 (the first try had landed and bumped the version), the page is re-read and, when it holds exactly
  this version, title and storage body, returned instead of a false conflict.

This module imports nothing from Airflow.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConflict,
    ConfluenceConnectionError,
    ConfluenceError,
)
from airflow_provider_confluence.retry import RetryState

__all__ = ["PAGES_PATH", "PagesMixin"]

log = logging.getLogger(__name__)

PAGES_PATH = "/wiki/api/v2/pages"


def _may_have_landed(exc: ConfluenceError) -> bool:
    """True when a failed write may still have been processed by Confluence."""
    if isinstance(exc, ConfluenceApiError):
        return (exc.status_code or 0) >= 500
    return isinstance(exc, ConfluenceConnectionError)  # no answer arrived


def _page_path(page_id: str) -> str:
    return f"{PAGES_PATH}/{quote(str(page_id), safe='')}"


class PagesMixin(MixinBase):
    """Page methods; the host class provides ``request``, ``url``, ``_send`` and ``_site_url``."""

    def _single(self, page: Any, listing: Any = None, *, method: str = "GET", path: str = PAGES_PATH) -> dict[str, Any]:
        """Check that ``page`` is an object and give it ``_links.base`` (from the listing, else the site)."""
        if not isinstance(page, dict):
            raise ConfluenceApiError(200, method, self.url(path), None, "The answer is not a page object.")
        links = page.get("_links")
        if not (isinstance(links, dict) and links.get("base")):
            listing_links = listing.get("_links") if isinstance(listing, dict) else None
            base = listing_links.get("base") if isinstance(listing_links, dict) else None
            base = base or (f"{self._site_url}/wiki" if self._site_url else None)
            if base:
                page["_links"] = {**(links if isinstance(links, dict) else {}), "base": base}
        return page

    def get_page(self, page_id: str, *, body_format: str | None = None) -> dict[str, Any]:
        """Return one page by id.

        :param page_id: the page's id.
        :param body_format: include the body in this format (``storage``, ``atlas_doc_format``, ...).
        :raises ConfluenceNotFound: when there is no such page or the app's user cannot see it.
        """
        params = {"body-format": body_format} if body_format else None
        return self._single(self.request("GET", _page_path(page_id), params=params), path=_page_path(page_id))

    def find_page(
        self, *, space_id: str, title: str, body_format: str | None = None, status: str = "current"
    ) -> dict[str, Any] | None:
        """Return the page with this exact title in a space, or None.

        :param space_id: the space's numeric id.
        :param title: the page title.
        :param body_format: include the body in this format.
        :param status: ``current`` (default) or ``draft``.
        """
        params: dict[str, Any] = {"space-id": str(space_id), "title": title, "status": status}
        if body_format:
            params["body-format"] = body_format
        listing = self.request("GET", PAGES_PATH, params=params)
        results = listing.get("results") if isinstance(listing, dict) else None
        pages = [p for p in results or [] if isinstance(p, dict)]
        page = next((p for p in pages if p.get("title") == title), None)  # exact title only: never another page
        return None if page is None else self._single(page, listing)

    def create_page(
        self,
        *,
        space_id: str,
        title: str,
        body: str,
        parent_id: str | None = None,
        representation: str = "storage",
        status: str = "current",
    ) -> dict[str, Any]:
        """Create a page (``POST /wiki/api/v2/pages``, which answers 200) and return it.

        The POST is sent once. If it fails in a way that may have landed, the page is looked up by title: found,
        it is returned; not found, the original error is raised saying the page was not created.

        :param space_id: the space's numeric id (not its key).
        :param title: the page title (unique within the space).
        :param body: the page body in ``representation``.
        :param parent_id: the parent page's id (default: under the space's home page).
        :param representation: ``storage`` (default), ``atlas_doc_format`` or ``wiki``.
        :param status: ``current`` (default) or ``draft``.
        :raises ConfluenceApiError: for example 400 when a page with this title already exists.
        """
        payload: dict[str, Any] = {"spaceId": str(space_id), "status": status, "title": title}
        if parent_id:
            payload["parentId"] = str(parent_id)
        payload["body"] = {"representation": representation, "value": body}
        try:
            page = self.request("POST", PAGES_PATH, json=payload)
        except ConfluenceError as exc:
            if not _may_have_landed(exc):
                raise
            return self._created_after_all(exc, space_id=str(space_id), title=title, status=status)
        return self._single(page, method="POST")

    def _created_after_all(self, exc: ConfluenceError, *, space_id: str, title: str, status: str) -> dict[str, Any]:
        log.warning("Creating a page failed (%s); checking whether it was created anyway", type(exc).__name__)
        checked = True
        try:
            found = self.find_page(space_id=space_id, title=title, status=status)
        except ConfluenceError as check_exc:
            log.warning("Could not check whether the page was created (%s)", type(check_exc).__name__)
            found, checked = None, False
        if found is not None:
            log.warning("The POST had landed despite the error: page %s exists; returning it", found.get("id"))
            return found
        outcome = (
            "The page was not created"
            if checked
            else "It could not be checked whether the page was created (a retry then fails on the duplicate title)"
        )
        note = f"{outcome}; the POST was not re-sent. The task may be retried."
        if isinstance(exc, ConfluenceApiError):
            answered = exc.status_code or 0
            raise ConfluenceApiError(
                answered,
                exc.method,
                exc.url,
                exc.code,
                f"{exc.detail} {note}",
                trace_id=exc.trace_id,
                headers=exc.headers,
            ) from exc
        raise ConfluenceConnectionError(f"{exc.message} {note}") from exc

    def update_page(
        self,
        *,
        page_id: str,
        title: str,
        body: str,
        version: int,
        representation: str = "storage",
        status: str = "current",
        message: str | None = None,
        parent_id: str | None = None,
    ) -> dict[str, Any]:
        """Update a page (``PUT /wiki/api/v2/pages/{id}``) and return it.

        :param page_id: the page's id.
        :param title: the (new) title.
        :param body: the new body in ``representation``.
        :param version: the NEW version number: the current one + 1.
        :param representation: ``storage`` (default), ``atlas_doc_format`` or ``wiki``.
        :param status: ``current`` (default) or ``draft``.
        :param message: a version comment.
        :param parent_id: move the page under this parent (same space; default: keep its parent).
        :raises ConfluenceConflict: 409, the version is stale (someone else updated the page): re-read it.
        """
        version_info: dict[str, Any] = {"number": int(version)}
        if message:
            version_info["message"] = message
        payload: dict[str, Any] = {
            "id": str(page_id),
            "status": status,
            "title": title,
            "body": {"representation": representation, "value": body},
            "version": version_info,
        }
        if parent_id:
            payload["parentId"] = str(parent_id)
        state = RetryState()
        path = _page_path(page_id)
        try:
            page, _ = self._send("PUT", self.url(path), json_body=payload, state=state)
        except ConfluenceConflict:
            if not state.resent_after_uncertain:
                raise
            landed = self._updated_after_all(page_id, title, body, int(version), representation)
            if landed is None:
                raise
            return landed
        return self._single(page, method="PUT", path=path)

    def _updated_after_all(
        self, page_id: str, title: str, body: str, version: int, representation: str
    ) -> dict[str, Any] | None:
        """After a re-sent PUT answered 409: the page if it holds exactly what this PUT wrote, else None."""
        if representation != "storage":
            return None
        try:
            page = self.get_page(page_id, body_format="storage")
        except ConfluenceError:
            return None
        stored = ((page.get("body") or {}).get("storage") or {}).get("value")
        number = (page.get("version") or {}).get("number")
        if number == version and page.get("title") == title and stored == body:
            log.warning("An earlier try of the PUT had landed: page %s is at version %s", page_id, version)
            return page
        return None
