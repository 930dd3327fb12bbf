"""Page-tree and clean-up operators (import them from :mod:`airflow_provider_confluence.operators.confluence`).

``ConfluenceListChildrenOperator``, ``ConfluenceFindPageByPathOperator``, ``ConfluenceCreateFolderOperator``,
``ConfluenceDeletePageOperator``, ``ConfluenceRemoveLabelOperator`` and ``ConfluenceApplyRetentionOperator``.
Every clean-up operator has ``dry_run``: it then reads, returns what would change, and sends no write. (The
flag is kept as ``dry_run_only``: ``BaseOperator`` has a ``dry_run()`` method, and a ``label`` property, hence
``label_name``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluencePageMissing
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PAGE_TARGET_FIELDS,
    ConfluenceOperatorMixin,
    PageTargetMixin,
    check_positive,
    check_space,
    given,
    text_or_none,
)
from airflow_provider_confluence.version_compat import BaseOperator


def check_one_space(space_key: object, space_id: object) -> None:
    """Exactly one of ``space_key`` and ``space_id`` (:class:`ConfluenceConfigError` otherwise)."""
    check_space(space_key, space_id)
    if not given(space_key) and not given(space_id):
        raise ConfluenceConfigError("Name the space: give space_key or space_id.")


#: The deepest ``depth`` the tree listing takes (one request per page visited).
MAX_DEPTH = 20


class ConfluenceListChildrenOperator(ConfluenceOperatorMixin, BaseOperator):
    """List the pages below a page: its children (``depth=1``) or its descendants down to ``depth`` levels.

    Needs ``read:page:confluence``.

    :param page_id: the parent page's id (templated).
    :param depth: levels to go down, 1 (children, default) to 20.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: a list of ``{"id", "title", "status", "parent_id", "depth", "position", "url"}``.
    """

    template_fields: Sequence[str] = ("page_id", CONN_ID_FIELD)

    def __init__(
        self, *, page_id: str, depth: int = 1, confluence_conn_id: str = "confluence_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        check_positive("depth", depth, maximum=MAX_DEPTH)
        self.page_id = page_id
        self.depth = depth
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> list[dict[str, Any]]:
        nodes = self.confluence_hook().list_children(str(self.page_id), depth=self.depth)
        self.log.info("Page %s has %d pages within %d level(s).", self.page_id, len(nodes), self.depth)
        return nodes


class ConfluenceFindPageByPathOperator(ConfluenceOperatorMixin, BaseOperator):
    """Find a page by a path of titles in a space, such as ``Reports/2026/December``.

    :param path: titles separated by ``/`` (templated), or a list of titles.
    :param space_key: the space's key (templated); or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param fail_if_missing: raise :class:`ConfluencePageMissing` when a title is missing (default); else return
        None.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: the page's summary ``{"id", "title", "space_id", "version", "url", ...}``, or None.
    """

    template_fields: Sequence[str] = ("path", "space_key", "space_id", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        path: str | Sequence[str],
        space_key: str | None = None,
        space_id: str | None = None,
        fail_if_missing: bool = True,
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_one_space(space_key, space_id)
        if not given(path) or (not isinstance(path, str) and not list(path)):
            raise ConfluenceConfigError("path is empty: give titles separated by '/', such as 'Reports/2026/December'.")
        self.path = path
        self.space_key = space_key
        self.space_id = space_id
        self.fail_if_missing = fail_if_missing
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any] | None:
        found = self.confluence_hook().find_page_by_path(
            self.path, space_key=text_or_none(self.space_key), space_id=text_or_none(self.space_id)
        )
        if found is None and self.fail_if_missing:
            raise ConfluencePageMissing(
                f"No page at the path {self.path!r} in the space: check each title.",
                title=str(self.path),
                space_key=text_or_none(self.space_key),
                space_id=text_or_none(self.space_id),
            )
        return found


class ConfluenceCreateFolderOperator(ConfluenceOperatorMixin, BaseOperator):
    """Create a v2 folder (a parent for pages) in a space. Needs ``write:folder:confluence``.

    The v2 API offers no way to find a folder by title, so every run creates a folder: keep its id (the
    operator's return value) and give it as the ``parent_id`` of pages.

    :param title: the folder's title (templated).
    :param space_key: the space's key (templated); or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param parent_id: the page or folder to create it under (templated; default: the space's top level).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: ``{"id", "title", "parent_id", "parent_type"}``.
    """

    template_fields: Sequence[str] = ("title", "space_key", "space_id", "parent_id", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        title: str,
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_one_space(space_key, space_id)
        if not given(title):
            raise ConfluenceConfigError("title is empty: name the folder.")
        self.title = title
        self.space_key = space_key
        self.space_id = space_id
        self.parent_id = parent_id
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.confluence_hook().create_folder(
            str(self.title),
            space_key=text_or_none(self.space_key),
            space_id=text_or_none(self.space_id),
            parent_id=text_or_none(self.parent_id),
        )


class ConfluenceDeletePageOperator(PageTargetMixin, BaseOperator):
    """Move a page to the trash, or with ``purge=True`` delete it for good.

    Needs ``delete:page:confluence``; a purge also needs permission to administer the space.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated).
    :param purge: delete for good (a page not yet in the trash is trashed first).
    :param dry_run: send no DELETE; the result's ``action`` says what would happen.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: ``{"id", "title", "action"}``: ``trashed``, ``purged``, ``would_trash`` or ``would_purge``.
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, CONN_ID_FIELD)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        purge: bool = False,
        dry_run: bool = False,
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        self.purge = purge
        self.dry_run_only = dry_run
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        hook = self.confluence_hook()
        page_id = text_or_none(self.page_id) or str(self.find_target(hook)["id"])
        return hook.delete_page(page_id, purge=self.purge, dry_run=self.dry_run_only)


