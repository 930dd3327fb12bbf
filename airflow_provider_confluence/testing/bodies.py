"""Page bodies: the write shapes Confluence v2 accepts, storage-format checks, and the read representations.

The storage format is XHTML: a body must be a well-formed XML fragment once HTML named entities (``&nbsp;``)
are replaced, with the ``ac:``/``ri:``/``at:`` prefixes Confluence macros use. Conversions between storage and
``atlas_doc_format`` are rough (text only): enough for a client to see that it asked for a format and got it.
"""

from __future__ import annotations

import html
import html.entities
import json
import re
from typing import Any
from xml.etree import ElementTree

from ._http import bad_request

REPRESENTATIONS = ("storage", "atlas_doc_format", "wiki")
#: ``body-format`` values of GET /pages/{id}; list endpoints accept only the first two
READ_FORMATS = ("storage", "atlas_doc_format", "view", "export_view", "anonymous_export_view", "styled_view", "editor")
_NAMESPACES = (
    'xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier" '
    'xmlns:at="http://atlassian.com/template"'
)
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})


def _numeric_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _XML_ENTITIES or name not in html.entities.name2codepoint:
        return match.group(0)
    return f"&#{html.entities.name2codepoint[name]};"


def parse_storage(value: str) -> ElementTree.Element:
    """Parse a storage-format fragment under a synthetic root; raise ``ElementTree.ParseError`` if malformed."""
    return ElementTree.fromstring(f"<root {_NAMESPACES}>{_ENTITY.sub(_numeric_entity, value)}</root>")


def attachment_image_names(value: str) -> list[str]:
    """The file names that a storage body's ``<ac:image><ri:attachment ri:filename="..."/></ac:image>`` show, in
    order (images of another page's attachment, with an ``ri:page`` inside, and ``ri:url`` images are left out)."""
    ac, ri = "{http://atlassian.com/content}", "{http://atlassian.com/resource/identifier}"
    names: list[str] = []
    for image in parse_storage(value).iter(f"{ac}image"):
        attachment = image.find(f"{ri}attachment")
        if attachment is not None and attachment.find(f"{ri}page") is None:
            names.append(attachment.get(f"{ri}filename", ""))
    return names


def check_storage(value: str) -> None:
    """Raise a 400 v2 error when ``value`` is not a well-formed storage-format (XHTML) fragment."""
    try:
        parse_storage(value)
    except ElementTree.ParseError as exc:
        raise bad_request(f"The storage format of the body is invalid: Error parsing xhtml: {exc}") from None


def normalize_body(body: Any) -> tuple[str, str]:
    """Validate a create/update ``body`` and return ``(representation, value)`` as stored.

    Accepts both write shapes of the spec: ``{"representation", "value"}`` and ``{"storage": {...}}``.
    ``wiki`` markup is stored as storage format (Confluence converts it on write). None means an empty page.
    """
    if body is None:
        return "storage", ""
    if not isinstance(body, dict):
        raise bad_request("body must be an object with representation and value")
    if "representation" in body or "value" in body:
        representation, value = body.get("representation"), body.get("value")
    else:
        given = [name for name in REPRESENTATIONS if name in body]
        if len(given) != 1 or not isinstance(body[given[0]], dict):
            raise bad_request("body must hold exactly one representation (storage, atlas_doc_format or wiki)")
        representation = body[given[0]].get("representation", given[0])
        value = body[given[0]].get("value")
    if representation not in REPRESENTATIONS:
        raise bad_request(f"Unsupported body representation: {representation}")
    if not isinstance(value, str):
        raise bad_request("body.value must be a string")
    if representation == "storage":
        check_storage(value)
        return "storage", value
    if representation == "wiki":
        return "storage", "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in value.splitlines() if line)
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("type") != "doc":
        raise bad_request("The atlas_doc_format body is invalid: it must be a JSON document of type doc")
    return "atlas_doc_format", value


def _storage_text(value: str) -> str:
    try:
        return "".join(parse_storage(value).itertext())
    except ElementTree.ParseError:
        return value


def _adf_text(node: Any) -> str:
    if isinstance(node, dict):
        own = node.get("text") if node.get("type") == "text" else ""
        return str(own or "") + "".join(_adf_text(child) for child in node.get("content", []) or [])
    return ""


def plain_text(representation: str, value: str) -> str:
    """The text of a stored body, without markup (what a search looks into)."""
    if representation == "atlas_doc_format":
        try:
            return _adf_text(json.loads(value))
        except ValueError:
            return value
    return _storage_text(value)


def render_body(representation: str, value: str, body_format: str) -> dict[str, dict[str, str]]:
    """Return the ``body`` field of a page in ``body_format``: ``{body_format: {"representation", "value"}}``."""
    if body_format == representation:
        out = value
    elif body_format == "atlas_doc_format":
        paragraph = {"type": "paragraph", "content": [{"type": "text", "text": _storage_text(value)}]}
        out = json.dumps({"type": "doc", "version": 1, "content": [paragraph]})
    elif representation == "atlas_doc_format":
        out = f"<p>{html.escape(_adf_text(json.loads(value)), quote=False)}</p>"
    else:
        out = value
    return {body_format: {"representation": body_format, "value": out}}
