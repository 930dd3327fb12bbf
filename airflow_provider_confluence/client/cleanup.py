"""Clean-up: delete pages, remove labels, keep only recent report pages (a mixin of the client).

* ``DELETE /wiki/api/v2/pages/{id}`` (``delete:page:confluence``) moves a page to the trash and answers 204.
  Purging (deleting for good) is the same call with ``purge=true`` on a page that is ALREADY in the trash, and
  needs permission to administer the space; so a purge trashes the page first when it is not there yet.
* Labels are removed over v1 ``DELETE /wiki/rest/api/content/{id}/label/{label}`` (204; granular
  ``write:label:confluence``, classic ``write:confluence-content``), since v2 has no label writes.
* The v2 document has no archive endpoint; archiving is not offered here.

Every write has ``dry_run``: the reads are made, the answer says what would change, and nothing is written.
A 401 "scope does not match" names the scope (see :mod:`.responses`). Endpoints and scopes from Atlassian's v2
OpenAPI document (https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/#api-pages-id-delete).

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.client.comments import check_page_id
from airflow_provider_confluence.client.labels import normalize_labels
from airflow_provider_confluence.client.pages import PAGES_PATH
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceNotFound, ConfluenceRateLimited

__all__ = ["CleanupMixin", "plan_retention"]

log = logging.getLogger(__name__)

#: Ids per ``GET /pages?id=...`` when reading the children's creation dates.
_IDS_PER_REQUEST = 250  # the document's maxItems of id


def _created(page: Mapping[str, Any]) -> datetime | None:
    text = page.get("createdAt")
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def plan_retention(
    pages: Sequence[Mapping[str, Any]],
    *,
    keep_latest: int | None = None,
    keep_days: float | None = None,
    now: datetime | None = None,
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Split pages into (kept, removed), newest first (by ``createdAt``, then id).

    A page is kept when it is among the ``keep_latest`` newest OR younger than ``keep_days`` days; with both
    unset nothing is removed. A page without a readable ``createdAt`` is always kept.

    :raises ConfluenceConfigError: for a negative ``keep_latest`` or ``keep_days``.
    """
    if keep_latest is not None and (isinstance(keep_latest, bool) or int(keep_latest) < 0):
        raise ConfluenceConfigError(f"keep_latest={keep_latest!r} must be 0 or more.")
    if keep_days is not None and float(keep_days) < 0:
        raise ConfluenceConfigError(f"keep_days={keep_days!r} must be 0 or more.")
    if keep_latest is None and keep_days is None:
        return list(pages), []
    moment = now or datetime.now(UTC)
    epoch = datetime.min.replace(tzinfo=UTC)

    def _order(page: Mapping[str, Any]) -> tuple[datetime, int]:
        page_id = str(page.get("id"))
        return _created(page) or epoch, int(page_id) if page_id.isdigit() else 0

    ordered = sorted(pages, key=_order, reverse=True)
    cutoff = moment - timedelta(days=float(keep_days)) if keep_days is not None else None
    kept: list[Mapping[str, Any]] = []
    removed: list[Mapping[str, Any]] = []
    for rank, page in enumerate(ordered):
        created = _created(page)
        young = cutoff is not None and created is not None and created > cutoff
        latest = keep_latest is not None and rank < int(keep_latest)
        (kept if created is None or young or latest else removed).append(page)
    return kept, removed


def _brief(page: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(page.get("id")), "title": page.get("title"), "created_at": page.get("createdAt")}


def _briefs(resume: Mapping[str, Any] | None, key: str) -> list[dict[str, Any]] | None:
    """The pages under ``key`` of a resume state (``{"id", "title", "created_at"}`` each), None when absent."""
    found = (resume or {}).get(key)
    if not isinstance(found, list):
        return None
    return [dict(page) for page in found if isinstance(page, Mapping) and str(page.get("id") or "").isdigit()]


