"""Markdown and tables to Confluence storage format (XHTML), with everything user-supplied escaped.

Every string this module returns is a well-formed XML fragment whatever the input: text is XML-escaped and
characters that XML 1.0 forbids (most control characters, lone surrogates, U+FFFE, U+FFFF) are removed, so a
cell or a Markdown paragraph holding ``<script>``, ``&``, ``]]>`` or ``\\x00`` arrives on the page as text.

* ``markdown``: CommonMark plus GFM tables and strikethrough, through markdown-it-py with raw HTML shown as
  text; fenced and indented code blocks become Confluence's code macro; links keep only http, https, mailto
  and relative targets; an image whose target is named in ``attachments`` becomes Confluence's attachment-image
  markup (:func:`~airflow_provider_confluence.content.markup.attachment_image`).
* ``table``: a list of mappings, a pandas DataFrame (duck-typed) or a JSON string of a list of objects becomes
  a ``<table>`` with a header row.

This module imports nothing from Airflow, and neither markdown-it-py nor pandas at import time (operators
import it while DAGs are parsed).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from airflow_provider_confluence.content.markup import attachment_image, code_macro, escape_text, strip_illegal
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = [
    "BODY_REPRESENTATIONS",
    "attachment_image",
    "code_macro",
    "escape_text",
    "markdown_to_storage",
    "parse_markdown",
    "table_to_storage",
    "to_storage",
]

#: What ``representation`` may be: the three Confluence wire formats, then the two this module converts.
BODY_REPRESENTATIONS = ("storage", "atlas_doc_format", "wiki", "markdown", "table")
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_NATIVE_HINT = (
    "If the value comes from a template, set render_template_as_native_obj=True on the DAG or pass the "
    "upstream task's XComArg (task.output) instead of a '{{ ... }}' string."
)


# ---------------------------------------------------------------------------------------------- Markdown
def _safe_link(url: str) -> bool:
    """markdown-it's link check: only http, https, mailto and relative targets (``url`` is normalized)."""
    match = _SCHEME.match(url.strip().lower())
    return match is None or match.group(1) in _SAFE_SCHEMES


