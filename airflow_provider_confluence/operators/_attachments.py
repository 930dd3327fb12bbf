"""``ConfluenceUploadAttachmentOperator`` (import it from :mod:`airflow_provider_confluence.operators.confluence`)."""

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
    text_or_none,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator

DATA_ENCODINGS = ("utf-8", "base64")


def _from_base64(text: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfluenceConfigError(
            f"data is not valid base64 ({len(text)} characters), as data_encoding='base64' says: nothing was "
            "uploaded. Return base64.b64encode(content).decode() from the upstream task, or use "
            "data_encoding='utf-8' for text."
        ) from None


class ConfluenceUploadAttachmentOperator(RateLimitDeferralMixin, PageTargetMixin, BaseOperator):
    """Attach a file to a page; a file of the same name becomes a new version of that attachment.

    Needs the ``read:content-details:confluence`` and ``write:attachment:confluence`` scopes.

    :param page_id: the page's id (templated); or name the page by ``title`` and a space.
    :param space_key: the space's key (templated), with ``title``.
    :param space_id: the space's numeric id (templated), with ``title``.
    :param title: the page title (templated), with ``space_key`` or ``space_id``.
    :param file_path: a local file of the worker to upload (templated); give it or ``data``. Any file the worker
        can read, unless the deployment sets ``[confluence] attachment_roots``: then only files under those folders
        (symlinks and ``..`` resolved). Do not pass it a value from ``dag_run.conf`` without that setting.
    :param data: the content itself (templated; bytes, or a string), such as an upstream task's ``.output``.
    :param data_encoding: how a string ``data`` becomes bytes: ``utf-8`` (default; text such as CSV) or
        ``base64`` (binary content such as a PNG, which XCom cannot carry as bytes: return
        ``base64.b64encode(content).decode()`` upstream).
    :param filename: the attachment's name (templated); required with ``data``, by default the file's name.
    :param media_type: the content type, such as ``text/csv`` (default: guessed from the file name).
    :param comment: the attachment's comment (templated).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends, holding no worker slot, and resume: an upload the quota refused (429:
        not processed) is sent again; nothing follows an accepted upload, so it is never sent twice (default:
        ``[operators] default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
    :returns: ``{"id", "title", "page_id", "media_type", "file_size", "version", "url", "download_url"}``.
    """

    template_fields: Sequence[str] = (*PAGE_TARGET_FIELDS, "file_path", "data", "filename", "comment", CONN_ID_FIELD)
    operator_extra_links = (ConfluencePageLink(),)

    def __init__(
        self,
        *,
        page_id: str | None = None,
        space_key: str | None = None,
        space_id: str | None = None,
        title: str | None = None,
        file_path: str | None = None,
        data: bytes | str | None = None,
        data_encoding: str = "utf-8",
        filename: str | None = None,
        media_type: str | None = None,
        comment: str | None = None,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        self.set_page_target(page_id=page_id, space_key=space_key, space_id=space_id, title=title)
        if (file_path is None) == (data is None):
            raise ConfluenceConfigError("Say what to upload: give exactly one of file_path (a local file) and data.")
        if data is not None and not given(filename):
            raise ConfluenceConfigError("filename is required with data: say what to call the attachment.")
        check_choice("data_encoding", data_encoding, DATA_ENCODINGS)
        self.file_path = file_path
        self.data = data
        self.data_encoding = data_encoding
        self.filename = filename
        self.media_type = media_type
        self.comment = comment
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> dict[str, Any]:
        """Upload; after a deferral, the same again (the quota refused the upload, or a call before it)."""
        from airflow_provider_confluence.content.summaries import attachment_summary, page_summary

        content, filename = self._content()  # before any network call: a missing file fails here
        hook = self.confluence_hook()
        page = self.find_target(hook)
        try:
            attachment = hook.upload_attachment(
                str(page["id"]),
                filename=filename,
                data=content,
                media_type=text_or_none(self.media_type),
                comment=text_or_none(self.comment),
            )
        finally:
            if hasattr(content, "close"):
                content.close()
        summary = attachment_summary(attachment, hook.settings.site_url)
        if summary.get("page_id") is None:
            summary["page_id"] = str(page["id"])
        self.log.info(
            "Attachment %s %r is at version %s on page %s (%s bytes).",
            summary["id"],
            summary["title"],
            summary["version"],
            page["id"],
            summary["file_size"],
        )
        persist_link(context, page_summary(page, hook.settings.site_url)["url"])
        return summary

    def _content(self) -> tuple[Any, str]:
        """The bytes (or an open binary file) to send, and the attachment's name."""
        name = text_or_none(self.filename)
        if self.file_path is not None:
            from airflow_provider_confluence.config.deployment import attachment_roots
            from airflow_provider_confluence.config.local_files import open_for_upload

            handle, basename = open_for_upload(str(self.file_path), attachment_roots())  # closed in execute
            return handle, name or basename
        if name is None:
            raise ConfluenceConfigError("filename rendered empty: say what to call the attachment.")
        if isinstance(self.data, str) and self.data_encoding == "base64":
            return _from_base64(self.data), name
        if isinstance(self.data, str):
            return self.data.encode("utf-8"), name
        if isinstance(self.data, (bytes, bytearray, memoryview)):
            return bytes(self.data), name
        raise ConfluenceConfigError(
            f"data is a {type(self.data).__name__}; give bytes or a string (build the file's content in the upstream "
            "task, such as a CSV text)."
        )
