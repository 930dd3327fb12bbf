"""``ConfluenceMirrorDirectoryOperator``: a directory of Markdown files mirrored to a page tree (import it from
:mod:`airflow_provider_confluence.operators.confluence`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PARENT_FIELDS,
    ConfluenceOperatorMixin,
    as_list,
    check_parent,
    given,
    text_or_none,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.operators._tree import check_one_space
from airflow_provider_confluence.version_compat import BaseOperator


class ConfluenceMirrorDirectoryOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Mirror a directory of Markdown files to a page tree below a parent page or folder.

    Missing pages are created, changed pages get a new version, unchanged pages are not touched. Every ``.md``
    file is a page; a subdirectory is a page (its ``index.md``, else its ``README.md``, is the body; without
    either it lists its child pages) with its files below it. A page's title is the front matter's ``title:``,
    else the file's first ``# heading``, else the file name without ``.md``. Relative links between the files
    become links to the mirrored pages. Titles must be unique in the space: a clash, within the directory or with
    a page elsewhere in the space, fails the task before anything is written. A run that failed midway is
    resumed by a retry: nothing is created twice.

    Needs ``read:page:confluence`` and ``write:page:confluence`` (and ``delete:page:confluence`` with
    ``delete_missing``).

    :param directory: the directory of Markdown files on the worker (templated); an absolute path is safest. When
        the deployment sets ``[confluence] attachment_roots``, it must lie under one of those folders (as files to
        upload must); symbolic links inside it are not followed.
    :param space_key: the space's key (templated); or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param parent_id: the page or folder the directory goes under (templated).
    :param parent_title: the parent page's exact title in the space (templated); instead of ``parent_id``.
    :param labels: labels every mirrored page carries (templated; only missing ones are added).
    :param delete_missing: move to the trash the pages below the parent that the directory does not have
        (default False: they are left alone).
    :param dry_run: read only: the result says what would be done and no write is sent.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly points quota), defer until it ends, holding no worker slot, and resume: the pages done before the
        wait are neither looked up nor written again, the rest is looked up and written, and the result lists
        them all as they were done (default: ``[operators] default_deferrable``); otherwise the try fails with
        ``ConfluenceRateLimited`` (a retry then runs the mirror again from its start, which also creates nothing
        twice). The worker that resumes the task reads the directory again: it must see the same files.
    :returns: ``{path: {"id", "title", "action"}}``: ``path`` is the file's path in the directory (a directory's
        ends with ``/``); ``action`` is ``created``, ``updated`` or ``unchanged`` (``create``, ``update``,
        ``unchanged`` in a dry run). With ``delete_missing``, pages removed are keyed ``page:<id>`` with action
        ``trashed`` (``would_trash``).
    """

    template_fields: Sequence[str] = ("directory", "space_key", "space_id", *PARENT_FIELDS, "labels", CONN_ID_FIELD)
    resume_keys = ("mirrored", "labels_pending")

    def __init__(
        self,
        *,
        directory: str,
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        parent_title: str | None = None,
        labels: str | Sequence[str] | None = None,
        delete_missing: bool = False,
        dry_run: bool = False,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_one_space(space_key, space_id)
        check_parent(parent_id, parent_title)
        if not given(parent_id) and not given(parent_title):
            raise ConfluenceConfigError("Say where the mirror goes: give parent_id (a page or folder) or parent_title.")
        if not given(directory):
            raise ConfluenceConfigError("directory is empty: give the directory of Markdown files.")
        self.directory = directory
        self.space_key = space_key
        self.space_id = space_id
        self.parent_id = parent_id
        self.parent_title = parent_title
        self.labels = labels
        self.delete_missing = delete_missing
        self.dry_run_only = dry_run  # BaseOperator has a dry_run() method
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, dict[str, Any]]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Mirror; after a deferral, the pages ``resume`` says were done are skipped (see
        :mod:`airflow_provider_confluence.content.mirror_resume`)."""
        from airflow_provider_confluence.config.deployment import attachment_roots
        from airflow_provider_confluence.config.local_files import check_read_directory

        directory = check_read_directory(str(self.directory), attachment_roots())
        summary = self.confluence_hook().mirror_directory(
            directory,
            space_key=text_or_none(self.space_key),
            space_id=text_or_none(self.space_id),
            parent_id=text_or_none(self.parent_id),
            parent_title=text_or_none(self.parent_title),
            labels=as_list(self.labels) or (),
            dry_run=self.dry_run_only,
            delete_missing=self.delete_missing,
            resume=resume,
        )
        changed = sum(1 for entry in summary.values() if entry["action"] != "unchanged")
        self.log.info(
            "Mirrored %s: %d pages, %d %s.",
            self.directory,
            len(summary),
            changed,
            "would change (dry run)" if self.dry_run_only else "changed",
        )
        return summary
