"""Relative links between mirrored Markdown files, turned into links to the mirrored pages.

A link ``<a href="...">`` in the storage format of a page (as :func:`.storage_format.markdown_to_storage` writes
it) whose target is relative (no scheme, no leading ``/``) and names another file or directory of the mirror
(``setup.md``, ``../guide/``, ``guide/index.md``, with an optional ``#fragment``) becomes Confluence's page link,
by title (titles are unique in a space, and the link follows the page when it is moved)::

    <ac:link ac:anchor="fragment"><ri:page ri:content-title="Setup" /><ac:link-body>text</ac:link-body></ac:link>

A fragment is kept as the anchor as written: Confluence names a heading's anchor after its text, which GitHub's
slugs do not always match. A relative ``.md`` link whose target is not part of the mirror is left as it was and
reported; links to other files (images, PDFs) and to other sites are left alone.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Mapping
from urllib.parse import unquote

from airflow_provider_confluence.content.storage_format import escape_text

__all__ = ["page_link", "resolve_links", "target_path"]

_ANCHOR = re.compile(r'<a href="([^"]*)"((?: [a-z]+="[^"]*")*)>(.*?)</a>', re.DOTALL)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:")
_INDEX_NAMES = ("index.md", "README.md")


def target_path(href: str, source: str, paths: Mapping[str, str]) -> tuple[str | None, str | None, bool]:
    """``(path of the mirrored page, fragment, is a Markdown link)`` for a link ``href`` in the file ``source``.

    The path is None when the link is not relative or names nothing in ``paths`` (``{path: title}``, directory
    paths ending in ``/``).
    """
    if not href or href.startswith(("/", "#", "?")) or _SCHEME.match(href):
        return None, None, False
    target, _, fragment = href.partition("#")
    target = unquote(target.partition("?")[0])
    is_markdown = target.endswith(".md") or target.endswith("/")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
    if joined.startswith("../") or joined == "..":
        return None, fragment or None, is_markdown
    candidates = [joined, f"{joined}/"]
    directory, name = posixpath.split(joined)
    if name in _INDEX_NAMES:
        candidates.append(f"{directory}/" if directory else "")
    found = next((c for c in candidates if c and c in paths), None)  # a README.md beside an index.md is a page
    return found, fragment or None, is_markdown


def page_link(title: str, inner: str, fragment: str | None = None) -> str:
    """Confluence's link to the page titled ``title`` (same space), showing ``inner`` (storage format)."""
    anchor = f' ac:anchor="{escape_text(fragment)}"' if fragment else ""
    return f'<ac:link{anchor}><ri:page ri:content-title="{escape_text(title)}" /><ac:link-body>{inner}</ac:link-body></ac:link>'


def resolve_links(storage: str, source: str, titles: Mapping[str, str]) -> tuple[str, list[str]]:
    """Rewrite the links of ``storage`` (the body of the file ``source``) that name mirrored files.

    :param titles: ``{path: title}`` of every page of the mirror.
    :returns: the new body, and the relative Markdown links that name nothing in the mirror (as written).
    """
    missing: list[str] = []

    def _replace(match: re.Match[str]) -> str:
        href = html.unescape(match.group(1))
        path, fragment, is_markdown = target_path(href, source, titles)
        if path is None:
            if is_markdown:
                missing.append(href)
            return match.group(0)
        return page_link(titles[path], match.group(3), fragment)

    return _ANCHOR.sub(_replace, storage), missing
