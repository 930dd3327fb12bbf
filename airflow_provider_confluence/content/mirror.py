"""Mirror a :class:`~.mirror_plan.MirrorPlan` (a directory of Markdown) under a parent page or folder.

Two phases, so that a refusal comes before any write:

1. Read: each planned page is looked up by its title in the space (one ``GET /pages?title=`` each, with the
   storage body; titles are unique in a space). A page found under another parent than the plan's is a title
   taken elsewhere in the space: the mirror stops, naming every such page, and writes nothing. With
   ``delete_missing``, the pages below the parent are listed too.
2. Write, parents first: a missing page is created (:func:`.publish.publish`), an existing one gets a new
   version only when :func:`.changes.is_unchanged` says its body or title differ
   (:func:`.publish.update_page_body`): the version message of an update records a :func:`body_mark` of the body
   sent, so that a page Confluence stores otherwise than it was sent is not written again on every run; with ``delete_missing``, the pages below the parent that the directory
   no longer has are moved to the trash (:meth:`~airflow_provider_confluence.client.cleanup.CleanupMixin.delete_page`),
   deepest first.

A run that failed midway is resumed by running it again: what was created is found by its title and is not
created twice. A run that Atlassian's rate limit stopped (:class:`~airflow_provider_confluence.exceptions.
ConfluenceRateLimited`) says in the error's ``progress`` what it had done; given back as ``resume`` (a deferrable
operator does that after its wait), only the rest is looked up and written (:mod:`.mirror_resume`). ``dry_run``
makes the reads only and says what would be done.

The summary is ``{path: {"id", "title", "action"}}`` (see :func:`mirror_plan`). This module imports nothing from
Airflow.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.client.tree import MAX_DEPTH
from airflow_provider_confluence.content.changes import is_unchanged
from airflow_provider_confluence.content.mirror_plan import MirrorPage, MirrorPlan
from airflow_provider_confluence.content.mirror_resume import MISSING_PREFIX, MirrorProgress, entry
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.content.publish import publish, update_page_body
from airflow_provider_confluence.content.summaries import page_url
from airflow_provider_confluence.exceptions import (
    ConfluenceConfigError,
    ConfluenceNotFound,
    ConfluencePageExists,
    ConfluenceRateLimited,
    ConfluenceScopeError,
)

if TYPE_CHECKING:
    from airflow_provider_confluence.client.confluence import ConfluenceClient

__all__ = ["MISSING_PREFIX", "body_mark", "mirror_plan"]

log = logging.getLogger(__name__)


def body_mark(body: str) -> str:
    """What the version message of a mirrored page records of the body sent: ``mirror-sha256:`` and 16 hex digits
    of the body's SHA-256 (see :func:`.changes.is_unchanged`)."""
    return "mirror-sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def _misplaced(
    pages: list[MirrorPage], found: dict[str, dict[str, Any] | None], known: dict[str, str], root: str
) -> list[tuple[MirrorPage, dict[str, Any], str]]:
    """The pages whose title is taken by a page under another parent than the plan's: (page, that page, why).

    :param known: ``{path: id}`` of the pages done before a resume (not looked up again).
    """
    clashes = []
    for page in pages:
        existing = found[page.path]
        if existing is None:
            continue
        if page.parent is None:
            wanted: str | None = root
        elif page.parent in known:
            wanted = known[page.parent]
        else:
            above = found.get(page.parent)
            wanted = str(above["id"]) if above is not None else None
        if wanted is None or str(existing.get("parentId")) != wanted:
            why = (
                f"{page.path} -> {page.title!r}: page {existing.get('id')} ({page_url(existing) or 'no URL'}) "
                f"is under parent {existing.get('parentId')}, not {wanted or 'the new page ' + str(page.parent)}"
            )
            clashes.append((page, existing, why))
    return clashes


def _stale_pages(client: ConfluenceClient, root: str, keep: set[str]) -> list[dict[str, Any]]:
    """The pages below ``root`` that are not ``keep``, deepest first."""
    below = [node for node in client.list_descendants(root, depth=MAX_DEPTH) if str(node.get("id")) not in keep]
    return sorted(below, key=lambda node: -int(node.get("depth") or 0))


