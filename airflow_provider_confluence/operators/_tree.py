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


#: The deepest ``depth`` the tree listing takes (one ``descendants`` request per page or folder every 5 levels).
MAX_DEPTH = 20
#: The deepest listing that is one ``descendants`` listing, so that it resumes at its cursor after a deferral.
ONE_LISTING_DEPTH = 5


class ConfluenceListChildrenOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """List what is below a page or a folder: its children (``depth=1``) or its descendants down to ``depth`` levels.

    Pages, folders, whiteboards, databases and Smart Links alike (each result's ``type`` says which). Over v2
    ``direct-children`` (``depth=1``) and ``descendants`` (one cursor-paginated listing per five levels). Needs
    ``read:hierarchical-content:confluence``.

    :param page_id: the parent page's id (templated); or ``folder_id``.
    :param folder_id: the parent folder's id (templated).
    :param depth: levels to go down, 1 (children, default) to 20.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: a listing of up to 5 levels continues from the page of results that
        was refused; a deeper one starts again (reads only) (default: ``[operators] default_deferrable``);
        otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: a list of ``{"id", "title", "type", "status", "parent_id", "depth", "position", "url"}``.
    """

    template_fields: Sequence[str] = ("page_id", "folder_id", CONN_ID_FIELD)
    resume_keys = ("cursor", "results")

    def resume_state(self, resume: dict[str, Any], exc: ConfluenceRateLimited) -> dict[str, Any]:
        """A listing of up to 5 levels resumes at its cursor; a deeper one starts again (its cursor is one part's)."""
        return super().resume_state(resume, exc) if self.depth <= ONE_LISTING_DEPTH else {}

    def __init__(
        self,
        *,
        page_id: str | None = None,
        folder_id: str | None = None,
        depth: int = 1,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_positive("depth", depth, maximum=MAX_DEPTH)
        if given(page_id) == given(folder_id):
            raise ConfluenceConfigError("Name the parent: give page_id or folder_id, not both.")
        self.page_id = page_id
        self.folder_id = folder_id
        self.depth = depth
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> list[dict[str, Any]]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> list[dict[str, Any]]:
        """List; after a deferral of a listing of up to 5 levels, from ``resume["cursor"]`` with
        ``resume["results"]``."""
        cursor = resume.get("cursor") if isinstance(resume.get("cursor"), str) else None
        done = [node for node in resume.get("results") or [] if isinstance(node, dict)]
        kind, parent = ("page", self.page_id) if given(self.page_id) else ("folder", self.folder_id)
        nodes = self.confluence_hook().list_children(
            str(parent), depth=self.depth, cursor=cursor, done=done, parent_type=kind
        )
        self.log.info("%s %s has %d items within %d level(s).", kind.capitalize(), parent, len(nodes), self.depth)
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
    """Create a v2 folder (a parent for pages) in a space, unless it is already there.

    With ``if_missing=True`` (default) it first looks for a folder with the title directly under the parent (one
    ``direct-children`` listing) and creates one only when there is none, so a re-run creates nothing. Without
    ``parent_id``, the parent is the space's homepage (the top level of its page tree, where a page created without
    a parent goes), read from the space. Two folders with the title under the parent fail the task with
    :class:`~airflow_provider_confluence.exceptions.ConfluenceDuplicateTitle` naming both, creating nothing.
    ``if_missing=False`` creates a folder on every run (no lookup; without ``parent_id`` none is sent).

    Needs ``write:folder:confluence``, and with ``if_missing`` ``read:hierarchical-content:confluence`` (plus
    ``read:space:confluence`` without ``parent_id``).

    :param title: the folder's title (templated).
    :param space_key: the space's key (templated); or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param parent_id: the page or folder to create it under (templated; default: the space's homepage).
    :param parent_type: ``page`` or ``folder``, what ``parent_id`` is (templated); None (default) tries it as a
        page first, which costs a folder parent one more request.
    :param if_missing: look for the folder first and create it only when missing (default True).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends, holding no worker slot, and resume: a create the quota refused (429: not processed) is sent again;
        nothing follows an accepted one, so it is never sent twice (default: ``[operators] default_deferrable``);
        otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "parent_id", "parent_type", "created"}``.
    """

    template_fields: Sequence[str] = ("title", "space_key", "space_id", "parent_id", "parent_type", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        title: str,
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        parent_type: str | None = None,
        if_missing: bool = True,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_one_space(space_key, space_id)
        if not given(title):
            raise ConfluenceConfigError("title is empty: name the folder.")
        if not isinstance(if_missing, bool):
            raise ConfluenceConfigError(f"if_missing={if_missing!r} must be True or False.")
        if parent_type not in (None, "page", "folder") and "{{" not in str(parent_type):
            raise ConfluenceConfigError(f"parent_type={parent_type!r} must be 'page' or 'folder'.")
        self.title = title
        self.space_key = space_key
        self.space_id = space_id
        self.parent_id = parent_id
        self.parent_type = parent_type
        self.if_missing = if_missing
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Find or create the folder; after a deferral (the quota refused a call, at the latest the create), again."""
        hook = self.confluence_hook()
        space_key, space_id = text_or_none(self.space_key), text_or_none(self.space_id)
        parent_id = text_or_none(self.parent_id)
        if not self.if_missing:
            return hook.create_folder(str(self.title), space_key=space_key, space_id=space_id, parent_id=parent_id)
        folder = hook.ensure_folder(
            str(self.title),
            space_key=space_key,
            space_id=space_id,
            parent_id=parent_id,
            parent_type=text_or_none(self.parent_type),
        )
        self.log.info(
            "Folder %s (%r) %s.", folder["id"], folder["title"], "created" if folder["created"] else "was already there"
        )
        return folder
