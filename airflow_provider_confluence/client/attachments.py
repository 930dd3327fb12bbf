"""Page attachments: list them over v2, upload over v1 (a mixin of the client).

v2 lists a page's attachments (``GET /wiki/api/v2/pages/{id}/attachments``, scope
``read:attachment:confluence``) but has no upload endpoint, so uploading goes through v1
``PUT /wiki/rest/api/content/{id}/child/attachment`` ("create or update": a file name the page already has
gets a new version, any other a new attachment). That call needs the header ``X-Atlassian-Token: no-check``
(without it Confluence answers 403 "XSRF check failed") and the granular scopes
``read:content-details:confluence`` + ``write:attachment:confluence`` (classic: ``write:confluence-file``).

Every successful upload makes a new version, so the PUT is NOT idempotent here: it is never re-sent after a
failure that may have landed (a 5xx, a read timeout). A 429 ("not processed") is waited out and re-sent, with
a file object rewound first.

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError

__all__ = [
    "AttachmentsMixin",
    "DEFAULT_MEDIA_TYPE",
    "content_sha256",
    "digest_comment",
    "guess_media_type",
    "recorded_sha256",
]

log = logging.getLogger(__name__)

#: The media type sent when none is given and none can be guessed from the file name.
DEFAULT_MEDIA_TYPE = "application/octet-stream"


def guess_media_type(filename: str) -> str:
    """The media type of a file name (``chart.png`` -> ``image/png``), else ``application/octet-stream``."""
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or DEFAULT_MEDIA_TYPE


_DIGEST = re.compile(r"\bsha256:([0-9a-f]{64})\b")


def content_sha256(data: bytes) -> str:
    """The hex SHA-256 of an attachment's content."""
    return hashlib.sha256(data).hexdigest()


def digest_comment(digest: str, comment: str | None = None) -> str:
    """The attachment comment that records the content's digest (read back by :func:`recorded_sha256`), after the
    caller's own ``comment`` when there is one."""
    return f"{comment} (sha256:{digest})" if comment else f"Published by Airflow; sha256:{digest}"


def recorded_sha256(attachment: Mapping[str, Any]) -> str | None:
    """The digest an attachment's comment records (v2 ``comment``, v1 ``extensions.comment`` or the version
    message), or None when it records none."""
    extensions = attachment.get("extensions")
    version = attachment.get("version")
    for text in (
        attachment.get("comment"),
        extensions.get("comment") if isinstance(extensions, Mapping) else None,
        version.get("message") if isinstance(version, Mapping) else None,
    ):
        found = _DIGEST.search(text) if isinstance(text, str) else None
        if found:
            return found.group(1)
    return None


def _check_filename(filename: object) -> str:
    if not isinstance(filename, str) or not filename.strip():
        raise ConfluenceConfigError(f"An attachment needs a file name such as 'chart.png', not {filename!r}.")
    name = filename.strip()
    if "/" in name or "\\" in name or any(ord(ch) < 32 for ch in name):
        raise ConfluenceConfigError(
            f"The attachment name {name[:80]!r} must be a bare file name (no directory, no control characters); "
            "pass os.path.basename(path) as filename."
        )
    return name


