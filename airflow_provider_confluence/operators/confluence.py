"""Operators that publish to and read from Confluence Cloud.

Every operator is keyword-only, takes ``confluence_conn_id`` (templated) and returns a JSON-able result
(pushed to XCom). Option values are checked when the DAG is parsed; nothing here touches the network or
imports ``requests`` until a task runs. Reading a page, search, attachment upload, comments and downloads
live in :mod:`._get`, :mod:`._search`, :mod:`._attachments`, :mod:`._comments` and :mod:`._downloads`, and are
importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.assets.confluence import DEFAULT_PAGE_ALIAS
from airflow_provider_confluence.content.page_spec import PageSpec, update_read_format
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceRateLimited
from airflow_provider_confluence.links.confluence import ConfluencePageLink
from airflow_provider_confluence.operators._assets import emit_page_event, with_page_alias
from airflow_provider_confluence.operators._attachments import ConfluenceUploadAttachmentOperator
from airflow_provider_confluence.operators._cleanup import (
    ConfluenceApplyRetentionOperator,
    ConfluenceDeletePageOperator,
    ConfluenceRemoveLabelOperator,
)
from airflow_provider_confluence.operators._comments import ConfluenceAddCommentOperator
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PAGE_TARGET_FIELDS,
    PARENT_FIELDS,
    PROGRESS_EVERY,
    UPSERT_HINT,
    ConfluenceOperatorMixin,
    PageTargetMixin,
    as_list,
    changed_version,
    persist_link,
    run_key,
    text_or_none,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.operators._downloads import (
    ConfluenceDownloadAttachmentOperator,
    ConfluenceExportPageOperator,
)
from airflow_provider_confluence.operators._get import ConfluenceGetPageOperator
from airflow_provider_confluence.operators._mirror import ConfluenceMirrorDirectoryOperator
from airflow_provider_confluence.operators._search import ConfluenceSearchOperator
from airflow_provider_confluence.operators._tree import (
    ConfluenceCreateFolderOperator,
    ConfluenceFindPageByPathOperator,
    ConfluenceListChildrenOperator,
)
from airflow_provider_confluence.version_compat import BaseOperator

__all__ = [
    "ConfluenceAddCommentOperator",
    "ConfluenceApplyRetentionOperator",
    "ConfluenceCreateFolderOperator",
    "ConfluenceDeletePageOperator",
    "ConfluenceFindPageByPathOperator",
    "ConfluenceListChildrenOperator",
    "ConfluenceMirrorDirectoryOperator",
    "ConfluenceRemoveLabelOperator",
    "ConfluenceCreatePageOperator",
    "ConfluenceDownloadAttachmentOperator",
    "ConfluenceExportPageOperator",
    "ConfluenceGetPageOperator",
    "ConfluenceGetSpacesOperator",
    "ConfluenceSearchOperator",
    "ConfluenceUpdatePageOperator",
    "ConfluenceUploadAttachmentOperator",
]


class ConfluenceCreatePageOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Create a Confluence page, or handle an existing page of the same title as ``if_exists`` says.

    :param space_key: the space's key, such as ``ENG`` (templated); give it or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param title: the page title (templated).
    :param body: the page body in ``representation`` format (templated); for ``table``, a list of dicts, a
        pandas DataFrame or a JSON string of a list of objects.
    :param parent_id: the parent page's id (templated); by default the page goes under the space's home page.
    :param parent_title: the parent page's title in the same space (templated); instead of ``parent_id``.
    :param representation: ``storage`` (XHTML, default), ``atlas_doc_format``, ``wiki``, ``markdown`` or
        ``table`` (the last two are converted to storage format).
    :param status: ``current`` (published) or ``draft``.
    :param if_exists: ``fail`` (an error naming the existing page), ``skip`` (return it unchanged) or
        ``update`` (a new version with this body; none when the body is unchanged).
    :param labels: labels the page should carry (templated; a list or a comma-separated string); only the
        missing ones are added, also when the page is skipped or unchanged.
    :param asset_alias: the asset alias (dataset alias on Airflow 2) among the task's outlets through which the
        page's asset ``confluence://<site host>/pages/<id>`` gets an event, only when this run changed the page
        (default ``confluence_pages``; None: no asset events). A DAG scheduled on the page's asset runs after it.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends and resume (a page the quota refused is sent again; one already created
        is never sent twice), holding no worker slot (default: ``[operators] default_deferrable``); otherwise the
        try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "space_id", "version", "url", "changed", "action"}``; ``action`` is ``created``,
        ``updated``, ``unchanged`` or ``skipped``, and ``changed`` is True for the first two.
    """

    resume_keys = ("page_id", "action")
    template_fields: Sequence[str] = (
        "space_key",
        "space_id",
        "title",
        "body",
        *PARENT_FIELDS,
        "labels",
        CONN_ID_FIELD,
    )
    template_fields_renderers = {"body": "html"}
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str,
        body: Any,
        parent_id: str | None = None,
        parent_title: str | None = None,
        representation: str = "storage",
        status: str = "current",
        if_exists: str = "fail",
        labels: str | Sequence[str] | None = None,
        asset_alias: str | None = DEFAULT_PAGE_ALIAS,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_page_alias(kwargs, asset_alias))
        self.asset_alias = asset_alias
        self.init_deferrable(deferrable)
        PageSpec.check_options(
            representation=representation,
            status=status,
            if_exists=if_exists,
            parent_id=parent_id,
            parent_title=parent_title,
        )
        self.space_key = space_key
        self.space_id = space_id
        self.title = title
        self.body = body
        self.parent_id = parent_id
        self.parent_title = parent_title
        self.representation = representation
        self.status = status
        self.if_exists = if_exists
        self.labels = labels
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Publish; after a deferral whose ``resume`` names a page this task already wrote, only finish its labels.

        A create that the quota refused was not processed (429), so it is simply sent again: the title lookup of
        :func:`~airflow_provider_confluence.content.publish.publish` finds nothing and creates the page once.
        """
        from airflow_provider_confluence.content.summaries import page_summary

        spec = PageSpec.build(  # the rendered arguments, checked and converted once, before any request
            space_key=text_or_none(self.space_key),
            space_id=text_or_none(self.space_id),
            title=str(self.title).strip(),
            body=self.body,
            parent_id=text_or_none(self.parent_id),
            parent_title=text_or_none(self.parent_title),
            representation=self.representation,
            status=self.status,
            if_exists=self.if_exists,
            labels=as_list(self.labels),
        )
        hook = self.confluence_hook()
        written = resume.get("action") if resume.get("page_id") else None
        if written:  # the page was written before the quota ran out: keep it, add the labels it still lacks
            published = hook.publish(spec.with_changes(if_exists="skip"))
            action = str(written)
        else:
            published = hook.publish(spec)
            action = published.action
        summary = {
            **page_summary(published.page, hook.settings.site_url),
            "changed": action in ("created", "updated"),
            "action": action,
        }
        self.log.info(
            "Page %s %r is at version %s (%s): %s",
            summary["id"],
            summary["title"],
            summary["version"],
            summary["action"],
            summary["url"],
        )
        persist_link(context, summary["url"])
        emit_page_event(self, context, summary, hook.settings.site_url)
        return summary


class ConfluenceUpdatePageOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Write a new version of an existing page: replace its body, or append to it.

    No new version is made when nothing would change (a re-run is safe); a version written by someone else
    between our read and our write (409) is read again and the update tried once more.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page's current title (templated), with ``space_key`` or ``space_id``.
    :param body: the new body, or the part to append, in ``representation`` format (templated).
    :param representation: ``storage`` (default), ``atlas_doc_format``, ``wiki``, ``markdown`` or ``table``.
    :param mode: ``replace`` (default) or ``append`` (the current storage body followed by ``body``, marked with
        an invisible anchor naming this task run: a retry or re-run of the same run appends once).
    :param new_title: rename the page to this (templated); by default the title is kept.
    :param labels: labels the page should carry (templated; a list or a comma-separated string).
    :param parent_id: move the page under this parent (templated; same space).
    :param parent_title: move the page under the page with this title in its space (templated).
    :param version_message: the version comment (templated).
    :param status: ``current`` (default) or ``draft``.
    :param asset_alias: the asset alias (dataset alias on Airflow 2) among the task's outlets through which the
        page's asset ``confluence://<site host>/pages/<id>`` gets an event, only when this run changed the page
        (default ``confluence_pages``; None: no asset events). A DAG scheduled on the page's asset runs after it.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends and resume, holding no worker slot (default: ``[operators]
        default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``. A version the quota refused
        is written on resume; one already written is not written again.
    :returns: ``{"id", "title", "space_id", "version", "url", "changed", "action"}``; ``changed`` is True when a
        new version was written (``action`` ``updated``, else ``unchanged``).
    """

    resume_keys = ("page_id", "action")
    template_fields: Sequence[str] = (
        *PAGE_TARGET_FIELDS,
        "body",
        "new_title",
        "labels",
        *PARENT_FIELDS,
        "version_message",
        CONN_ID_FIELD,
    )
    template_fields_renderers = {"body": "html"}
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        body: Any,
        representation: str = "storage",
        mode: str = "replace",
        new_title: str | None = None,
        labels: str | Sequence[str] | None = None,
        parent_id: str | None = None,
        parent_title: str | None = None,
        version_message: str | None = None,
        status: str = "current",
        asset_alias: str | None = DEFAULT_PAGE_ALIAS,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_page_alias(kwargs, asset_alias))
        self.asset_alias = asset_alias
        self.init_deferrable(deferrable)
        PageSpec.check_options(
            representation=representation,
            status=status,
            if_exists="update",
            mode=mode,
            parent_id=parent_id,
            parent_title=parent_title,
        )
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        self.body = body
        self.representation = representation
        self.mode = mode
        self.new_title = new_title
        self.labels = labels
        self.parent_id = parent_id
        self.parent_title = parent_title
        self.version_message = version_message
        self.status = status
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Update the page. After a deferral, the update runs again: an unchanged body (or, appending, the run's
        anchor already in the page) writes no second version; ``resume`` says whether this task wrote one."""
        from airflow_provider_confluence.content.summaries import page_summary

        spec = PageSpec.build(  # the rendered arguments, checked and converted once, before any request
            body=self.body,
            title=text_or_none(self.new_title),
            representation=self.representation,
            status=self.status,
            mode=self.mode,
            message=text_or_none(self.version_message),
            labels=as_list(self.labels),
            parent_id=text_or_none(self.parent_id),
            parent_title=text_or_none(self.parent_title),
        )
        hook = self.confluence_hook()
        # read with the body the update compares and extends, so that the update does not read the page again
        current = self.find_target(hook, body_format=update_read_format(spec.representation), hint=UPSERT_HINT)
        if spec.parent_title is not None:  # a title names a page of the page's own space
            parent = hook.resolve_parent_id(space_id=str(current.get("spaceId")), parent_title=spec.parent_title)
            spec = spec.with_changes(parent_id=parent, parent_title=None)
        page = hook.update_page(
            spec,
            page_id=str(current["id"]),
            append_key=run_key(context) if self.mode == "append" else None,
            read=current,
        )
        changed = changed_version(current, page) or resume.get("action") == "updated"
        summary = {
            **page_summary(page, hook.settings.site_url),
            "changed": changed,
            "action": "updated" if changed else "unchanged",
        }
        self.log.info(
            "Page %s %r is at version %s (%s): %s",
            summary["id"],
            summary["title"],
            summary["version"],
            "new version" if summary["changed"] else "unchanged",
            summary["url"],
        )
        persist_link(context, summary["url"])
        emit_page_event(self, context, summary, hook.settings.site_url)
        return summary


class ConfluenceGetSpacesOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Read spaces, following every page of results.

    :param keys: only these space keys (templated; a list or a comma-separated string).
    :param space_type: ``global``, ``collaboration``, ``knowledge_base`` or ``personal``.
    :param status: ``current`` or ``archived``.
    :param labels: only spaces with these labels (templated; a list or a comma-separated string).
    :param max_results: stop after this many spaces (default: all).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep, defer until it
        ends and continue from the page of spaces that was refused (default: ``[operators] default_deferrable``).
    :returns: a list of ``{"id", "key", "name", "type", "status", "url"}``.
    """

    resume_keys = ("cursor", "results")
    template_fields: Sequence[str] = ("keys", "labels", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        keys: str | Sequence[str] | None = None,
        space_type: str | None = None,
        status: str | None = None,
        labels: str | Sequence[str] | None = None,
        max_results: int | None = None,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        if max_results is not None and (
            isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
        ):
            raise ConfluenceConfigError(
                f"max_results={max_results!r} must be a positive number, or None for all spaces."
            )
        self.keys = keys
        self.space_type = space_type
        self.status = status
        self.labels = labels
        self.max_results = max_results
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> list[dict[str, Any]]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> list[dict[str, Any]]:
        """List the spaces; after a deferral, from ``resume["cursor"]`` with ``resume["results"]`` kept."""
        hook = self.confluence_hook()
        client = hook.get_conn()
        wiki = f"{hook.settings.site_url}/wiki"
        requests_before = client.request_count
        spaces: list[dict[str, Any]] = [s for s in resume.get("results") or [] if isinstance(s, dict)]
        cursor = resume.get("cursor") if isinstance(resume.get("cursor"), str) else None
        done = self.max_results is not None and len(spaces) >= self.max_results
        try:
            for space in (
                ()
                if done
                else hook.iter_spaces(
                    keys=as_list(self.keys),
                    space_type=self.space_type,
                    status=self.status,
                    labels=as_list(self.labels),
                    cursor=cursor,
                )
            ):
                webui = (space.get("_links") or {}).get("webui")
                spaces.append(
                    {
                        "id": str(space.get("id")),
                        "key": space.get("key"),
                        "name": space.get("name"),
                        "type": space.get("type"),
                        "status": space.get("status"),
                        "url": f"{wiki}{webui}" if webui else None,
                    }
                )
                if len(spaces) % PROGRESS_EVERY == 0:
                    self.log.info("Fetched %d spaces so far.", len(spaces))
                if self.max_results is not None and len(spaces) >= self.max_results:
                    break
        except ConfluenceRateLimited as exc:
            exc.with_progress(results=spaces)
            raise
        self.log.info("Fetched %d spaces in %d requests.", len(spaces), client.request_count - requests_before)
        return spaces
