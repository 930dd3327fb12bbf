"""Pagination ``next`` links: where to find them in an answer, and how to join them onto the gateway.

v2 links are relative to the site root (``/wiki/api/v2/...``); v1 links are relative to ``_links.context``
(``/wiki``). Both are joined onto ``{api_url}/ex/confluence/{cloudId}`` and refused when they point anywhere else
(https://developer.atlassian.com/cloud/confluence/rest/v2/intro/). This module imports nothing from Airflow and does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_confluence.client.responses import _cap, _header, redact
from airflow_provider_confluence.config.endpoints import make_origin
from airflow_provider_confluence.exceptions import ConfluenceError

__all__ = ["V1_CONTEXT", "join_next_link", "join_v1_next_link", "next_link"]

#: The ``_links.context`` of every Confluence Cloud v1 answer: v1 ``next`` links are relative to it.
V1_CONTEXT = "/wiki"

_LINK_ITEM = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")


def join_next_link(gateway_base: str, next_link: str) -> str:
    """Join a pagination ``next`` link onto the gateway base (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/).

    ``next`` is relative to the site root (``/wiki/api/v2/...?cursor=...``) and is joined onto
    ``{api_url}/ex/confluence/{cloudId}``; the query string is kept verbatim (the cursor is not always last).
    An absolute URL is accepted only on the gateway's own scheme, host and port; another host is refused so
    that the access token is never sent elsewhere. ``/wiki/wiki`` is never produced.

    :param gateway_base: ``{api_url}/ex/confluence/{cloudId}`` (a trailing slash or ``/wiki`` is tolerated).
    :param next_link: the ``next`` link, relative (``/wiki/...``) or absolute.
    :raises ConfluenceError: for another host, an unsupported scheme, or a link that is not a path.
    """
    base = urlsplit(gateway_base.strip().rstrip("/"))
    if base.scheme.lower() not in ("http", "https") or not base.netloc:
        raise ConfluenceError(f"The gateway base {gateway_base!r} is not an http(s) URL; check api_url.")
    link = next_link.strip()
    if not link:
        raise ConfluenceError("Confluence sent an empty next link.")
    try:
        parts = urlsplit(link)
    except ValueError:  # "http://[" and the like: not a URL at all
        raise ConfluenceError(f"Cannot resolve the link {_cap(redact(link), 100)!r}: it is not a valid URL.") from None
    if parts.scheme or parts.netloc:
        try:
            there = make_origin(parts.scheme or base.scheme, parts.hostname, parts.port)
            same = there is not None and there == make_origin(base.scheme, base.hostname, base.port)
        except ValueError:
            same = False
        if not same:
            raise ConfluenceError(
                f"Refusing to follow a link to {_cap(redact(f'{parts.scheme}://{parts.netloc}'), 100)}: it is not "
                f"the Atlassian gateway ({base.scheme}://{base.netloc}), and the access token is only sent there."
            )
    elif not link.startswith("/"):
        raise ConfluenceError(
            f"Cannot resolve the link {_cap(redact(link), 100)!r}: expected a path starting with /wiki."
        )
    root = base.path.rstrip("/")
    if root.endswith("/wiki"):
        root = root[: -len("/wiki")]
    path = parts.path
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    while path == "/wiki/wiki" or path.startswith("/wiki/wiki/"):
        path = path[len("/wiki") :]
    if not (path == "/wiki" or path.startswith("/wiki/")):
        path = "/wiki" + (path if path.startswith("/") else "/" + path)
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ConfluenceError(
            f"Refusing to follow the link {_cap(redact(link), 100)!r}: dot segments could leave this site's "
            "gateway path."
        )
    return urlunsplit((base.scheme, base.netloc, root + path, parts.query, ""))


def next_link(body: Any, headers: Mapping[str, str] | None = None) -> str | None:
    """The ``next`` link of a page of results: ``_links.next`` in the body, else ``Link: <...>; rel="next"``.

    :param body: the parsed JSON body.
    :param headers: the response headers.
    :return: the link as sent (join it with :func:`join_next_link`), or None on the last page.
    """
    if isinstance(body, dict):
        links = body.get("_links")
        if isinstance(links, dict):
            value = links.get("next")
            if isinstance(value, str) and value.strip():
                return value.strip()
    header = _header(headers, "Link")
    if not header:
        return None
    for match in _LINK_ITEM.finditer(header):
        for param in match.group(2).split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                target = match.group(1).strip()
                if target:
                    return target
    return None


def join_v1_next_link(gateway_base: str, next_link: str) -> str:
    """Join the ``next`` link of a v1 listing (``/wiki/rest/api/search``) onto the gateway base.

    v1 links are relative to ``_links.context`` (``/wiki``), not to the site root as v2 links are: the
    ``next`` of a search is ``/rest/api/search?cql=...&cursor=...`` and must become
    ``{gateway}/wiki/rest/api/search?...``. The result is checked like :func:`join_next_link` (same host only,
    no dot segments, never ``/wiki/wiki``).

    :param gateway_base: ``{api_url}/ex/confluence/{cloudId}``.
    :param next_link: the v1 ``next`` link, relative to ``/wiki`` or absolute.
    :raises ConfluenceError: for another host, an unsupported scheme, or a link that is not a path.
    """
    link = next_link.strip()
    if link.startswith("/") and not link.startswith("//"):
        link = V1_CONTEXT + link
    return join_next_link(gateway_base, link)
