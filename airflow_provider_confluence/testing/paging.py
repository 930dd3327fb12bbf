"""Cursor pagination shared by the v2 lists and the v1 CQL search.

A cursor is opaque to clients: URL-safe base64 of ``"<offset>:<hash>"`` where the hash covers the method, the
path, every query parameter but ``cursor`` and ``limit``, and a per-emulator secret. A tampered cursor, or one
taken from another list or another emulator, is refused. v2 lists put the ``next`` link relative to the site root
(``/wiki/api/v2/...``, https://developer.atlassian.com/cloud/confluence/rest/v2/intro/) with the cursor never the last parameter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from ._http import ApiRequest, Reply, ReplyError, bad_param

DEFAULT_LIMIT = 25
MAX_LIMIT = 250


class Cursors:
    """Signs and reads the cursors of one emulator.

    :param secret: bytes mixed into every cursor hash.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, req: ApiRequest) -> str:
        """The hash binding a cursor to this request's endpoint and filters."""
        filters = sorted((name, value) for name, value in req.pairs if name not in ("cursor", "limit"))
        material = json.dumps([req.method, req.path, filters]).encode()
        return hmac.new(self._secret, material, hashlib.sha256).hexdigest()[:16]

    @staticmethod
    def encode(offset: int, signature: str) -> str:
        """The cursor of ``offset`` for requests with this signature."""
        return base64.urlsafe_b64encode(f"{offset}:{signature}".encode()).decode().rstrip("=")

    @staticmethod
    def offset(req: ApiRequest, signature: str, refuse: Callable[[str], ReplyError]) -> int | None:
        """The offset of the request's cursor; None without one; raise ``refuse(message)`` for a bad one."""
        cursor = req.one("cursor")
        if cursor is None:
            return None
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
            offset, given = text.split(":")
            if offset.isdigit() and hmac.compare_digest(given, signature):
                return int(offset)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise refuse("Invalid cursor: use the next link of the previous page unchanged")


def v2_limit(req: ApiRequest, default: int = DEFAULT_LIMIT) -> int:
    """The ``limit`` of a v2 list: ``default`` when absent, capped at 250; 400 when not a positive integer."""
    raw = req.one("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise bad_param(f"Provided value {{{raw}}} for 'limit' is not the correct type. Expected type is int") from None
    if limit < 1:
        raise bad_param(f"'limit' must be between 1 and {MAX_LIMIT}, got {limit}")
    return min(limit, MAX_LIMIT)


def paginate_v2(
    req: ApiRequest,
    items: list[Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    cursors: Cursors,
    base: str,
    lock: threading.RLock,
    default_limit: int = DEFAULT_LIMIT,
) -> Reply:
    """Answer one page of a v2 list: ``{"results", "_links": {"next"?, "base"}}`` and a ``Link`` header.

    :param req: the request (its ``cursor`` and ``limit`` choose the page).
    :param items: every matching item, in order.
    :param render: turns an item into its JSON shape (called under ``lock``).
    :param cursors: the emulator's cursor signer.
    :param base: the site's wiki URL (``_links.base``).
    :param lock: the emulator's lock.
    :param default_limit: the endpoint's default page size.
    """
    limit = v2_limit(req, default_limit)
    signature = cursors.signature(req)
    offset = cursors.offset(req, signature, bad_param) or 0
    links: dict[str, str] = {}
    headers = {"Link": f'<{base}>; rel="base"'}
    if offset + limit < len(items):
        rest = [(name, value) for name, value in req.pairs if name not in ("cursor", "limit")]
        query = [("cursor", cursors.encode(offset + limit, signature)), ("limit", str(limit)), *rest]
        links["next"] = f"{req.path}?{urlencode(query)}"
        headers["Link"] = f'<{links["next"]}>; rel="next", ' + headers["Link"]
    links["base"] = base
    with lock:
        results = [render(item) for item in items[offset : offset + limit]]
    return Reply(200, {"results": results, "_links": links}, headers)
