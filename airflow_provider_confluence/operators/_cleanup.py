"""Clean-up operators (import them from :mod:`airflow_provider_confluence.operators.confluence`):
``ConfluenceDeletePageOperator``, ``ConfluenceRemoveLabelOperator`` and ``ConfluenceApplyRetentionOperator``.

Every clean-up operator has ``dry_run``: it then reads, returns what would change, and sends no write. (The
flag is kept as ``dry_run_only``: ``BaseOperator`` has a ``dry_run()`` method, and a ``label`` property, hence
``label_name``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceRateLimited
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PAGE_TARGET_FIELDS,
    ConfluenceOperatorMixin,
    PageTargetMixin,
    given,
    text_or_none,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator


class ConfluenceDeletePageOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Move a page to the trash, or with ``purge=True`` delete it for good.

    Needs ``delete:page:confluence``; a purge also needs permission to administer the space.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated).
    :param purge: delete for good (a page not yet in the trash is trashed first).
    :param dry_run: send no DELETE; the result's ``action`` says what would happen.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: the page found before the wait is deleted (a purge whose trashing
        was accepted only purges) (default: ``[operators] default_deferrable``); otherwise the try fails with
        ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "action"}``: ``trashed``, ``purged``, ``would_trash`` or ``would_purge``.
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, CONN_ID_FIELD)
    resume_keys = ("page_id",)

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
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        self.purge = purge
        self.dry_run_only = dry_run
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Delete the page; after a deferral, the page found before it (``resume["page_id"]``): once trashed, a
        page is no longer found by its title."""
        hook = self.confluence_hook()
        page_id = text_or_none(resume.get("page_id")) or text_or_none(self.page_id) or str(self.find_target(hook)["id"])
        try:
            return hook.delete_page(page_id, purge=self.purge, dry_run=self.dry_run_only)
        except ConfluenceRateLimited as exc:
            exc.with_progress(page_id=page_id)
            raise


class ConfluenceRemoveLabelOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Remove a label from a page (nothing is sent when the page does not have it).

    Needs ``write:label:confluence`` (and ``read:page:confluence`` to read the page's labels).

    :param page_id: the page's id (templated).
    :param label_name: the label name (templated).
    :param dry_run: send no DELETE.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: the labels are read again; nothing follows an accepted removal
        (default: ``[operators] default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
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
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        if not given(label_name):
            raise ConfluenceConfigError("label_name is empty: name the label to remove.")
        self.page_id = page_id
        self.label_name = label_name
        self.dry_run_only = dry_run
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Remove the label; after a deferral, the labels are read again."""
        return self.confluence_hook().remove_label(str(self.page_id), str(self.label_name), dry_run=self.dry_run_only)


class ConfluenceApplyRetentionOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Keep the newest children of a report parent and delete the rest.

    A child is kept when it is among the ``keep_latest`` newest (by creation date) OR was created less than
    ``keep_days`` days ago. Needs ``read:page:confluence`` and ``delete:page:confluence`` (and
    ``read:hierarchical-content:confluence`` for a folder parent).

    :param parent_id: the report parent's page or folder id (templated); only its direct child pages are considered.
    :param keep_latest: how many of the newest children to keep.
    :param keep_days: keep children created less than this many days ago.
    :param purge: delete for good instead of moving to the trash.
    :param dry_run: send no DELETE; ``removed`` lists what would be deleted.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: the deletions continue with the pages not yet deleted, and
        ``removed`` lists all of them (default: ``[operators] default_deferrable``); otherwise the try fails with
        ``ConfluenceRateLimited``.
    :returns: ``{"parent_id", "dry_run", "kept", "removed"}``, pages as ``{"id", "title", "created_at"}``.
    """

    template_fields: Sequence[str] = ("parent_id", CONN_ID_FIELD)
    resume_keys = ("kept", "removed", "pending")

    def __init__(
        self,
        *,
        parent_id: str,
        keep_latest: int | None = None,
        keep_days: float | None = None,
        purge: bool = False,
        dry_run: bool = False,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
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
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Apply the rule; after a deferral that interrupted the deletions, delete the pages still ``pending``."""
        result = self.confluence_hook().apply_retention(
            str(self.parent_id),
            keep_latest=self.keep_latest,
            keep_days=self.keep_days,
            purge=self.purge,
            dry_run=self.dry_run_only,
            resume=resume,
        )
        verb = "would be deleted (dry run)" if self.dry_run_only else "deleted"
        self.log.info("Kept %d pages; %d %s.", len(result["kept"]), len(result["removed"]), verb)
        return result
