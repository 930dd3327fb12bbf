"""``ConfluenceGetPageOperator`` (import it from :mod:`airflow_provider_confluence.operators.confluence`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.links.confluence import ConfluencePageLink
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PAGE_TARGET_FIELDS,
    PageTargetMixin,
    check_choice,
    given,
    persist_link,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator

#: The body formats a page can be read in.
BODY_FORMATS = ("storage", "atlas_doc_format")


class ConfluenceGetPageOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Read a page: its body, labels and parent.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated), with ``space_key`` or ``space_id``.
    :param body_format: ``storage`` (XHTML, default) or ``atlas_doc_format`` (a JSON string, as Confluence
        sends it).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends, holding no worker slot, and resume: the reads are made again (default:
        ``[operators] default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "space_id", "version", "url", "body", "labels", "parent_id"}``.
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, CONN_ID_FIELD)
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        body_format: str = "storage",
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        check_choice("body_format", body_format, BODY_FORMATS)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        self.body_format = body_format
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Read the page; after a deferral, the reads are made again."""
        from airflow_provider_confluence.content.summaries import page_summary

        hook = self.confluence_hook()
        page = self.find_target(hook, body_format=self.body_format)
        if given(self.title) and (page.get("body") or {}).get(self.body_format) is None:
            page = hook.get_page(str(page["id"]), body_format=self.body_format)  # a listing may omit the body
        value = ((page.get("body") or {}).get(self.body_format) or {}).get("value")
        parent = page.get("parentId")
        result = {
            **page_summary(page, hook.settings.site_url),
            "body": "" if value is None else str(value),
            "labels": hook.get_page_labels(str(page["id"])),
            "parent_id": str(parent) if parent is not None else None,
        }
        self.log.info(
            "Read page %s %r (version %s, %d characters of %s, %d labels): %s",
            result["id"],
            result["title"],
            result["version"],
            len(result["body"]),
            self.body_format,
            len(result["labels"]),
            result["url"],
        )
        persist_link(context, result["url"])
        return result
