"""The ``images`` and ``image_dir`` arguments of the page-writing operators (a mixin).

Operators import this module at DAG-parse time: it imports nothing heavy, and reads no file until a task runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError

if TYPE_CHECKING:
    from airflow_provider_confluence.content.images import PreparedImages

#: The image arguments, templated: text values in ``images`` (base64 from XCom, file names) and ``image_dir``.
IMAGE_FIELDS: tuple[str, ...] = ("images", "image_dir")


class ImagesOperatorMixin:
    """``images`` (name -> source) and ``image_dir``: the images a page shows, uploaded as its attachments."""

    images: Mapping[str, Any] | None
    image_dir: str | None

    def set_images(self, images: Mapping[str, Any] | None, image_dir: str | None) -> None:
        """Check the arguments' shape (at DAG parse time) and keep them; nothing is read until the task runs."""
        if images is not None and not isinstance(images, Mapping) and not _is_xcom_arg(images):
            raise ConfluenceConfigError(
                f"images must be a mapping of image name -> source, such as {{'chart.png': chart_task()}}, not "
                f"{type(images).__name__}."
            )
        if isinstance(images, Mapping):
            bad = [key for key in images if not isinstance(key, str) or not key.strip()]
            if bad:
                raise ConfluenceConfigError(
                    f"images has names {bad!r}: name each image as the Markdown shows it, such as 'chart.png'."
                )
        self.images = images
        self.image_dir = image_dir

    def prepare_page_images(self, body: Any, representation: str) -> PreparedImages:
        """Every image of the page, read now, before any request (a missing file fails the task here)."""
        from airflow_provider_confluence.config.deployment import attachment_roots
        from airflow_provider_confluence.content.images import prepare_images

        image_dir = str(self.image_dir).strip() if self.image_dir is not None and str(self.image_dir).strip() else None
        if not self.images and image_dir is None:
            from airflow_provider_confluence.content.images import PreparedImages

            return PreparedImages()
        return prepare_images(
            self.images,
            markdown=body if representation == "markdown" and isinstance(body, str) else None,
            image_dir=image_dir,
            attachment_roots=attachment_roots() or None,
        )


def _is_xcom_arg(value: object) -> bool:
    """True for an upstream task's output (resolved to the mapping when the task runs)."""
    return type(value).__name__.endswith("XComArg") or hasattr(value, "resolve")
