"""Operators that publish to and read from Confluence Cloud."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence._compat import BaseOperator
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.publish import check_page_options

if TYPE_CHECKING:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

PROGRESS_EVERY = 1000


def _hook(conn_id: str) -> ConfluenceOAuthHook:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    return ConfluenceOAuthHook(confluence_conn_id=conn_id)


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    """Accept a list, or a comma-separated string (what a template renders to)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    cleaned = [str(item).strip() for item in items if str(item).strip()]
    return cleaned or None


class ConfluenceCreatePageOperator(BaseOperator):
    """Create a Confluence page, or handle an existing page of the same title as ``if_exists`` says.

    :param space_key: the space's key, such as ``ENG`` (templated); give it or ``space_id``.
    :param space_id: the space's numeric id (templated).
    :param title: the page title (templated).
    :param body: the page body in ``representation`` format (templated).
    :param parent_id: the parent page's id (templated); by default the page goes under the space's home page.
    :param representation: ``storage`` (XHTML, default), ``atlas_doc_format`` or ``wiki``.
    :param status: ``current`` (published) or ``draft``.
    :param if_exists: ``fail`` (an error naming the existing page), ``skip`` (return it unchanged) or
        ``update`` (a new version with this body; none when the body is unchanged).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: ``{"id", "title", "space_id", "version", "url"}``.
    """

    template_fields: Sequence[str] = ("space_key", "space_id", "title", "body", "parent_id", "confluence_conn_id")
    template_fields_renderers = {"body": "html"}
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str,
        body: str,
        parent_id: str | None = None,
        representation: str = "storage",
        status: str = "current",
        if_exists: str = "fail",
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_page_options(if_exists=if_exists, representation=representation, status=status)
        self.space_key = space_key
        self.space_id = space_id
        self.title = title
        self.body = body
        self.parent_id = parent_id
        self.representation = representation
        self.status = status
        self.if_exists = if_exists
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_provider_confluence.publish import page_summary

        hook = _hook(self.confluence_conn_id)
        page = hook.create_page(
            space_key=self.space_key or None,
            space_id=str(self.space_id) if self.space_id else None,
            title=self.title,
            body=self.body,
            parent_id=str(self.parent_id) if self.parent_id else None,
            representation=self.representation,
            status=self.status,
            if_exists=self.if_exists,
        )
        summary = page_summary(page, hook.settings.site_url)
        self.log.info("Page %s %r is at version %s: %s", summary["id"], summary["title"], summary["version"],
                      summary["url"])
        return summary


class ConfluenceGetSpacesOperator(BaseOperator):
    """Read spaces, following every page of results.

    :param keys: only these space keys (templated; a list or a comma-separated string).
    :param space_type: ``global``, ``collaboration``, ``knowledge_base`` or ``personal``.
    :param status: ``current`` or ``archived``.
    :param labels: only spaces with these labels (templated; a list or a comma-separated string).
    :param max_results: stop after this many spaces (default: all).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :returns: a list of ``{"id", "key", "name", "type", "status", "url"}``.
    """

    template_fields: Sequence[str] = ("keys", "labels", "confluence_conn_id")
    ui_color = "#deebff"

    def __init__(
        self,
        *,
        keys: str | Sequence[str] | None = None,
        space_type: str | None = None,
        status: str | None = None,
        labels: str | Sequence[str] | None = None,
        max_results: int | None = None,
        confluence_conn_id: str = "confluence_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_results is not None and max_results < 1:
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
        hook = _hook(self.confluence_conn_id)
        client = hook.get_conn()
        wiki = f"{hook.settings.site_url}/wiki"
        requests_before = client.request_count
        spaces: list[dict[str, Any]] = []
        for space in hook.iter_spaces(
            keys=_as_list(self.keys), space_type=self.space_type, status=self.status, labels=_as_list(self.labels)
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
        self.log.info("Fetched %d spaces in %d requests.", len(spaces), client.request_count - requests_before)
        return spaces
