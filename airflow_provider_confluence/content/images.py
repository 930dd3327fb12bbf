"""Images shown inside a page: what a DAG gives (a file, bytes, base64 text, a figure) turned into attachments.

A Markdown body shows an image with ``![Daily volume](chart.png)``. :func:`prepare_images` finds the page's
images, reads each one's bytes before anything is sent, and names the attachment each Markdown target shows;
:func:`~airflow_provider_confluence.content.storage_format.markdown_to_storage` then writes Confluence's
attachment-image markup there. A source is one of:

* ``bytes`` (or ``bytearray``/``memoryview``): the image itself;
* text: base64 of an image (what an upstream task returns, since XCom carries text), or a ``data:image/...;base64,``
  URI; any other text is a path relative to ``image_dir``;
* a ``pathlib.Path`` (or any ``os.PathLike``): a file relative to ``image_dir``;
* a figure: any object with a Matplotlib-like ``savefig`` method, saved as PNG (Matplotlib is never imported here);
* a callable without arguments that returns one of the above, called when the task runs (a figure drawn then,
  not while the DAG file is parsed).

Files are read only from inside ``image_dir`` (``..`` and symlinks out of it are refused; see
:func:`~airflow_provider_confluence.config.local_files.read_under`).

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_confluence.client.attachments import content_sha256, guess_media_type
from airflow_provider_confluence.config.local_files import read_under
from airflow_provider_confluence.content.storage_format import parse_markdown
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = [
    "ImageFile",
    "PreparedImages",
    "figure_png",
    "figure_png_base64",
    "image_bytes",
    "markdown_image_targets",
    "prepare_images",
    "sniff_media_type",
]

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
_DATA_URI = re.compile(r"^data:(image/[a-zA-Z0-9.+\-]+);base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageFile:
    """One image to attach: its attachment name, its bytes and their media type."""

    filename: str
    data: bytes = field(repr=False)
    media_type: str

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of :attr:`data` (what the attachment's comment records)."""
        return content_sha256(self.data)


@dataclass(frozen=True)
class PreparedImages:
    """What :func:`prepare_images` found: the files to attach, and each Markdown target's attachment name."""

    files: tuple[ImageFile, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.files)


