"""``ConfluenceDownloadAttachmentOperator`` and ``ConfluenceExportPageOperator`` (import them from
:mod:`airflow_provider_confluence.operators.confluence`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.config.deployment import attachment_roots
from airflow_provider_confluence.config.local_files import check_write_path, open_for_write
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.links.confluence import ConfluencePageLink
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PAGE_TARGET_FIELDS,
    PageTargetMixin,
    check_choice,
    check_positive,
    given,
    persist_link,
    text_or_none,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator

#: The largest attachment returned as base64 through XCom by default (XCom lives in the metadata database).
DEFAULT_MAX_XCOM_BYTES = 1024 * 1024
EXPORT_FORMATS = ("storage", "atlas_doc_format")


class ConfluenceDownloadAttachmentOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Download a page's attachment to a file, or return it as base64 for XCom.

    The content is fetched from the attachment's ``downloadLink`` through the Atlassian API gateway with the
    connection's OAuth token (never from the site's host). Needs the ``read:attachment:confluence`` scope.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated), with ``space_key`` or ``space_id``.
    :param filename: the attachment's file name (templated).
    :param output_path: write the content to this local file of the worker (templated); without it the content is
        returned base64-encoded (``content_base64``). Any path the worker may write, unless the deployment sets
        ``[confluence] attachment_roots``: then only under those folders (symlinks and ``..`` resolved).
    :param max_xcom_bytes: the largest attachment returned through XCom (default 1 MiB); a larger one fails
        before it is downloaded: give ``output_path`` instead.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends, holding no worker slot, and resume: the reads are made again (default:
        ``[operators] default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "page_id", "media_type", "file_size", "version", "url", "download_url",
        "sha256"}`` and ``path`` (with ``output_path``) or ``content_base64``.
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, "filename", "output_path", CONN_ID_FIELD)
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        filename: str,
        output_path: str | None = None,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        if not given(filename):
            raise ConfluenceConfigError("filename is empty: say which attachment to download, such as 'report.csv'.")
        check_positive("max_xcom_bytes", max_xcom_bytes)
        self.filename = filename
        self.output_path = output_path
        self.max_xcom_bytes = max_xcom_bytes
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Download; after a deferral, the reads are made again."""
        import base64
        import hashlib

        from airflow_provider_confluence.content.summaries import attachment_summary, page_summary

        name = text_or_none(self.filename)
        if name is None:
            raise ConfluenceConfigError("filename rendered empty: say which attachment to download.")
        path = (
            check_write_path(str(self.output_path), attachment_roots(), nothing="downloaded")
            if given(self.output_path)
            else None
        )
        hook = self.confluence_hook()
        page = self.find_target(hook)
        found = hook.find_attachment(str(page["id"]), name)
        summary = attachment_summary(found, hook.settings.site_url)
        size = summary.get("file_size")
        if path is None and isinstance(size, int) and size > self.max_xcom_bytes:
            raise ConfluenceConfigError(
                f"Attachment {name!r} has {size} bytes, more than max_xcom_bytes={self.max_xcom_bytes}: nothing "
                "was downloaded. Give output_path to write it to a file, or raise max_xcom_bytes."
            )
        data = hook.download_attachment(found)
        summary["sha256"] = hashlib.sha256(data).hexdigest()
        if path is not None:
            with open_for_write(path, attachment_roots(), nothing="downloaded") as out:
                out.write(data)
            summary["path"] = path
            self.log.info("Downloaded attachment %r of page %s (%d bytes) to %s.", name, page["id"], len(data), path)
        else:
            summary["content_base64"] = base64.b64encode(data).decode("ascii")
            self.log.info("Downloaded attachment %r of page %s (%d bytes) for XCom.", name, page["id"], len(data))
        persist_link(context, page_summary(page, hook.settings.site_url)["url"])
        return summary


class ConfluenceExportPageOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Export a page for archiving: its body in ``storage`` or ``atlas_doc_format`` with its metadata.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated), with ``space_key`` or ``space_id``.
    :param body_format: ``storage`` (default) or ``atlas_doc_format``.
    :param output_path: also write the export as JSON to this local file of the worker (templated); only under
        ``[confluence] attachment_roots`` when the deployment sets it.
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends, holding no worker slot, and resume: the reads are made again (default:
        ``[operators] default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "space_id", "version", "url", "status", "parent_id", "created_at",
        "version_created_at", "version_message", "author_id", "labels", "body_format", "body", "sha256"}``
        (and ``path`` with ``output_path``).
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, "output_path", CONN_ID_FIELD)
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        body_format: str = "storage",
        output_path: str | None = None,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        check_choice("body_format", body_format, EXPORT_FORMATS)
        self.body_format = body_format
        self.output_path = output_path
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Export; after a deferral, the reads are made again."""
        import hashlib
        import json

        from airflow_provider_confluence.content.summaries import page_summary

        path = (
            check_write_path(str(self.output_path), attachment_roots(), nothing="exported")
            if given(self.output_path)
            else None
        )
        hook = self.confluence_hook()
        found = self.find_target(hook)
        page = hook.get_page(str(found["id"]), body_format=self.body_format)
        value = ((page.get("body") or {}).get(self.body_format) or {}).get("value")
        body = "" if value is None else str(value)
        version = page.get("version") or {}
        parent = page.get("parentId")
        result = {
            **page_summary(page, hook.settings.site_url),
            "status": page.get("status"),
            "parent_id": None if parent is None else str(parent),
            "created_at": page.get("createdAt"),
            "version_created_at": version.get("createdAt"),
            "version_message": version.get("message"),
            "author_id": page.get("authorId"),
            "labels": hook.get_page_labels(str(page["id"])),
            "body_format": self.body_format,
            "body": body,
            "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(),
        }
        if path is not None:
            with open_for_write(path, attachment_roots(), nothing="exported", text=True) as out:
                json.dump(result, out, ensure_ascii=False, indent=2)
            result["path"] = path
        self.log.info(
            "Exported page %s %r (version %s, %d characters of %s)%s.",
            result["id"],
            result["title"],
            result["version"],
            len(body),
            self.body_format,
            f" to {path}" if path else "",
        )
        persist_link(context, result["url"])
        return result
