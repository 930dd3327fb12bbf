"""Confluence storage-format markup that the converters write: escaped text, the code macro, attachment images.

Atlassian's "Confluence Storage Format" (https://confluence.atlassian.com/doc/confluence-storage-format-790796544.html)
describes the elements. Every function returns a well-formed XML fragment whatever its input.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import html
import re

__all__ = ["attachment_image", "code_macro", "escape_text", "strip_illegal"]

#: Characters XML 1.0 does not allow (its ``Char`` production, complemented).
_XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def strip_illegal(text: str) -> str:
    """``text`` without the characters XML 1.0 does not allow."""
    return _XML_ILLEGAL.sub("", text)


def escape_text(value: object) -> str:
    """Return ``value`` as XML text, safe in element content and in quoted attributes.

    ``&``, ``<``, ``>``, ``"`` and ``'`` are escaped, a carriage return becomes ``&#13;`` (so that XML parsers
    do not turn it into a line feed), and characters illegal in XML 1.0 are removed.

    :param value: any value; non-strings are converted with ``str()``.
    """
    text = value if isinstance(value, str) else str(value)
    text = html.escape(strip_illegal(text), quote=True)
    return text.replace("\r", "&#13;") if "\r" in text else text


def code_macro(code: str, language: str | None = None) -> str:
    """Return Confluence's code macro holding ``code`` as plain text.

    ``]]>`` in the code is split across two CDATA sections, line endings become ``\\n`` and characters illegal
    in XML 1.0 are removed; every other character arrives unchanged.

    :param code: the code block's text.
    :param language: the macro's ``language`` parameter (``python``, ``sql``...); None or empty for none.
    """
    code = strip_illegal(code).replace("\r\n", "\n").replace("\r", "\n")
    parts = ['<ac:structured-macro ac:name="code">']
    if language:
        parts.append(f'<ac:parameter ac:name="language">{escape_text(language)}</ac:parameter>')
    parts.append(f"<ac:plain-text-body><![CDATA[{code.replace(']]>', ']]]]><![CDATA[>')}]]></ac:plain-text-body>")
    parts.append("</ac:structured-macro>")
    return "".join(parts)


def attachment_image(filename: str, alt: str = "", title: str | None = None) -> str:
    """Confluence's markup of an image attached to the page itself:
    ``<ac:image ac:alt="..."><ri:attachment ri:filename="..." /></ac:image>`` (the "Images" section of Atlassian's
    "Confluence Storage Format", https://confluence.atlassian.com/doc/confluence-storage-format-790796544.html).

    :param filename: the attachment's file name on the page.
    :param alt: the alternative text (omitted when empty).
    :param title: the image's tooltip (omitted when None or empty).
    """
    attributes = f' ac:alt="{escape_text(alt)}"' if alt else ""
    attributes += f' ac:title="{escape_text(title)}"' if title else ""
    return f'<ac:image{attributes}><ri:attachment ri:filename="{escape_text(filename)}" /></ac:image>'
