"""Publish a page together with the images it shows, in an order that never leaves a broken page.

Confluence attaches files to a page that exists, so the page comes first; the body that shows the images is
written only after every image is uploaded, so it never points at an attachment that is not there:

* a new page is created with a short placeholder body ("being published"), marked with an invisible anchor; the
  images are uploaded; then the real body is written as its next version. A try that fails in between leaves that
  placeholder, never a page with broken images, and the next try (whatever ``if_exists`` says) recognises the
  anchor and finishes the page;
* an existing page gets its images first, then its new body: until the body is written, the page shows its
  previous version, whose attachments are all there.

A re-run with the same bytes uploads nothing (each attachment's comment records the SHA-256 of its content; see
:meth:`~airflow_provider_confluence.client.attachments.AttachmentsMixin.sync_attachment`) and, with the same body,
writes no page version.

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.content.images import ImageFile
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.content.publish import publish, update_page_body
from airflow_provider_confluence.content.storage_format import escape_text
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluencePageExists

if TYPE_CHECKING:  # the operators import this module at DAG parse time: keep requests out of it
    from airflow_provider_confluence.client.confluence import ConfluenceClient

__all__ = [
    "ImagesPublished",
    "PENDING_ANCHOR",
    "attach_images",
    "pending_body",
    "publish_with_images",
    "update_with_images",
]

log = logging.getLogger(__name__)

#: The name of the invisible anchor that marks a page created here whose images are not all uploaded yet.
PENDING_ANCHOR = "airflow-images-pending"


def pending_body() -> str:
    """The placeholder body of a new page until its images are uploaded (storage format)."""
    anchor = (
        '<ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">'
        f"{escape_text(PENDING_ANCHOR)}</ac:parameter></ac:structured-macro>"
    )
    return f"<p>{anchor}This page is being published: its images are being uploaded.</p>"


def is_pending(page: dict[str, Any]) -> bool:
    """True when the page's storage body is the placeholder of :func:`pending_body` (a publish that did not end)."""
    value = ((page.get("body") or {}).get("storage") or {}).get("value")
    return isinstance(value, str) and f'<ac:parameter ac:name="">{PENDING_ANCHOR}</ac:parameter>' in value


@dataclass(frozen=True)
class ImagesPublished:
    """What :func:`publish_with_images` did: the page, ``action`` (``created``, ``updated``, ``unchanged`` or
    ``skipped``) and the page's attachments for the images, each with ``uploaded`` (False: already held them)."""

    page: dict[str, Any]
    action: str
    attachments: tuple[dict[str, Any], ...] = ()

    @property
    def uploaded(self) -> int:
        """How many images were uploaded (a new attachment or a new version of one)."""
        return sum(1 for attachment in self.attachments if attachment.get("uploaded"))

    @property
    def changed(self) -> bool:
        """True when a page, a page version or an attachment version was written."""
        return self.action in ("created", "updated") or self.uploaded > 0


def attach_images(client: ConfluenceClient, page_id: str, files: Sequence[ImageFile]) -> list[dict[str, Any]]:
    """Make the page's attachments hold ``files``: one listing of the page's attachments, then an upload of each
    file whose bytes the attachment of that name does not hold already.

    :returns: the attachment objects (v2 when unchanged, v1 when uploaded), each with ``uploaded`` set.
    """
    if not files:
        return []
    listed = {str(att.get("title")): att for att in client.list_attachments(page_id)}
    result: list[dict[str, Any]] = []
    for image in files:
        attachment, uploaded = client.sync_attachment(
            page_id,
            filename=image.filename,
            data=image.data,
            media_type=image.media_type,
            existing=listed.get(image.filename),
            listed=True,
        )
        result.append({**attachment, "uploaded": uploaded})
    log.info(
        "Page %s: %d of %d images uploaded, the others unchanged.",
        page_id,
        sum(1 for a in result if a["uploaded"]),
        len(result),
    )
    return result


def publish_with_images(client: ConfluenceClient, spec: PageSpec, files: Sequence[ImageFile]) -> ImagesPublished:
    """:func:`~airflow_provider_confluence.content.publish.publish` a page whose body shows ``files``.

    :param spec: the page (``space_id`` resolved), its body referring to the attachments by file name.
    :param files: the images (:attr:`~airflow_provider_confluence.content.images.PreparedImages.files`).
    :raises ConfluencePageExists: the page exists, was not left half-published, and ``if_exists`` is ``fail``
        (nothing is uploaded).
    """
    if not files:
        done = publish(client, spec)
        return ImagesPublished(done.page, done.action)
    if not spec.space_id or not spec.title:
        raise ConfluenceConfigError("Say where the page goes: give its title and space_id (resolve a key first).")
    existing = client.find_page(space_id=spec.space_id, title=spec.title, body_format="storage")
    created = False
    if existing is None:
        placeholder = spec.with_changes(body=pending_body(), representation="storage", labels=(), if_exists="fail")
        try:
            existing = publish(client, placeholder).page
            created = True
        except ConfluencePageExists:  # created by someone else between our look and our create
            existing = client.find_page(space_id=spec.space_id, title=spec.title, body_format="storage")
            if existing is None:
                raise
    if not created and spec.if_exists != "update" and not is_pending(existing):
        done = publish(client, spec)  # fail: raises naming the page; skip: keeps it as it is
        return ImagesPublished(done.page, done.action)
    page_id = str(existing["id"])
    attachments = attach_images(client, page_id, files)
    final = spec.with_changes(mode="replace", message=None, parent_id=None, parent_title=None)
    page = update_page_body(client, final, page_id=page_id, read=None if created else existing)  # read: its body
    if created:
        action = "created"
    else:
        action = "updated" if _version(page) != _version(existing) else "unchanged"
    return ImagesPublished(page, action, tuple(attachments))


def update_with_images(
    client: ConfluenceClient,
    spec: PageSpec,
    *,
    page_id: str,
    files: Sequence[ImageFile],
    append_key: str | None = None,
    read: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Upload the images a page's new version shows, then write that version
    (:func:`~airflow_provider_confluence.content.publish.update_page_body`; ``read``: the page as just read, which
    uploading attachments does not change).

    :returns: the page after the update, and its attachments for the images (each with ``uploaded``).
    """
    attachments = attach_images(client, str(page_id), files)
    page = update_page_body(client, spec, page_id=str(page_id), append_key=append_key, read=read)
    return page, attachments


def _version(page: dict[str, Any]) -> Any:
    return (page.get("version") or {}).get("number")