def sniff_media_type(data: bytes) -> str | None:
    """The media type of PNG, JPEG, GIF, WebP or SVG bytes, from their first bytes; None for anything else."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "image/svg+xml"
    return None


def figure_png(figure: Any, **savefig_kwargs: Any) -> bytes:
    """A figure (anything with a Matplotlib-like ``savefig``) as PNG bytes.

    The PNG carries no "Software" entry, so the same figure gives the same bytes after a Matplotlib upgrade too.

    :param savefig_kwargs: passed on to ``savefig`` (such as ``dpi=150`` or ``bbox_inches="tight"``).
    """
    if not callable(getattr(figure, "savefig", None)):
        raise ConfluenceConfigError(
            f"A {type(figure).__name__} is not a figure: it has no savefig method. Pass a Matplotlib figure, or the "
            "image's bytes."
        )
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", metadata={"Software": None}, **savefig_kwargs)
    except TypeError:  # a savefig without Matplotlib's metadata argument
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", **savefig_kwargs)
    return buffer.getvalue()


def figure_png_base64(figure: Any, **savefig_kwargs: Any) -> str:
    """:func:`figure_png` as base64 text: what a task returns to hand a chart to a later task through XCom."""
    return base64.b64encode(figure_png(figure, **savefig_kwargs)).decode("ascii")


def _from_base64(text: str) -> bytes | None:
    """The image a base64 text (or a ``data:image/...;base64,`` URI) holds; None when it holds no image."""
    uri = _DATA_URI.match(text)
    payload = re.sub(r"\s+", "", text[uri.end() :] if uri else text)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        if uri:
            raise ConfluenceConfigError(
                "A data: URI of an image holds invalid base64: nothing was published."
            ) from None
        return None
    return data if uri or sniff_media_type(data) else None


def image_bytes(
    source: object, *, name: str, image_dir: str | None = None, attachment_roots: str | None = None
) -> bytes:
    """The bytes of one image source (see the module's description for what a source may be).

    :param name: the image's name, for error messages.
    :param image_dir: the folder that paths are relative to; without it, a path is refused.
    :param attachment_roots: ``[confluence] attachment_roots``; ``image_dir`` must lie under one of them when set.
    :raises ConfluenceConfigError: an unusable source, or a file that cannot be read; nothing was sent then.
    """
    if callable(source) and not hasattr(source, "savefig"):
        drawn: Callable[[], object] = source
        source = drawn()
        if callable(source) and not hasattr(source, "savefig"):
            raise ConfluenceConfigError(f"The function given for image {name!r} returned another function.")
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not source:
            raise ConfluenceConfigError(f"Image {name!r} is empty (0 bytes): nothing was published.")
        return bytes(source)
    if hasattr(source, "savefig"):
        return figure_png(source)
    if isinstance(source, str):
        decoded = _from_base64(source.strip())
        if decoded is not None:
            return decoded
    if isinstance(source, (str, os.PathLike)):
        if image_dir is None or not str(image_dir).strip():
            raise ConfluenceConfigError(
                f"Image {name!r} is given as {str(source)[:80]!r}, which is neither base64 of an image nor readable "
                "without image_dir: give image_dir (the folder the image files are in), or pass the bytes, base64 "
                "text or a figure."
            )
        return read_under(str(image_dir), os.fspath(source), attachment_roots)
    raise ConfluenceConfigError(
        f"Image {name!r} is a {type(source).__name__}: give bytes, base64 text, a file path relative to image_dir, "
        "a figure (an object with savefig), or a function returning one of these."
    )


def _relative_target(target: str) -> bool:
    """True for an image target that names a file next to the Markdown, not a URL or a site path."""
    return bool(target) and not _SCHEME.match(target) and not target.startswith(("/", "#", "\\"))


def _normalized(target: str) -> str:
    return posixpath.normpath(target.strip()) if target.strip() else ""


def markdown_image_targets(markdown: str) -> list[str]:
    """The relative image targets of a Markdown text, in order, once each (``chart.png`` of ``![x](chart.png)``;
    ``https://...`` images are not included)."""
    from urllib.parse import unquote

    found: dict[str, None] = {}
    stack = list(parse_markdown(markdown))
    while stack:
        token = stack.pop(0)
        stack[:0] = list(token.children or [])
        if token.type == "image":
            target = unquote(str(token.attrGet("src") or ""))
            if _relative_target(target):
                found[target] = None
    return list(found)


def _attachment_name(key: str) -> str:
    name = posixpath.basename(key.replace("\\", "/"))
    if not name or any(ord(ch) < 32 for ch in name):
        raise ConfluenceConfigError(f"The image name {key!r} gives no usable file name: name it like 'chart.png'.")
    return name


def prepare_images(
    images: Mapping[str, object] | None,
    *,
    markdown: str | None = None,
    image_dir: str | None = None,
    attachment_roots: str | None = None,
    markdown_dir: str = "",
) -> PreparedImages:
    """Read every image of a page before anything is sent.

    :param images: image name (as the Markdown writes it: ``chart.png``) -> source. Each becomes an attachment
        named after the name's last part.
    :param markdown: the page's Markdown body: its relative image targets are matched to ``images`` and, when
        not there, read from ``image_dir``.
    :param image_dir: the folder that file paths and unmatched Markdown targets are relative to.
    :param markdown_dir: where the Markdown file lies inside ``image_dir`` (a mirror of a folder tree passes the
        tree's root as ``image_dir`` and ``reports/2026`` here): its unmatched targets are read relative to it, and
        still never from outside ``image_dir``.
    :returns: nothing when neither ``images`` nor ``image_dir`` is given (the body is converted as before).
    :raises ConfluenceConfigError: a Markdown image that nothing provides, two images with one attachment name,
        or an unusable source; nothing was sent then.
    """
    if images is not None and not isinstance(images, Mapping):
        raise ConfluenceConfigError(
            f"images must be a mapping of image name -> source, such as {{'chart.png': figure}}, not "
            f"{type(images).__name__}."
        )
    given = dict(images or {})
    if not given and not (image_dir and str(image_dir).strip()):
        return PreparedImages()
    by_key = {_normalized(str(key)): (str(key), source) for key, source in given.items()}
    names: dict[str, str] = {}
    missing: list[str] = []
    for target in markdown_image_targets(markdown) if isinstance(markdown, str) else []:
        key = _normalized(target)
        if key not in by_key:
            if image_dir is None:
                missing.append(target)
                continue
            by_key[key] = (target, posixpath.join(markdown_dir, target) if markdown_dir else target)  # a file
        names[target] = _attachment_name(by_key[key][0])
    if missing:
        raise ConfluenceConfigError(
            f"The Markdown shows {', '.join(map(repr, missing))}, which images does not provide: nothing was "
            "published. Add them to images, or give image_dir, the folder they are in."
        )
    files: dict[str, ImageFile] = {}
    for key, source in by_key.values():
        filename = _attachment_name(key)
        data = image_bytes(source, name=key, image_dir=image_dir, attachment_roots=attachment_roots)
        if filename in files and files[filename].data != data:
            raise ConfluenceConfigError(
                f"Two different images would both be attached as {filename!r}: rename one of them (attachments of a "
                "page are named by their last path part)."
            )
        files[filename] = ImageFile(filename, data, sniff_media_type(data) or guess_media_type(filename))
    return PreparedImages(tuple(files.values()), names)
