"""A directory of Markdown files as a plan of Confluence pages: pure, no network.

The rules (one of each, so that a page's title never depends on the order files are read):

* Every ``*.md`` file is a page. A directory that holds Markdown (at any depth) is a page too, the parent of its
  files and subdirectories; its ``index.md`` (or, when there is none, its ``README.md``) is that page's body and
  is not a page of its own. A directory without either gets a listing of its child pages (Confluence's
  ``children`` macro). The top directory is not a page: its files and subdirectories go under the parent the
  mirror is given, and its own ``index.md``/``README.md`` are ordinary pages.
* A page's title is the ``title:`` of the file's front matter (a ``---`` block at the very top), else its first
  level-1 ATX heading (``# Title``, outside code blocks; the heading is then dropped from the body, since
  Confluence shows the title above it), else the file name without ``.md`` (a directory: its name).
* Files and directories whose names start with ``.`` or ``_`` are skipped, and so are symbolic links (nothing
  outside the directory is ever read). Entries are taken in name order.
* Relative links between the files (``[see](../setup.md#install)``, ``[api](api/)``) become links to the
  mirrored pages (see :mod:`.mirror_links`); other links are kept as they are.

Titles are unique within a Confluence space, so two entries with the same title are refused here, before
anything is sent. Images are not handled here: a relative image stays an ``<img>`` of its path. Each page keeps
its ``source`` file and its ``markdown``, and the plan its ``root``, for a step that uploads a page's images as
attachments and renders its body with them (the Markdown images of ``content/images.py``) before
:mod:`.mirror` writes it.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_confluence.content.mirror_links import resolve_links
from airflow_provider_confluence.content.storage_format import markdown_to_storage
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = ["LISTING_BODY", "MirrorPage", "MirrorPlan", "build_plan", "split_front_matter", "title_of"]

#: The body of a directory that has no ``index.md`` nor ``README.md``: Confluence's list of child pages.
LISTING_BODY = '<ac:structured-macro ac:name="children" />'
INDEX_NAMES = ("index.md", "README.md")
#: The most pages one mirror writes (a guard against pointing it at the wrong directory).
MAX_PAGES = 2000

_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TITLE_LINE = re.compile(r"^title[ \t]*:[ \t]*(.*?)[ \t]*$")


@dataclass(frozen=True)
class MirrorPage:
    """One page of the plan.

    :param path: its key: the file's path relative to the directory (``guide/setup.md``), or a directory's
        path followed by ``/`` (``guide/``).
    :param title: its title.
    :param parent: the ``path`` of its parent page, or None for a page directly under the mirror's parent.
    :param body: its body in storage format, links resolved.
    :param source: the Markdown file it comes from (relative to the directory), or None for a listing page.
    :param markdown: that file's Markdown without its front matter (and without the heading that became the
        title): what a step that attaches the page's images reads (its relative targets are relative to
        ``source``'s folder in :attr:`MirrorPlan.root`).
    """

    path: str
    title: str
    parent: str | None
    body: str
    source: str | None = None
    markdown: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MirrorPlan:
    """The pages of a directory (``root``), parents before their children, and what could not be linked."""

    pages: tuple[MirrorPage, ...]
    unresolved_links: dict[str, list[str]] = field(default_factory=dict)
    root: str = ""

    def titles(self) -> dict[str, str]:
        """``{path: title}``."""
        return {page.path: page.title for page in self.pages}


@dataclass
class _Entry:
    path: str
    parent: str | None
    source: str | None
    markdown: str | None
    title: str


def split_front_matter(text: str) -> tuple[str | None, str]:
    """``(title from the front matter or None, the text without the front matter)``.

    Front matter is a block that starts with a line ``---`` at the very top and ends with a line ``---`` or
    ``...``; only its ``title:`` is read (quotes around the value are removed).
    """
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            title = None
            for line in lines[1:end]:
                match = _TITLE_LINE.match(line.rstrip("\r\n"))
                if match:
                    title = match.group(1).strip()
                    if len(title) >= 2 and title[0] == title[-1] and title[0] in "'\"":
                        title = title[1:-1].strip()
            return title or None, "".join(lines[end + 1 :])
    return None, text


def title_of(text: str, fallback: str) -> tuple[str, str]:
    """``(title, Markdown body)`` of a file by the rules of this module (front matter, first ``#`` heading, name)."""
    front_title, body = split_front_matter(text)
    if front_title:
        return front_title, body
    lines = body.splitlines(keepends=True)
    fence: str | None = None
    for number, line in enumerate(lines):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        heading = _H1.match(line.rstrip("\r\n"))
        if heading:
            return heading.group(1).strip(), "".join(lines[:number] + lines[number + 1 :])
    return fallback, body


def _read(file: Path, relative: str) -> str:
    """The file's text; a symbolic link swapped in after the directory was listed is refused, not followed."""
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfluenceConfigError(f"{relative} could not be read ({exc.strerror}): nothing was sent.") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfluenceConfigError(f"{relative} is not UTF-8 text ({exc.reason}): save it as UTF-8.") from None


def _visible(entry: Path) -> bool:
    return not entry.name.startswith((".", "_")) and not entry.is_symlink()


def _walk(root: Path, directory: Path, parent: str | None, entries: list[_Entry]) -> bool:
    """Add the pages of ``directory`` (its own page first); False when it holds no Markdown at all."""
    children = sorted((e for e in directory.iterdir() if _visible(e)), key=lambda e: e.name)
    files = [e for e in children if e.is_file() and e.name.endswith(".md")]
    index = None if directory == root else next((f for n in INDEX_NAMES for f in files if f.name == n), None)
    own: _Entry | None = None
    rel_dir = directory.relative_to(root).as_posix()
    if directory != root:
        own = _Entry(f"{rel_dir}/", parent, None, None, directory.name)
        if index is not None:
            source = index.relative_to(root).as_posix()
            own.source, own.markdown = source, _read(index, source)
            own.title, own.markdown = title_of(own.markdown, directory.name)
        entries.append(own)
    start = len(entries)
    below = own.path if own else None
    for file in files:
        if file == index:
            continue
        source = file.relative_to(root).as_posix()
        title, markdown = title_of(_read(file, source), file.name[: -len(".md")])
        entries.append(_Entry(source, below, source, markdown, title))
    for sub in (e for e in children if e.is_dir()):
        _walk(root, sub, below, entries)
    if own is not None and own.source is None and len(entries) == start:
        entries.pop()  # a directory without Markdown is not mirrored
        return False
    return True


def _check_titles(entries: list[_Entry]) -> None:
    seen: dict[str, str] = {}
    clashes: list[str] = []
    for entry in entries:
        if not entry.title.strip():
            raise ConfluenceConfigError(f"{entry.source or entry.path} has an empty title: give it a title.")
        if len(entry.title) > 255:
            raise ConfluenceConfigError(f"The title of {entry.source or entry.path} is over 255 characters.")
        first = seen.setdefault(entry.title, entry.path)
        if first != entry.path:
            clashes.append(f"{entry.title!r} ({first} and {entry.path})")
    if clashes:
        raise ConfluenceConfigError(
            "Confluence needs page titles that are unique in a space, and these entries share a title: "
            + "; ".join(clashes)
            + ". Give them different titles (front matter 'title:' or the first '# heading'). Nothing was sent."
        )


def build_plan(directory: str | Path) -> MirrorPlan:
    """The pages that mirror ``directory``, parents first, by the rules of this module.

    :raises ConfluenceConfigError: when the directory is missing or has no Markdown, two entries share a title,
        a title is empty or too long, or a file is not UTF-8.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfluenceConfigError(f"{str(directory)!r} is not a directory: give the directory of Markdown files.")
    entries: list[_Entry] = []
    _walk(root, root, None, entries)
    if not entries:
        raise ConfluenceConfigError(f"{str(directory)!r} holds no Markdown (*.md) files: nothing to mirror.")
    if len(entries) > MAX_PAGES:
        raise ConfluenceConfigError(f"{str(directory)!r} would make {len(entries)} pages, over {MAX_PAGES}.")
    _check_titles(entries)
    titles = {entry.path: entry.title for entry in entries}
    pages: list[MirrorPage] = []
    unresolved: dict[str, list[str]] = {}
    for entry in entries:
        if entry.markdown is None:
            body = LISTING_BODY
        else:
            body, missing = resolve_links(markdown_to_storage(entry.markdown), entry.source or "", titles)
            if missing:
                unresolved[entry.path] = missing
        pages.append(MirrorPage(entry.path, entry.title, entry.parent, body, entry.source, entry.markdown))
    return MirrorPlan(tuple(pages), unresolved, str(root))
