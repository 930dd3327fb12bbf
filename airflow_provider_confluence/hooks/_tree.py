"""The page-tree and clean-up methods of :class:`~.confluence.ConfluenceOAuthHook` (a mixin), JSON-able results.

Each delegates to the client (:mod:`airflow_provider_confluence.client.tree`,
:mod:`airflow_provider_confluence.client.cleanup`) and returns plain dicts and lists, fit for XCom.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.content.summaries import page_summary, tree_node_summary
from airflow_provider_confluence.exceptions import ConfluenceRateLimited

if TYPE_CHECKING:
    from airflow_provider_confluence.client.confluence import ConfluenceClient
    from airflow_provider_confluence.config.connection import ConnectionSettings


class TreeHookMixin:
    """Tree and clean-up methods; the hook provides ``get_conn``, ``settings`` and ``resolve_space_id``."""

    if TYPE_CHECKING:

        @property
        def settings(self) -> ConnectionSettings: ...

        def get_conn(self) -> ConfluenceClient: ...

        def resolve_space_id(self, space_key: str | None = None, space_id: str | None = None) -> str: ...

    def list_children(
        self,
        page_id: str,
        *,
        depth: int = 1,
        cursor: str | None = None,
        done: Sequence[dict[str, Any]] = (),
        parent_type: str = "page",
    ) -> list[dict[str, Any]]:
        """What is below a page or folder down to ``depth`` levels (1: its children), pages, folders and the other
        kinds of content alike, as :func:`tree_node_summary` dicts (``type`` says which).

        ``depth=1`` is one ``direct-children`` listing; deeper, one ``descendants`` listing per five levels.
        Needs ``read:hierarchical-content:confluence``.

        :param page_id: the page's or folder's id.
        :param parent_type: ``page`` or ``folder``: what ``page_id`` is.
        :param cursor: resume a listing of at most 5 levels here (a :class:`ConfluenceRateLimited`'s
            ``progress["cursor"]``).
        :param done: the summaries already listed before ``cursor``, kept in front.
        :raises ConfluenceRateLimited: with ``progress["results"]``, the summaries listed so far (and ``cursor``).
        """
        client = self.get_conn()
        nodes: Iterator[dict[str, Any]]
        if depth == 1:
            children = client.list_direct_children(str(page_id), parent_type=parent_type, cursor=cursor)
            nodes = ({**child, "parentId": str(page_id), "depth": 1} for child in children)
        else:
            nodes = client.list_tree(str(page_id), parent_type=parent_type, depth=depth, cursor=cursor)
        listed = [dict(node) for node in done] if cursor else []
        try:
            for node in nodes:
                listed.append(tree_node_summary(node, self.settings.site_url))
        except ConfluenceRateLimited as exc:
            exc.with_progress(results=listed)
            raise
        return listed

    def find_page_by_path(
        self, path: str | Sequence[str], *, space_key: str | None = None, space_id: str | None = None
    ) -> dict[str, Any] | None:
        """The :func:`page_summary` of the page at a path of titles (``"Reports/2026/December"``, where every title
        but the last may be a folder's), or None."""
        page = self.get_conn().find_page_by_path(space_id=self.resolve_space_id(space_key, space_id), path=path)
        return None if page is None else page_summary(page, self.settings.site_url)

    def create_folder(
        self, title: str, *, space_key: str | None = None, space_id: str | None = None, parent_id: str | None = None
    ) -> dict[str, Any]:
        """Create a folder, even when one with the title exists; ``{"id", "title", "parent_id", "parent_type",
        "created"}``. Needs ``write:folder:confluence``."""
        folder = self.get_conn().create_folder(
            space_id=self.resolve_space_id(space_key, space_id), title=title, parent_id=parent_id
        )
        return _folder_summary(folder, created=True)

    def ensure_folder(
        self,
        title: str,
        *,
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        parent_type: str | None = None,
    ) -> dict[str, Any]:
        """The folder titled ``title`` under ``parent_id`` (default: the space's homepage), created only when
        missing; ``{"id", "title", "parent_id", "parent_type", "created"}``. Needs
        ``read:hierarchical-content:confluence`` (``read:space:confluence`` without ``parent_id``) and
        ``write:folder:confluence``. See :meth:`~airflow_provider_confluence.client.folders.FoldersMixin.ensure_folder`.
        """
        folder, created = self.get_conn().ensure_folder(
            space_id=lambda: self.resolve_space_id(space_key, space_id),  # looked up only when needed
            title=title,
            parent_id=parent_id,
            parent_type=parent_type,
        )
        return _folder_summary(folder, created=created)

    def delete_page(self, page_id: str, *, purge: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Trash (or purge) a page; ``{"id", "title", "action"}``. Needs ``delete:page:confluence``."""
        return self.get_conn().delete_page(str(page_id), purge=purge, dry_run=dry_run)

    def remove_label(self, page_id: str, label: str, *, dry_run: bool = False) -> dict[str, Any]:
        """Remove a label from a page; ``{"id", "label", "action", "labels"}``. Needs ``write:label:confluence``."""
        return self.get_conn().remove_page_label(str(page_id), label, dry_run=dry_run)

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
        """Delete the children of ``parent_id`` the rule does not keep; ``{"parent_id", "dry_run", "kept",
        "removed"}``. With ``resume`` (a :class:`ConfluenceRateLimited`'s ``progress``), finish its ``pending``."""
        return self.get_conn().apply_retention(
            str(parent_id),
            keep_latest=keep_latest,
            keep_days=keep_days,
            purge=purge,
            dry_run=dry_run,
            now=now,
            resume=resume,
        )

    def mirror_directory(
        self,
        directory: str | Path,
        *,
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        parent_title: str | None = None,
        labels: Iterable[str] = (),
        dry_run: bool = False,
        delete_missing: bool = False,
        resume: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Mirror a directory of Markdown files below a parent page or folder (see
        :mod:`airflow_provider_confluence.content.mirror_plan` for the rules and
        :func:`airflow_provider_confluence.content.mirror.mirror_plan` for the summary). The directory is read and
        checked (titles unique) before anything is sent. Needs ``read:page:confluence`` and
        ``write:page:confluence`` (``delete:page:confluence`` with ``delete_missing``).

        :param resume: the ``progress`` of a :class:`ConfluenceRateLimited` that stopped this mirror: the pages it
            had done are not looked up nor written again (:mod:`airflow_provider_confluence.content.mirror_resume`).
        """
        from airflow_provider_confluence.content.mirror import mirror_plan
        from airflow_provider_confluence.content.mirror_plan import build_plan
        from airflow_provider_confluence.content.publish import resolve_parent_id
        from airflow_provider_confluence.exceptions import ConfluenceConfigError

        plan = build_plan(directory)
        if not parent_id and not parent_title:
            raise ConfluenceConfigError("Say where the mirror goes: give parent_id (a page or folder) or parent_title.")
        space = self.resolve_space_id(space_key, space_id)
        client = self.get_conn()
        parent = resolve_parent_id(client, space_id=space, parent_id=parent_id, parent_title=parent_title)
        return mirror_plan(
            client,
            plan,
            space_id=space,
            parent_id=str(parent),
            labels=labels,
            dry_run=dry_run,
            delete_missing=delete_missing,
            resume=resume,
        )


def _folder_summary(folder: Mapping[str, Any], *, created: bool) -> dict[str, Any]:
    parent = folder.get("parentId")
    return {
        "id": str(folder.get("id")),
        "title": folder.get("title"),
        "parent_id": None if parent is None else str(parent),
        "parent_type": folder.get("parentType"),
        "created": created,
    }
