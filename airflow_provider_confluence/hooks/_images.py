"""The image-publishing methods of :class:`~.confluence.ConfluenceOAuthHook` (a mixin), JSON-able results.

They delegate to :mod:`airflow_provider_confluence.content.publish_images`, which orders the writes so that a
page never shows an attachment that was not uploaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.content.images import ImageFile
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.content.publish_images import (
    ImagesPublished,
    publish_with_images,
    update_with_images,
)
from airflow_provider_confluence.content.summaries import attachment_summary

if TYPE_CHECKING:
    from airflow_provider_confluence.client.confluence import ConfluenceClient
    from airflow_provider_confluence.config.connection import ConnectionSettings


class ImagesHookMixin:
    """Publish pages with images; the hook provides ``get_conn``, ``settings`` and ``resolve_space_id``."""

    if TYPE_CHECKING:

        @property
        def settings(self) -> ConnectionSettings: ...

        def get_conn(self) -> ConfluenceClient: ...

        def resolve_space_id(self, space_key: str | None = None, space_id: str | None = None) -> str: ...

    def publish_with_images(self, spec: PageSpec, images: Sequence[ImageFile] = ()) -> ImagesPublished:
        """Create or update a page (as :meth:`publish` does) whose body shows ``images``, uploaded first.

        :param spec: the page; its space by ``space_key`` or ``space_id``.
        :param images: the images (:func:`~airflow_provider_confluence.content.images.prepare_images`).
        """
        space_id = self.resolve_space_id(spec.space_key, spec.space_id)
        return publish_with_images(self.get_conn(), spec.with_changes(space_key=None, space_id=space_id), images)

    def update_page_with_images(
        self,
        spec: PageSpec,
        *,
        page_id: str,
        images: Sequence[ImageFile] = (),
        append_key: str | None = None,
        read: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Upload ``images`` to the page, then write its new version (as :meth:`update_page` does, ``read``
        included: the page just read, so that it is not read again).

        :returns: the page, and :meth:`image_summaries` of its image attachments.
        """
        page, attachments = update_with_images(
            self.get_conn(), spec, page_id=str(page_id), files=images, append_key=append_key, read=read
        )
        return page, self.image_summaries(attachments)

    def sync_attachment(
        self,
        page_id: str,
        *,
        filename: str,
        data: bytes,
        media_type: str | None = None,
        comment: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Upload ``data`` as the page's attachment ``filename`` unless it already holds these bytes (see
        :meth:`~airflow_provider_confluence.client.attachments.AttachmentsMixin.sync_attachment`); the attachment,
        and True when it was uploaded."""
        return self.get_conn().sync_attachment(
            str(page_id), filename=filename, data=data, media_type=media_type, comment=comment
        )

    def image_summaries(self, attachments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``{"id", "title", "page_id", "media_type", "file_size", "version", "url", "download_url", "uploaded"}``
        of each image attachment."""
        return [
            {**attachment_summary(att, self.settings.site_url), "uploaded": bool(att.get("uploaded"))}
            for att in attachments
        ]