class CleanupMixin(MixinBase):
    """Clean-up methods; the host class provides ``request``, ``paginate``, ``get_page``, ``list_children`` and
    ``get_page_labels``."""

    def delete_page(self, page_id: str, *, purge: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Move a page to the trash, or with ``purge`` delete it for good; return ``{"id", "title", "action"}``.

        ``action`` is ``trashed`` or ``purged`` (``would_trash`` / ``would_purge`` with ``dry_run``). A purge of
        a page that is not in the trash yet sends two DELETEs: one to trash it, one with ``purge=true``.

        :param page_id: the page's id.
        :param purge: delete it for good (needs permission to administer the space).
        :param dry_run: read the page, send no DELETE.
        :raises ConfluenceNotFound: when there is no such page (nor one in the trash, for a purge).
        :raises ConfluenceScopeError: naming ``delete:page:confluence`` when the grant lacks it.
        """
        pid = check_page_id(page_id)
        path = f"{PAGES_PATH}/{quote(pid, safe='')}"
        statuses = ["current", "archived", "trashed"] if purge else ["current", "archived"]
        page = self.request("GET", path, params={"status": ",".join(statuses)})
        trashed = isinstance(page, dict) and page.get("status") == "trashed"
        title = page.get("title") if isinstance(page, dict) else None
        if dry_run:
            action = "would_purge" if purge else "would_trash"
            log.info("Dry run: page %s (%r) %s; nothing was deleted.", pid, title, action.replace("_", " "))
            return {"id": pid, "title": title, "action": action}
        if not trashed:
            self._delete(path, None, landed_if=["trashed"])
        if purge:
            self._delete(path, {"purge": "true"}, landed_if=[])
        action = "purged" if purge else "trashed"
        log.info("Page %s (%r) %s.", pid, title, action)
        return {"id": pid, "title": title, "action": action}

    def _delete(self, path: str, params: dict[str, str] | None, *, landed_if: list[str]) -> None:
        """Send one DELETE. A 404 may mean that an earlier try, re-sent after a 5xx or a timeout, had landed: the
        page is then read again, and the 404 stands only when the page is not where the DELETE put it (in the
        trash, ``landed_if=["trashed"]``; gone for good, ``landed_if=[]``)."""
        try:
            self.request("DELETE", path, params=params)
        except ConfluenceNotFound:
            statuses = "current,archived,trashed"
            try:
                page = self.request("GET", path, params={"status": statuses})
            except ConfluenceNotFound:
                page = None
            status = page.get("status") if isinstance(page, dict) else None
            landed = status in landed_if if landed_if else page is None
            if not landed:
                raise
            log.warning(
                "DELETE %s answered 404, but an earlier try had landed (the page is %s).", path, status or "gone"
            )

    def remove_page_label(self, page_id: str, label: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Remove a label from a page; return ``{"id", "label", "action", "labels"}``.

        ``action`` is ``removed``, ``absent`` (the page did not have it: nothing sent) or ``would_remove``.

        :raises ConfluenceConfigError: for a label name Confluence would refuse; nothing is sent then.
        """
        pid = check_page_id(page_id)
        (name,) = normalize_labels(label) or [""]
        current = self.get_page_labels(pid)
        if name not in current:
            return {"id": pid, "label": name, "action": "absent", "labels": current}
        rest = [other for other in current if other != name]
        if dry_run:
            return {"id": pid, "label": name, "action": "would_remove", "labels": rest}
        self.request("DELETE", f"/wiki/rest/api/content/{quote(pid, safe='')}/label/{quote(name, safe='')}")
        log.info("Removed the label %r from page %s.", name, pid)
        return {"id": pid, "label": name, "action": "removed", "labels": rest}

    def apply_retention(
        self,
        parent_id: str,
        *,
        keep_latest: int | None = None,
        keep_days: float | None = None,
        purge: bool = False,
        dry_run: bool = False,
        now: datetime | None = None,
        resume: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Delete the children of a report parent that a retention rule does not keep (see :func:`plan_retention`).

        :param parent_id: the parent page's or folder's id; only its direct child pages are considered (a folder's
            over ``direct-children``, after ``GET /pages/{id}/children`` answered 404; that needs
            ``read:hierarchical-content:confluence``).
        :param keep_latest: keep this many of the newest children.
        :param keep_days: keep the children created less than this many days ago.
        :param purge: delete for good instead of moving to the trash.
        :param dry_run: send no DELETE; the answer lists what would be removed.
        :param resume: the ``progress`` of a :class:`ConfluenceRateLimited` that interrupted the deletions
            (``kept``, ``removed``, ``pending``): only the ``pending`` pages are deleted, without listing again (a
            page already gone counts as removed).
        :returns: ``{"parent_id", "dry_run", "kept": [...], "removed": [...]}``, each entry ``{"id", "title",
            "created_at"}``.
        :raises ConfluenceConfigError: when neither rule is given (that would keep everything; say which).
        :raises ConfluenceRateLimited: with ``progress`` ``kept``, ``removed`` (deleted so far) and ``pending``, when
            the rate limit interrupted the deletions.
        """
        pid = check_page_id(parent_id)
        if keep_latest is None and keep_days is None:
            raise ConfluenceConfigError("Give keep_latest, keep_days or both: which children should be kept?")
        pending = _briefs(resume, "pending")
        if pending is not None and not dry_run:
            kept = _briefs(resume, "kept") or []
            done = _briefs(resume, "removed") or []
            log.info("Resuming retention under page %s: %d pages left to delete.", pid, len(pending))
            removed = self._remove(pending, purge=purge, kept=kept, done=done, resumed=True)
        else:
            kept, removed = self._plan(pid, keep_latest=keep_latest, keep_days=keep_days, now=now)
            if not dry_run:
                removed = self._remove(removed, purge=purge, kept=kept, done=[], resumed=False)
        log.info(
            "Retention under page %s: %d kept, %d %s.",
            pid,
            len(kept),
            len(removed),
            "would be removed (dry run)" if dry_run else "removed",
        )
        return {"parent_id": pid, "dry_run": dry_run, "kept": kept, "removed": removed}

    def _plan(
        self, pid: str, *, keep_latest: int | None, keep_days: float | None, now: datetime | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """List the children with their creation dates and split them (kept, removed), as :func:`_brief` dicts."""
        try:
            children = [str(child.get("id")) for child in self.list_children(pid)]
        except ConfluenceNotFound:  # a folder (or nothing): a folder's child pages, over its direct children
            log.info("%s is not a page that can be seen; listing it as a folder.", pid)
            listed = self.list_direct_children(pid, parent_type="folder")
            children = [str(child.get("id")) for child in listed if child.get("type") == "page"]
        pages: list[dict[str, Any]] = []
        for start in range(0, len(children), _IDS_PER_REQUEST):
            chunk = children[start : start + _IDS_PER_REQUEST]
            pages.extend(self.paginate(PAGES_PATH, {"id": ",".join(chunk), "limit": len(chunk)}))
        kept, removed = plan_retention(pages, keep_latest=keep_latest, keep_days=keep_days, now=now)
        return [_brief(page) for page in kept], [_brief(page) for page in removed]

    def _remove(
        self,
        pages: list[dict[str, Any]],
        *,
        purge: bool,
        kept: list[dict[str, Any]],
        done: list[dict[str, Any]],
        resumed: bool,
    ) -> list[dict[str, Any]]:
        """Delete ``pages`` one by one; return ``done`` and them. When the rate limit refuses one, the error says
        what was deleted and what is left (``pending``, from the refused page on)."""
        removed = list(done)
        for index, page in enumerate(pages):
            try:
                self.delete_page(str(page["id"]), purge=purge)
            except ConfluenceRateLimited as exc:
                exc.with_progress(kept=kept, removed=removed, pending=pages[index:])
                raise
            except ConfluenceNotFound:
                if not resumed:
                    raise
                log.info("Page %s is already gone (deleted during the wait); counted as removed.", page["id"])
            removed.append(page)
        return removed