def _check_data(data: object) -> bytes | IO[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        raise ConfluenceConfigError(
            "Attachment data must be bytes or a binary file object, not str: encode the text first "
            "(data.encode('utf-8')) or open the file in binary mode ('rb')."
        )
    if not hasattr(data, "read"):
        raise ConfluenceConfigError(
            f"Attachment data must be bytes or a binary file object, not {type(data).__name__}."
        )
    return data  # type: ignore[return-value]


class AttachmentsMixin(MixinBase):
    """Attachment methods; the host class provides ``request``, ``paginate``, ``url`` and ``_site_url``."""

    def download_attachment(self, attachment: Mapping[str, Any]) -> bytes:
        """The content of an attachment (a v2 object, as :meth:`list_attachments` yields), from its
        ``downloadLink`` through the gateway (GET, retried like every read).

        :raises ConfluenceApiError: when the object has no download link.
        """
        raw_links = attachment.get("_links")
        links = raw_links if isinstance(raw_links, Mapping) else {}
        link = attachment.get("downloadLink") or links.get("download")
        if not isinstance(link, str) or not link.strip():
            raise ConfluenceApiError(
                200,
                "GET",
                self.url("/wiki/api/v2/attachments"),
                None,
                f"Attachment {attachment.get('id')} has no download link.",
            )
        data = self.download(link)
        log.info("Downloaded attachment %s (%d bytes).", attachment.get("id"), len(data))
        return data

    def holds_content(self, attachment: Mapping[str, Any], data: bytes) -> bool:
        """True when ``attachment`` (a listed v2 object) already holds exactly ``data``.

        By the digest its comment records (no request); else by its size, then by downloading it (one GET).
        """
        recorded = recorded_sha256(attachment)
        if recorded is not None:
            return recorded == content_sha256(data)
        size = attachment.get("fileSize")
        if isinstance(size, int) and size != len(data):
            return False
        return content_sha256(self.download_attachment(attachment)) == content_sha256(data)

    def sync_attachment(
        self,
        page_id: str,
        *,
        filename: str,
        data: bytes,
        media_type: str | None = None,
        existing: Mapping[str, Any] | None = None,
        listed: bool = False,
        comment: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Make the page's attachment ``filename`` hold ``data``: upload it (recording its digest in the comment)
        unless the attachment of that name already holds these bytes.

        :param existing: the page's attachment of this name, when the caller listed the page's attachments already.
        :param listed: True when ``existing`` is the result of such a listing (None then means "no such
            attachment"); False lists the page's attachment of this name first (one GET, which needs
            ``read:attachment:confluence``).
        :param comment: the caller's comment for a new version; the digest is added after it.
        :returns: the attachment (the listed v2 object when unchanged, the v1 upload answer otherwise), and True
            when it was uploaded.
        """
        if not listed:
            existing = next(iter(self.list_attachments(page_id, filename=filename)), None)
        if existing is not None and self.holds_content(existing, data):
            log.info(
                "Attachment %r of page %s already holds these %d bytes; not uploaded.", filename, page_id, len(data)
            )
            return dict(existing), False
        uploaded = self.upload_attachment(
            page_id,
            filename=filename,
            data=data,
            media_type=media_type,
            comment=digest_comment(content_sha256(data), comment),
        )
        return uploaded, True

    def list_attachments(self, page_id: str, *, filename: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield a page's attachments (v2 objects: ``id``, ``title``, ``mediaType``, ``fileSize``, ``version``, ...).

        :param page_id: the page's id.
        :param filename: only the attachment with this exact file name.
        :raises ConfluenceNotFound: when there is no such page or the app's user cannot see it.
        """
        params = {"filename": filename} if filename else None
        return self.paginate(f"/wiki/api/v2/pages/{quote(str(page_id), safe='')}/attachments", params)

    def upload_attachment(
        self,
        page_id: str,
        *,
        filename: str,
        data: bytes | IO[bytes],
        media_type: str | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Attach a file to a page, or add a new version of the page's attachment with this file name.

        Sent once, as a minor edit (watchers get no notification). After a failure that may have landed (a 5xx,
        a timeout) it is NOT re-sent: look at the page's attachments before trying again.

        :param page_id: the page's id.
        :param filename: the attachment's file name (no directory), such as ``chart.png``.
        :param data: the content, as bytes or a binary file object (read from where it stands).
        :param media_type: the content type (default: guessed from ``filename``, else
            ``application/octet-stream``).
        :param comment: a comment for this version of the attachment.
        :return: the v1 attachment object (``id``, ``title``, ``version.number``, ``extensions.mediaType``,
            ``extensions.fileSize``, ``_links`` with ``base`` filled in).
        :raises ConfluenceConfigError: for a bad file name or data; nothing is sent then.
        """
        name = _check_filename(filename)
        body = _check_data(data)
        kind = (media_type or "").strip() or guess_media_type(name)
        parts: list[tuple[str, tuple[Any, ...]]] = [("file", (name, body, kind)), ("minorEdit", (None, "true"))]
        if comment:
            parts.append(("comment", (None, comment, "text/plain; charset=utf-8")))
        path = f"/wiki/rest/api/content/{quote(str(page_id), safe='')}/child/attachment"
        try:
            answer = self.request("PUT", path, files=parts, headers={"X-Atlassian-Token": "no-check"}, idempotent=False)
        except ConfluenceApiError as exc:
            if (exc.status_code or 0) < 500:
                raise
            raise ConfluenceApiError(
                exc.status_code or 0,
                exc.method,
                exc.url,
                exc.code,
                f"{exc.detail} The upload of {name!r} may have been processed and was not re-sent: check the "
                "page's attachments before retrying.",
            ) from exc
        results = answer.get("results") if isinstance(answer, dict) else None
        attachment = results[0] if isinstance(results, list) and results and isinstance(results[0], dict) else None
        if attachment is None:
            raise ConfluenceApiError(200, "PUT", self.url(path), None, "The answer lists no attachment.")
        raw_links = attachment.get("_links")
        links = raw_links if isinstance(raw_links, dict) else {}
        if not links.get("base"):
            answer_links = answer.get("_links") if isinstance(answer.get("_links"), dict) else {}
            base = answer_links.get("base") or (f"{self._site_url}/wiki" if self._site_url else None)
            if base:
                attachment["_links"] = {**links, "base": base}
        version = attachment.get("version")
        version = version.get("number") if isinstance(version, dict) else None
        log.info("Uploaded %r to page %s (attachment %s, version %s).", name, page_id, attachment.get("id"), version)
        return attachment