def mirror_plan(
    client: ConfluenceClient,
    plan: MirrorPlan,
    *,
    space_id: str,
    parent_id: str,
    labels: Iterable[str] = (),
    dry_run: bool = False,
    delete_missing: bool = False,
    resume: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Make the pages below ``parent_id`` match ``plan``.

    :param space_id: the space's numeric id.
    :param parent_id: the page or folder the directory's top-level files and subdirectories go under.
    :param labels: labels every mirrored page carries (only missing ones are added).
    :param dry_run: read only; the actions are ``create``, ``update``, ``unchanged`` (and ``would_trash``).
    :param delete_missing: trash the pages below ``parent_id`` that the directory does not have (a folder
        ``parent_id`` cannot be listed: the pages below the mirrored pages are then considered).
    :param resume: the ``progress`` of a :class:`~airflow_provider_confluence.exceptions.ConfluenceRateLimited`
        that interrupted this mirror (see :mod:`.mirror_resume`): the pages it had done are neither looked up nor
        written again, and are reported as they were done.
    :returns: ``{path: {"id", "title", "action"}}``, ``action`` one of ``created``, ``updated``, ``unchanged``
        (``create``/``update``/``unchanged`` in a dry run); pages with links to Markdown files outside the mirror
        also have ``unresolved_links``. With ``delete_missing``, each page removed is keyed ``page:<id>``,
        action ``trashed`` (``would_trash``).
    :raises ConfluencePageExists: a planned title is taken by a page elsewhere in the space; nothing is written.
    :raises ConfluenceRateLimited: with ``progress`` ``mirrored`` (what was done, as in the summary) and
        ``labels_pending`` (pages written whose labels are still to add), for ``resume``.
    """
    spec = PageSpec.build(body="", labels=labels)  # checks the label names before anything is sent
    done = MirrorProgress() if dry_run else MirrorProgress.from_resume(resume, plan)
    if done.pages or done.trashed:
        log.info("Resuming the mirror: %d pages and %d removals were done before.", len(done.pages), len(done.trashed))
    try:
        _apply(
            client,
            plan,
            spec,
            done,
            space_id=str(space_id),
            root=str(parent_id),
            dry_run=dry_run,
            delete_missing=delete_missing,
        )
    except ConfluenceRateLimited as exc:
        if not dry_run:
            exc.with_progress(**done.progress())
        raise
    summary = done.summary(plan)
    _log_summary(summary, dry_run)
    return summary


def _apply(
    client: ConfluenceClient,
    plan: MirrorPlan,
    spec: PageSpec,
    done: MirrorProgress,
    *,
    space_id: str,
    root: str,
    dry_run: bool,
    delete_missing: bool,
) -> None:
    """Look up the pages not done, refuse clashes, add pending labels, write, trash; recording each in ``done``."""
    todo = [page for page in plan.pages if page.path not in done.pages]
    found = {p.path: client.find_page(space_id=space_id, title=p.title, body_format="storage") for p in todo}
    ids = done.ids()
    clashes = _misplaced(todo, found, ids, root)
    if clashes:
        first, taken, _ = clashes[0]
        raise ConfluencePageExists(
            "Titles are unique in a Confluence space, and these titles are taken by pages outside the place the "
            "mirror puts them: " + "; ".join(why for _, _, why in clashes) + ". Rename the files' titles, or move "
            "or delete those pages. Nothing was written" + (" in this try." if ids else "."),
            title=first.title,
            space_id=space_id,
            page_id=str(taken.get("id")),
            page_url=page_url(taken),
        )
    for path in list(done.labels_pending):  # written before the wait; their labels were refused
        client.add_page_labels(ids[path], list(spec.labels))
        done.labels_pending.remove(path)
    known = {**{path: str(page["id"]) for path, page in found.items() if page is not None}, **ids}
    stale = _stale_pages_of(client, plan, known, root) if delete_missing else []
    for page in todo:
        parent = root if page.parent is None else known.get(page.parent)
        wanted = spec.with_changes(
            body=page.body, title=page.title, space_id=space_id, parent_id=parent, if_exists="update"
        )
        existing = found[page.path]
        if dry_run:
            done.pages[page.path] = entry(existing and existing["id"], page.title, _preview(existing, wanted))
            continue
        try:
            action, written = _write(client, page, existing, wanted)
        except ConfluenceRateLimited as exc:
            if exc.progress.get("page_id"):  # the page was written; the quota refused its labels
                done.pages[page.path] = entry(
                    exc.progress["page_id"], page.title, str(exc.progress.get("action") or "updated")
                )
                done.labels_pending.append(page.path)
            raise
        known[page.path] = str(written["id"])
        done.pages[page.path] = entry(written["id"], page.title, action)
    for node in stale:
        if f"{MISSING_PREFIX}{node['id']}" in done.trashed:
            continue
        removed = client.delete_page(str(node["id"]), dry_run=dry_run)
        done.trashed[f"{MISSING_PREFIX}{node['id']}"] = entry(node["id"], str(node.get("title")), removed["action"])


def _preview(existing: dict[str, Any] | None, wanted: PageSpec) -> str:
    """What a run would do to the page: ``create``, ``update`` or ``unchanged``."""
    if existing is None:
        return "create"
    same = is_unchanged(
        existing,
        body=wanted.body,
        title=wanted.title,
        status=wanted.status,
        parent_id=None,
        fmt="storage",
        version_mark=body_mark(wanted.body),
    )
    return "unchanged" if same else "update"


def _write(
    client: ConfluenceClient, page: MirrorPage, existing: dict[str, Any] | None, wanted: PageSpec
) -> tuple[str, dict[str, Any]]:
    if existing is None:
        if wanted.parent_id is None:  # unreachable: parents are written first
            raise ConfluenceConfigError(f"{page.path}: its parent {page.parent} has no page.")
        published = publish(client, wanted)
        return published.action, published.page
    version = (existing.get("version") or {}).get("number")
    mark = body_mark(wanted.body)
    written = update_page_body(
        client,
        wanted.with_changes(parent_id=None, message=f"Mirrored from {page.source or page.path} ({mark})"),
        page_id=str(existing["id"]),
        read=existing,
        version_mark=mark,
    )
    return ("updated" if (written.get("version") or {}).get("number") != version else "unchanged"), written


def _stale_pages_of(
    client: ConfluenceClient, plan: MirrorPlan, known: dict[str, str], root: str
) -> list[dict[str, Any]]:
    """The pages below ``root`` that are not the plan's (``known``: ``{path: id}`` of those that exist)."""
    keep = set(known.values())
    try:
        return _stale_pages(client, root, keep)
    except ConfluenceNotFound:  # a folder: the page listing does not take one
        pass
    try:  # every page below the folder, over its descendants (read:hierarchical-content:confluence)
        below = client.list_tree(root, parent_type="folder", depth=MAX_DEPTH)
        stale_below = [node for node in below if node.get("type") == "page" and str(node.get("id")) not in keep]
        return sorted(stale_below, key=lambda node: -int(node.get("depth") or 0))
    except (ConfluenceNotFound, ConfluenceScopeError):
        log.warning(
            "Folder %s cannot be listed (add read:hierarchical-content:confluence to the grant): only pages below "
            "mirrored pages are considered.",
            root,
        )
    stale: dict[str, dict[str, Any]] = {}
    for page in plan.pages:
        if page.parent is None and page.path.endswith("/") and page.path in known:
            stale.update((str(node["id"]), node) for node in _stale_pages(client, known[page.path], keep))
    return list(stale.values())


def _log_summary(summary: dict[str, dict[str, Any]], dry_run: bool) -> None:
    counts: dict[str, int] = {}
    for line in summary.values():
        counts[line["action"]] = counts.get(line["action"], 0) + 1
    log.info("Mirror%s: %s.", " (dry run)" if dry_run else "", ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
