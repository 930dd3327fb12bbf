"""Page-tree operators (import them from :mod:`airflow_provider_confluence.operators.confluence`):
``ConfluenceListChildrenOperator``, ``ConfluenceFindPageByPathOperator`` and ``ConfluenceCreateFolderOperator``.
The clean-up operators are in :mod:`._cleanup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluencePageMissing, ConfluenceRateLimited
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    ConfluenceOperatorMixin,
    check_positive,
    check_space,
    given,
    text_or_none,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator


def check_one_space(space_key: object, space_id: object) -> None:
    """Exactly one of ``space_key`` and ``space_id`` (:class:`ConfluenceConfigError` otherwise)."""
    check_space(space_key, space_id)
    if not given(space_key) and not given(space_id):
        raise ConfluenceConfigError("Name the space: give space_key or space_id.")


#: The deepest ``depth`` the tree listing takes (one request per page visited).
MAX_DEPTH = 20


class ConfluenceListChildrenOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """List the pages below a page: its children (``depth=1``) or its descendants down to ``depth`` levels.

    Needs ``read:page:confluence``.

    :param page_id: the parent page's id (templated).
    :param depth: levels to go down, 1 (children, default) to 20.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: the children (``depth=1``) continue from the page of results that
        was refused; a deeper walk starts again (reads only) (default: ``[operators] default_deferrable``);
        otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: a list of ``{"id", "title", "status", "parent_id", "depth", "position", "url"}``.
    """

    template_fields: Sequence[str] = ("page_id", CONN_ID_FIELD)
    resume_keys = ("cursor", "results")

    def resume_state(self, resume: dict[str, Any], exc: ConfluenceRateLimited) -> dict[str, Any]:
        """A ``depth=1`` listing resumes at its cursor; a deeper walk starts again (its cursor is one page's)."""
        return super().resume_state(resume, exc) if self.depth == 1 else {}

    def __init__(
        self,
        *,
        page_id: str,
        depth: int = 1,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_positive("depth", depth, maximum=MAX_DEPTH)
        self.page_id = page_id
        self.depth = depth
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> list[dict[str, Any]]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> list[dict[str, Any]]:
        """List; after a deferral of a ``depth=1`` listing, from ``resume["cursor"]`` with ``resume["results"]``."""
        cursor = resume.get("cursor") if isinstance(resume.get("cursor"), str) else None
        done = [node for node in resume.get("results") or [] if isinstance(node, dict)]
        nodes = self.confluence_hook().list_children(str(self.page_id), depth=self.depth, cursor=cursor, done=done)
        self.log.info("Page %s has %d pages within %d level(s).", self.page_id, len(nodes), self.depth)
        return nodes


class ConfluenceFindPageByPathOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Find a page by a path of titles in a space, such as ``Reports/2026/December``.

    :param path: titles separated by ``/`` (templated), or a list of titles.
    :param space_key: the space's key (templated); or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param fail_if_missing: raise :class:`ConfluencePageMissing` when a title is missing (default); else return
        None.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: the reads are made again (default: ``[operators]
        default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
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
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_one_space(space_key, space_id)
        if not given(path) or (not isinstance(path, str) and not list(path)):
            raise ConfluenceConfigError("path is empty: give titles separated by '/', such as 'Reports/2026/December'.")
        self.path = path
        self.space_key = space_key
        self.space_id = space_id
        self.fail_if_missing = fail_if_missing
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any] | None:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any] | None:
        """Find the page; after a deferral, the reads are made again."""
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


class ConfluenceCreateFolderOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Create a v2 folder (a parent for pages) in a space. Needs ``write:folder:confluence``.

    The v2 API offers no way to find a folder by title, so every run creates a folder: keep its id (the
    operator's return value) and give it as the ``parent_id`` of pages.

    :param title: the folder's title (templated).
    :param space_key: the space's key (templated); or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param parent_id: the page or folder to create it under (templated; default: the space's top level).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: a create the quota refused (429: not processed) is sent again;
        nothing follows an accepted one, so it is never sent twice (default: ``[operators] default_deferrable``);
        otherwise the try fails with ``ConfluenceRateLimited``.
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
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_one_space(space_key, space_id)
        if not given(title):
            raise ConfluenceConfigError("title is empty: name the folder.")
        self.title = title
        self.space_key = space_key
        self.space_id = space_id
        self.parent_id = parent_id
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Create the folder; after a deferral (the quota refused a call, at the latest the create), again."""
        return self.confluence_hook().create_folder(
            str(self.title),
            space_key=text_or_none(self.space_key),
            space_id=text_or_none(self.space_id),
            parent_id=text_or_none(self.parent_id),
        )