def _render_fence(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    info = token.info.strip() if token.info else ""
    language = info.split(maxsplit=1)[0] if info else None
    content = token.content[:-1] if token.content.endswith("\n") else token.content
    return code_macro(content, language) + "\n"


def _render_image(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    """An image whose target ``env["attachments"]`` names becomes the attachment-image markup; others as usual."""
    token = tokens[idx]
    names = env.get("attachments") if isinstance(env, Mapping) else None
    source = unquote(str(token.attrGet("src") or ""))
    filename = names.get(source) if names else None
    if filename is None:
        return str(self.image(tokens, idx, options, env))
    title = token.attrGet("title")
    return attachment_image(filename, self.renderInlineAsText(token.children, options, env), str(title or ""))


@functools.lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt  # a heavy import, kept out of DAG parsing

    md = MarkdownIt("commonmark", {"html": False, "xhtmlOut": True}).enable(["table", "strikethrough"])
    md.validateLink = _safe_link  # type: ignore[method-assign]
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_fence)
    md.add_render_rule("image", _render_image)
    return md


def parse_markdown(text: str) -> list[Any]:
    """The block tokens markdown-it makes of ``text`` with this module's settings (inline tokens as children)."""
    return list(_markdown().parse(strip_illegal(text)))


def markdown_to_storage(text: str, *, attachments: Mapping[str, str] | None = None) -> str:
    """Convert Markdown (CommonMark, GFM tables and strikethrough) to storage format.

    Raw HTML in the Markdown is shown as text, code blocks become the code macro, and links or images with
    another scheme than http, https or mailto (``javascript:``, ``data:``...) stay as plain text.

    :param text: the Markdown source.
    :param attachments: image targets as written in the Markdown (``chart.png`` in ``![Daily](chart.png)``) ->
        the file name of the page's attachment to show there (see :mod:`.images`).
    :raises ConfluenceConfigError: when ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise ConfluenceConfigError(
            f"A markdown body must be a string, not {type(text).__name__}: pass Markdown text, or use "
            "representation='table' for rows."
        )
    env = {"attachments": dict(attachments)} if attachments else {}
    return str(_markdown().render(strip_illegal(text), env))


# ------------------------------------------------------------------------------------------------ tables
def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except Exception:  # pandas.NA refuses bool(), so do arrays; Decimal('sNaN') refuses to compare
        return type(value).__name__ == "NAType"


def _cell_text(value: Any) -> str:
    """The text of a table cell (unescaped): '' for None/NaN, true/false, isoformat for dates, compact JSON."""
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool or kind.__name__ in ("bool_", "bool"):
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if _is_missing(value):
        return ""
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _not_tabular(rows: object, detail: str) -> ConfluenceConfigError:
    return ConfluenceConfigError(
        f"A table body must be a list of dicts, a pandas DataFrame or a JSON string of a list of objects; "
        f"got {type(rows).__name__} ({detail}). {_NATIVE_HINT}"
    )


def _records(given: object) -> tuple[list[Mapping[Any, Any]], list[Any] | None]:
    """``given`` as a list of mappings, and the columns the input itself declares (a DataFrame's)."""
    declared: list[Any] | None = None
    rows: Any = given
    if given is None:
        raise ConfluenceConfigError(
            "The table body is None: pass a non-empty list of dicts, a DataFrame or a JSON list of objects "
            "(for example the XComArg of the task that computes the rows)."
        )
    if isinstance(given, (str, bytes, bytearray)):
        text = given.decode("utf-8", errors="replace") if isinstance(given, (bytes, bytearray)) else given
        if not text.strip():
            raise ConfluenceConfigError(
                "The table body is an empty string: pass a non-empty list of dicts, a DataFrame or a JSON list."
            )
        try:
            rows = json.loads(text)
        except ValueError:
            raise _not_tabular(given, "not JSON") from None
        if not isinstance(rows, list):
            raise _not_tabular(given, f"JSON of a {type(rows).__name__}, not of a list of objects")
    elif hasattr(given, "to_dict") and hasattr(given, "columns") and not isinstance(given, Mapping):
        declared = list(given.columns)
        rows = given.to_dict(orient="records")
    elif isinstance(given, Mapping):
        raise _not_tabular(given, "a single mapping; wrap one row in a list: [row]")
    elif hasattr(given, "to_frame"):
        raise _not_tabular(given, "a pandas Series; pass series.to_frame() or series.reset_index()")
    elif isinstance(given, Iterable):
        rows = list(given)
    else:
        raise _not_tabular(given, "not a sequence of rows")
    if not rows:
        raise ConfluenceConfigError(
            f"The table body ({type(given).__name__}) has no rows: pass at least one row (a dict of column -> "
            "value), or skip the page when there is nothing to report."
        )
    bad = next((row for row in rows if not isinstance(row, Mapping)), None)
    if bad is not None:
        raise _not_tabular(given, f"a row is of type {type(bad).__name__}, not a dict")
    return rows, declared


def table_to_storage(rows: object, *, columns: Sequence[Any] | None = None) -> str:
    """Render rows as a storage-format ``<table>``: a header row of ``<th>``, then one ``<tr>`` of ``<td>`` per row.

    Cells: None and NaN are empty, booleans are ``true``/``false``, dates use ``isoformat()``, lists and dicts are
    compact JSON, anything else is ``str()``; all of it escaped.

    :param rows: a list of mappings, a pandas DataFrame (its index is not a column; ``reset_index()`` it to show
        it) or a JSON string of a list of objects.
    :param columns: the columns to show, in order (default: a DataFrame's columns, else every key in the order
        first seen). A row lacking a column gets an empty cell.
    :raises ConfluenceConfigError: for empty or non-tabular input, or no columns.
    """
    records, declared = _records(rows)
    if columns is not None:
        if isinstance(columns, (str, bytes)) or not isinstance(columns, Iterable):
            raise ConfluenceConfigError(
                f"columns must be a list of column names, not {type(columns).__name__}: e.g. columns=['a', 'b']."
            )
        keys = list(columns)
    elif declared is not None:
        keys = declared
    else:
        keys = list(dict.fromkeys(key for record in records for key in record))
    if not keys:
        raise ConfluenceConfigError(
            "The table has no columns: its rows are empty dicts or columns=[] was given; pass rows with keys."
        )
    out = ["<table><tbody><tr>"]
    out.extend(f"<th>{escape_text(_cell_text(key))}</th>" for key in keys)
    out.append("</tr>")
    missing = object()
    for record in records:  # one string per row: far fewer objects alive than one per cell
        out.append(
            "<tr>"
            + "".join(
                "<td></td>" if value is missing else f"<td>{escape_text(_cell_text(value))}</td>"
                for value in (record.get(key, missing) for key in keys)
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------- entry
def to_storage(body: object, representation: str, *, attachments: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Return ``(wire_representation, value)`` for a body given in any of :data:`BODY_REPRESENTATIONS`.

    ``markdown`` and ``table`` become ``("storage", xhtml)``; ``storage``, ``atlas_doc_format`` and ``wiki`` pass
    through unchanged.

    :param body: the page body: a string, or rows for ``table``.
    :param representation: one of :data:`BODY_REPRESENTATIONS`.
    :param attachments: for ``markdown``, the images shown from the page's attachments (see
        :func:`markdown_to_storage`).
    :raises ConfluenceConfigError: for an unknown representation or a body of the wrong type.
    """
    if representation == "markdown":
        return "storage", markdown_to_storage(body, attachments=attachments)  # type: ignore[arg-type]
    if representation == "table":
        return "storage", table_to_storage(body)
    if representation not in BODY_REPRESENTATIONS:
        raise ConfluenceConfigError(
            f"Unknown body representation {representation!r}: use one of {', '.join(BODY_REPRESENTATIONS)}."
        )
    if not isinstance(body, str):
        raise ConfluenceConfigError(
            f"A {representation} body must be a string, not {type(body).__name__}: for rows use "
            f"representation='table'. {_NATIVE_HINT}"
        )
    return representation, body
