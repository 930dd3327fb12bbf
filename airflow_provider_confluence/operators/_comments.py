"""``ConfluenceAddCommentOperator`` (import it from :mod:`airflow_provider_confluence.operators.confluence`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.links.confluence import ConfluencePageLink
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PAGE_TARGET_FIELDS,
    PageTargetMixin,
    check_choice,
    given,
    persist_link,
    run_key,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator

#: The body formats a comment can be given in (``markdown`` is converted to storage format).
COMMENT_BODY_FORMATS = ("storage", "markdown", "wiki", "atlas_doc_format")


def comment_summary(comment: dict[str, Any], site_url: str | None) -> dict[str, Any]:
    """The JSON-able summary of a v2 footer comment."""
    raw_links = comment.get("_links")
    links = raw_links if isinstance(raw_links, dict) else {}
    base = str(links.get("base") or (f"{site_url.rstrip('/')}/wiki" if site_url else "")).rstrip("/")
    webui = links.get("webui")
    return {
        "id": str(comment.get("id")),
        "page_id": None if comment.get("pageId") is None else str(comment.get("pageId")),
        "title": comment.get("title"),
        "version": (comment.get("version") or {}).get("number"),
        "url": f"{base}{webui}" if base and isinstance(webui, str) and webui.startswith("/") else None,
    }


class ConfluenceAddCommentOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Add a footer comment to a page, once per task run.

    A retried (or cleared and re-run) task of the same run adds no second comment: a storage comment starts with
    an invisible anchor naming the run, and a page that already holds that comment is left alone. Needs the
    ``read:comment:confluence`` and ``write:comment:confluence`` scopes.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated), with ``space_key`` or ``space_id``.
    :param body: the comment (templated).
    :param representation: ``storage`` (default), ``markdown`` (converted to storage), ``wiki`` or
        ``atlas_doc_format``; only storage and markdown comments are written once per run.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends, holding no worker slot, and resume: a comment the quota refused is added
        then; an accepted one is found by this run's anchor and not added again (default: ``[operators]
        default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "page_id", "title", "version", "url", "action"}``; ``action`` is ``created`` or
        ``skipped`` (this run's comment was already there).
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, "body", CONN_ID_FIELD)
    template_fields_renderers = {"body": "html"}
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        body: str,
        representation: str = "storage",
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        check_choice("representation", representation, COMMENT_BODY_FORMATS)
        if not given(body):
            raise ConfluenceConfigError("body is empty: say what the comment should say.")
        self.body = body
        self.representation = representation
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Add the comment; after a deferral, the same again: this run's comment, if it was accepted, is found."""
        from airflow_provider_confluence.content.publish import append_marker
        from airflow_provider_confluence.content.storage_format import to_storage
        from airflow_provider_confluence.content.summaries import page_summary

        if not given(self.body):
            raise ConfluenceConfigError("body rendered empty: say what the comment should say.")
        representation, body = to_storage(self.body, self.representation)  # before any request
        hook = self.confluence_hook()
        page = self.find_target(hook)
        page_id = str(page["id"])
        key = run_key(context)
        if key is not None and representation == "storage":
            marker = append_marker(key)
            for comment in hook.list_footer_comments(page_id, body_format="storage"):
                if marker in str(((comment.get("body") or {}).get("storage") or {}).get("value") or ""):
                    summary = {**comment_summary(comment, hook.settings.site_url), "action": "skipped"}
                    self.log.info("Page %s already has this run's comment %s; not added again.", page_id, summary["id"])
                    persist_link(context, page_summary(page, hook.settings.site_url)["url"])
                    return summary
            body = marker + body
        comment = hook.add_footer_comment(page_id, body, representation=representation)
        summary = {**comment_summary(comment, hook.settings.site_url), "action": "created"}
        if summary["page_id"] is None:
            summary["page_id"] = page_id
        self.log.info("Added comment %s to page %s: %s", summary["id"], page_id, summary["url"])
        persist_link(context, page_summary(page, hook.settings.site_url)["url"])
        return summary