class ConfluenceRemoveLabelOperator(ConfluenceOperatorMixin, BaseOperator):
    """Remove a label from a page (nothing is sent when the page does not have it).

    Needs ``write:label:confluence`` (and ``read:page:confluence`` to read the page's labels).

    :param page_id: the page's id (templated).
    :param label_name: the label name (templated).
    :param dry_run: send no DELETE.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: ``{"id", "label", "action", "labels"}``; ``action`` is ``removed``, ``absent`` or ``would_remove``.
    """

    template_fields: Sequence[str] = ("page_id", "label_name", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        page_id: str,
        label_name: str,
        dry_run: bool = False,
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not given(label_name):
            raise ConfluenceConfigError("label_name is empty: name the label to remove.")
        self.page_id = page_id
        self.label_name = label_name
        self.dry_run_only = dry_run
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.confluence_hook().remove_label(str(self.page_id), str(self.label_name), dry_run=self.dry_run_only)


class ConfluenceApplyRetentionOperator(ConfluenceOperatorMixin, BaseOperator):
    """Keep the newest children of a report parent and delete the rest.

    A child is kept when it is among the ``keep_latest`` newest (by creation date) OR was created less than
    ``keep_days`` days ago. Needs ``read:page:confluence`` and ``delete:page:confluence``.

    :param parent_id: the report parent's page id (templated); only its direct children are considered.
    :param keep_latest: how many of the newest children to keep.
    :param keep_days: keep children created less than this many days ago.
    :param purge: delete for good instead of moving to the trash.
    :param dry_run: send no DELETE; ``removed`` lists what would be deleted.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: ``{"parent_id", "dry_run", "kept", "removed"}``, pages as ``{"id", "title", "created_at"}``.
    """

    template_fields: Sequence[str] = ("parent_id", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        parent_id: str,
        keep_latest: int | None = None,
        keep_days: float | None = None,
        purge: bool = False,
        dry_run: bool = False,
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if keep_latest is None and keep_days is None:
            raise ConfluenceConfigError("Give keep_latest, keep_days or both: which children should be kept?")
        if keep_latest is not None and (isinstance(keep_latest, bool) or not isinstance(keep_latest, int)):
            raise ConfluenceConfigError(f"keep_latest={keep_latest!r} must be a whole number.")
        if keep_latest is not None and keep_latest < 0 or keep_days is not None and keep_days < 0:
            raise ConfluenceConfigError("keep_latest and keep_days must be 0 or more.")
        self.parent_id = parent_id
        self.keep_latest = keep_latest
        self.keep_days = keep_days
        self.purge = purge
        self.dry_run_only = dry_run
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.confluence_hook().apply_retention(
            str(self.parent_id),
            keep_latest=self.keep_latest,
            keep_days=self.keep_days,
            purge=self.purge,
            dry_run=self.dry_run_only,
        )
        verb = "would be deleted (dry run)" if self.dry_run_only else "deleted"
        self.log.info("Kept %d pages; %d %s.", len(result["kept"]), len(result["removed"]), verb)
        return result
