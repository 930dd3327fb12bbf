"""Page attachments of the emulated site, and the multipart/form-data parser of the upload: no HTTP server.

Uploading a file whose name the page already has makes a new version of that attachment; any other name makes a
new attachment (ids ``att<number>``). The bytes are kept, so a test can read back what a DAG uploaded. An
attachment never changes its page's version. Objects are rendered both ways Confluence shows them: v2
``AttachmentBulk`` (the list) and the v1 content object (the answer of the upload).
"""

from __future__ import annotations

import mimetypes
import threading
import uuid
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Any
from urllib.parse import quote

from ._http import iso, v1_bad_request
from .clock import Clock

#: Confluence Cloud's default maximum attachment size
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024


@dataclass
class Attachment:
    """A stored attachment and its current version."""

    id: int
    page_id: int
    title: str
    media_type: str
    data: bytes
    comment: str
    created_at: float
    version: int = 1
    version_at: float = 0.0
    minor_edit: bool = False
    file_id: str = ""
    status: str = "current"

    def download(self) -> str:
        """The download link, relative to the site's wiki URL."""
        millis = int(self.version_at * 1000)
        return (
            f"/download/attachments/{self.page_id}/{quote(self.title)}"
            f"?version={self.version}&modificationDate={millis}&cacheVersion=1&api=v2"
        )

    def webui(self) -> str:
        """The web UI link (the page's attachment list previewing this one), relative to the wiki URL."""
        preview = quote(f"/{self.page_id}/{self.id}/{self.title}", safe="")
        return f"/pages/viewpageattachments.action?pageId={self.page_id}&preview={preview}"


@dataclass
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(content_type: str | None, body: bytes) -> list[Part]:
    """Split a ``multipart/form-data`` body into its parts; raise a v1 400 when it is not one."""
    header = HeaderParser().parsestr(f"Content-Type: {content_type or ''}\r\n\r\n")
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise v1_bad_request("The request must be multipart/form-data with a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    pieces = (b"\r\n" + body).split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise v1_bad_request("The multipart/form-data body is malformed (no closing boundary)")
    parts: list[Part] = []
    for piece in pieces[1:-1]:
        head, separator, data = piece.partition(b"\r\n\r\n")
        if not separator:
            raise v1_bad_request("The multipart/form-data body is malformed (a part has no headers)")
        headers = HeaderParser().parsestr(head.lstrip(b"\r\n").decode("utf-8", "replace") + "\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise v1_bad_request("A multipart part has no Content-Disposition name")
        filename = headers.get_filename()
        part_type = headers.get("content-type")
        parts.append(Part(name, filename, part_type.split(";")[0].strip().lower() if part_type else None, data))
    return parts


def media_type_of(filename: str, declared: str | None) -> str:
    """The media type Confluence records: the declared one unless generic, else guessed from the name."""
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class AttachmentStore:
    """The attachments of every page.

    :param clock: the emulator's clock.
    :param lock: the emulator's one lock.
    :param base: the site's wiki URL (``https://site/wiki``).
    """

    def __init__(self, *, clock: Clock, lock: threading.RLock, base: str) -> None:
        self._clock = clock
        self._lock = lock
        self.base = base
        self._by_page: dict[int, list[Attachment]] = {}
        self._next_id = 2359297

    def of(self, page_id: int) -> list[Attachment]:
        """A page's attachments, oldest first."""
        with self._lock:
            return list(self._by_page.get(page_id, []))

    def find(self, page_id: int, filename: str) -> Attachment | None:
        """The page's attachment with this file name, or None."""
        with self._lock:
            return next((att for att in self._by_page.get(page_id, []) if att.title == filename), None)

    def all(self) -> list[Attachment]:
        """Every attachment of every page, by id."""
        with self._lock:
            return sorted((att for atts in self._by_page.values() for att in atts), key=lambda att: att.id)

    def upload(
        self,
        page_id: int,
        *,
        filename: str,
        data: bytes,
        media_type: str | None,
        comment: str,
        minor_edit: bool,
        create_only: bool,
    ) -> Attachment:
        """Store a file: a new version when the page has one of this name (400 if ``create_only``), else new."""
        if "/" in filename or "\\" in filename or not filename.strip():
            raise v1_bad_request(f"Invalid attachment file name: {filename!r}")
        with self._lock:
            now = self._clock.now()
            existing = self.find(page_id, filename)
            if existing is not None and create_only:
                raise v1_bad_request(
                    f"Cannot add a new attachment with same file name as an existing attachment: {filename}"
                )
            if existing is not None:
                existing.data, existing.comment, existing.minor_edit = data, comment, minor_edit
                existing.media_type = media_type_of(filename, media_type)
                existing.version, existing.version_at = existing.version + 1, now
                return existing
            attachment = Attachment(
                self._next_id,
                page_id,
                filename,
                media_type_of(filename, media_type),
                data,
                comment,
                now,
                version_at=now,
                minor_edit=minor_edit,
                file_id=str(uuid.uuid4()),
            )
            self._next_id += 1
            self._by_page.setdefault(page_id, []).append(attachment)
            return attachment

    # ----------------------------------------------------------------- rendering
    def v2_json(self, att: Attachment, author_id: str) -> dict[str, Any]:
        """Render like v2 ``AttachmentBulk``."""
        return {
            "id": f"att{att.id}",
            "status": att.status,
            "title": att.title,
            "createdAt": iso(att.created_at),
            "pageId": str(att.page_id),
            "mediaType": att.media_type,
            "mediaTypeDescription": att.media_type,
            "comment": att.comment,
            "fileId": att.file_id,
            "fileSize": len(att.data),
            "webuiLink": att.webui(),
            "downloadLink": att.download(),
            "version": {
                "createdAt": iso(att.version_at),
                "message": att.comment,
                "number": att.version,
                "minorEdit": att.minor_edit,
                "authorId": author_id,
            },
            "_links": {"webui": att.webui(), "download": att.download()},
        }

    def v1_json(self, att: Attachment, page_title: str) -> dict[str, Any]:
        """Render like the v1 content object of type ``attachment`` (as the upload answers it)."""
        return {
            "id": f"att{att.id}",
            "type": "attachment",
            "status": att.status,
            "title": att.title,
            "version": {
                "when": iso(att.version_at),
                "number": att.version,
                "minorEdit": att.minor_edit,
                "message": att.comment,
            },
            "container": {"id": str(att.page_id), "type": "page", "status": "current", "title": page_title},
            "extensions": {
                "mediaType": att.media_type,
                "fileSize": len(att.data),
                "comment": att.comment,
                "mediaTypeDescription": att.media_type,
                "fileId": att.file_id,
                "collectionName": f"contentId-{att.page_id}",
            },
            "_links": {
                "webui": att.webui(),
                "download": att.download(),
                "self": f"{self.base}/rest/api/content/att{att.id}",
            },
        }
