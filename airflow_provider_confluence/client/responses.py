"""Pure functions over Confluence and gateway answers: error mapping, JSON bodies, rate-limit headers.

Next links are joined in :mod:`.next_links`.

Error bodies come in four shapes (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/), plus whatever a proxy puts in front of them::

    v2       {"errors": [{"status", "code", "title", "detail"}]}
    v1       {"statusCode", "message"}
    gateway  {"code", "message"}
    token    {"error", "error_description"}

:func:`error_from_response` turns any of them, or an HTML page, an empty body or binary garbage, into a
:class:`~airflow_provider_confluence.exceptions.ConfluenceApiError` subclass whose message is Confluence's own
words followed by what to do. Messages never contain a token: known secrets and anything that looks like a
bearer token are redacted, and echoed body text is capped.

This module imports nothing from Airflow and does no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_confluence._error_support import kept_headers
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConflict,
    ConfluenceGone,
    ConfluenceNotFound,
    ConfluenceRateLimited,
    ConfluenceScopeError,
)
from airflow_provider_confluence.retry import parse_retry_after

__all__ = [
    "MAX_ECHO",
    "error_from_response",
    "parse_json_body",
    "rate_limit_warnings",
    "required_scope",
]

#: At most this many characters of a response body are echoed in an error message.
MAX_ECHO = 300

_REDACTED = "[redacted]"
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)((?:access|refresh|id)_token|client_secret|password)(\"?\s*[:=]\s*\"?)[^\s\"',;&}]+"),
    re.compile(r"eyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*"),  # a JWT (Atlassian access tokens are JWTs)
)
_HTML_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_HTML_DROP = re.compile(r"(?is)<(script|style)[^>]*>.*?</\1\s*>")
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_SPACES = re.compile(r"\s+")

# (method, path pattern relative to the gateway, granular scope) from https://developer.atlassian.com/cloud/confluence/scopes-for-oauth-2-3LO-and-forge-apps/ and the v2 OpenAPI document (x-atlassian-oauth2-scopes).
_SCOPES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^/wiki/api/v2/spaces/[^/]+/pages/?$"), "read:page:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/spaces(/[^/]+)?/?$"), "read:space:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/pages(/[^/]+)?/?$"), "read:page:confluence"),
    ("POST", re.compile(r"^/wiki/api/v2/pages/?$"), "write:page:confluence"),
    ("PUT", re.compile(r"^/wiki/api/v2/pages/[^/]+/?$"), "write:page:confluence"),
    ("DELETE", re.compile(r"^/wiki/api/v2/pages/[^/]+/?$"), "delete:page:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/pages/[^/]+/labels/?$"), "read:page:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/pages/[^/]+/attachments/?$"), "read:attachment:confluence"),
    ("POST", re.compile(r"^/wiki/api/v2/footer-comments/?$"), "write:comment:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/pages/[^/]+/footer-comments/?$"), "read:comment:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/pages/[^/]+/children/?$"), "read:page:confluence"),
    (
        "GET",
        re.compile(r"^/wiki/api/v2/(pages|folders)/[^/]+/(direct-children|descendants)/?$"),
        "read:hierarchical-content:confluence",
    ),
    ("POST", re.compile(r"^/wiki/api/v2/folders/?$"), "write:folder:confluence"),
    ("GET", re.compile(r"^/wiki/api/v2/folders/[^/]+/?$"), "read:folder:confluence"),
    ("DELETE", re.compile(r"^/wiki/api/v2/folders/[^/]+/?$"), "delete:folder:confluence"),
    ("*", re.compile(r"^/wiki/rest/api/search(/.*)?$"), "search:confluence"),
    # v1 endpoints that v2 lacks; their granular scopes (the classic one in parentheses works too).
    (
        "POST",
        re.compile(r"^/wiki/rest/api/content/[^/]+/label/?$"),
        "write:label:confluence (with read:label:confluence; classic: write:confluence-content)",
    ),
    (
        "DELETE",
        re.compile(r"^/wiki/rest/api/content/[^/]+/label(/[^/]+)?/?$"),
        "write:label:confluence (classic: write:confluence-content)",
    ),
    (
        "*",
        re.compile(r"^/wiki/rest/api/content/[^/]+/child/attachment/?$"),
        "write:attachment:confluence (with read:content-details:confluence; classic: write:confluence-file)",
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove secrets from ``text``: each of ``secrets`` and anything that looks like a token.

    :param text: the text to clean.
    :param secrets: exact strings to remove (for example the access token that was sent).
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    text = _SECRET_PATTERNS[0].sub(lambda m: m.group(1) + _REDACTED, text)
    text = _SECRET_PATTERNS[1].sub(lambda m: m.group(1) + m.group(2) + _REDACTED, text)
    return _SECRET_PATTERNS[2].sub(_REDACTED, text)


def _cap(text: str, limit: int = MAX_ECHO) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _decode(body: bytes | str | None) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    return body.decode("utf-8", errors="replace")


def _looks_binary(text: str) -> bool:
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\r\n"))
    return bad > max(2, len(text) // 10)


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    return json.dumps(value)


def _from_json(data: Any) -> tuple[str | None, str | None]:
    """(code, text) from a parsed JSON error body; (None, None) when it has none of the known shapes."""
    if not isinstance(data, dict):
        return None, None
    errors = data.get("errors")
    if isinstance(errors, list) and errors:  # v2
        parts: list[str] = []
        code: str | None = None
        for item in errors:
            if not isinstance(item, dict):
                continue
            code = code or _text_of(item.get("code"))
            title, detail = _text_of(item.get("title")), _text_of(item.get("detail"))
            text = title or detail or _text_of(item.get("message"))
            if title and detail and detail not in title:
                text = f"{title}: {detail}"
            if text:
                parts.append(text)
        if parts:
            return code, "; ".join(parts)
    if isinstance(data.get("error"), str):  # token endpoint
        return data["error"], _text_of(data.get("error_description")) or data["error"]
    message = _text_of(data.get("message"))
    if message is not None:
        code_value = data.get("code")  # gateway {"code","message"}; v1 {"statusCode","message"} has no code
        return (_text_of(code_value) if code_value is not None else None), message
    if "title" in data or "detail" in data:  # RFC 7807 problem details, seen from some proxies
        title, detail = _text_of(data.get("title")), _text_of(data.get("detail"))
        return None, ": ".join(p for p in (title, detail) if p) or None
    return None, None


def _describe_body(status: int, raw: str, size: int) -> tuple[str | None, str]:
    """(code, text) for any body: JSON shapes first, then HTML, text, binary, empty."""
    stripped = raw.strip()
    if stripped:
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the interpreter allows
            data = None
        else:
            code, text = _from_json(data)
            if text:
                return code, text
    if not stripped:
        try:
            return None, HTTPStatus(status).phrase
        except ValueError:
            return None, f"HTTP {status} with an empty body"
    if _looks_binary(stripped):
        return None, f"a non-text body of {size} bytes"
    if "<" in stripped and re.search(r"(?i)<(!doctype|html|head|body|title)\b", stripped):
        title = _HTML_TITLE.search(stripped)
        text = _HTML_TAG.sub(" ", title.group(1) if title else _HTML_DROP.sub(" ", stripped))
        return None, f"an HTML page: {_cap(text) or '(no text)'}"
    return None, stripped


def required_scope(method: str, url: str) -> str | None:
    """The granular OAuth scope a known Confluence route needs (https://developer.atlassian.com/cloud/confluence/scopes-for-oauth-2-3LO-and-forge-apps/), or None.

    :param method: the HTTP method.
    :param url: the request URL (gateway URL or a path starting with ``/wiki``).
    """
    path = urlsplit(url).path
    index = path.find("/wiki/")
    if index < 0:
        return None
    path = path[index:]
    for route_method, pattern, scope in _SCOPES:
        if route_method in ("*", method.upper()) and pattern.match(path):
            return scope
    return None


def _advice(status: int, method: str, url: str, code: str | None, text: str, retry_after: float | None) -> str:
    lowered = text.lower()
    if status == 401 and "scope does not match" in lowered:
        scope = required_scope(method, url)
        what = (
            f"the granular scope {scope}"
            if scope
            else "the granular scope this operation needs (its x-atlassian-oauth2-scopes in the v2 API reference)"
        )
        return (
            f"The OAuth grant lacks a scope: add {what} in the developer console "
            "(Permissions -> Confluence API), then re-authorize the app."
        )
    if code == "invalid_grant":
        return "The refresh token is dead: a person must authorize the app again."
    if status == 400 and "already exists" in lowered:
        return "Use another title, or update the existing page."
    if status == 400 and "cql" in lowered:
        return (
            "Check the CQL query's syntax and field names "
            "(https://developer.atlassian.com/cloud/confluence/advanced-searching-using-cql/)."
        )
    if status == 403 and "xsrf" in lowered:
        return "The request lacked the header X-Atlassian-Token: no-check (a client bug; please report it)."
    advice = {
        400: "Check the request's parameters and body against the Confluence v2 API.",
        401: "The access token was refused. If this persists after a refresh, re-authorize the app.",
        403: "The app's user may not do this: check the permissions of the user who authorized the app.",
        404: "No such object, or the app's user cannot see it.",
        409: "The page changed since it was read (stale version): re-read it and retry with its current version + 1.",
        410: "This is a removed v1 endpoint; use the v2 API (/wiki/api/v2/...).",
        413: "The request body is too large (Confluence accepts up to 5 MB).",
    }.get(status)
    if advice:
        return advice
    if status == 429:
        when = f"after {retry_after:.0f} s" if retry_after is not None and retry_after < 1e9 else "later"
        return f"Atlassian rate-limited the app; retry {when}."
    if status >= 500:
        return "Confluence or the Atlassian gateway failed; the task may be retried later."
    return "Unexpected answer from Confluence."


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def error_from_response(
    method: str,
    url: str,
    status: int,
    body: bytes | str | None,
    headers: Mapping[str, str] | None = None,
    *,
    secrets: Iterable[str] = (),
) -> ConfluenceApiError:
    """Build the exception for a non-2xx answer. Never raises (any body gives an error object).

    :param method: the HTTP method of the request.
    :param url: the request URL (query values that look like secrets are redacted).
    :param status: the HTTP status code.
    :param body: the response body, as bytes or text.
    :param headers: the response headers: ``Retry-After`` is read from them, and the error keeps Atlassian's
        trace id (``Atl-Traceid``, as ``trace_id`` and in its message) and the allow-listed diagnostic headers.
    :param secrets: exact strings that must not appear in the message (the access token that was sent).
    :return: ``ConfluenceScopeError`` (401 "scope does not match"), ``ConfluenceNotFound`` (404),
        ``ConfluenceConflict`` (409), ``ConfluenceGone`` (410), ``ConfluenceRateLimited`` (429, with
        ``retry_after``) or ``ConfluenceApiError``, each with ``trace_id`` and ``headers``.
    """
    secrets = tuple(secrets)
    method = method.upper()
    raw = _decode(body)
    code, text = _describe_body(status, raw, len(body or ""))
    text = _cap(redact(text, secrets))
    retry_after = parse_retry_after(_header(headers, "Retry-After")) if status in (429, 503) else None
    stop = "" if text.endswith((".", "!", "?")) else "."
    message = f"{text}{stop} {_advice(status, method, url, code, text, retry_after)}"
    safe_url = redact(url, secrets)
    if code is not None:
        code = _cap(redact(code, secrets), 80)
    kept = kept_headers(headers)  # the trace id and rate-limit headers; never a cookie or credential
    if status == 401 and "scope does not match" in text.lower():
        return ConfluenceScopeError(status, method, safe_url, code, message, headers=kept)
    if status == 429:
        return ConfluenceRateLimited(status, method, safe_url, code, message, retry_after=retry_after, headers=kept)
    cls = {404: ConfluenceNotFound, 409: ConfluenceConflict, 410: ConfluenceGone}.get(status, ConfluenceApiError)
    return cls(status, method, safe_url, code, message, headers=kept)


def parse_json_body(method: str, url: str, status: int, content: bytes, headers: Mapping[str, str]) -> Any:
    """The parsed JSON of a 2xx answer; None for 204 or an empty body.

    :raises ConfluenceApiError: when the body is not JSON (a login page, a proxy's HTML, ...).
    """
    if status == 204 or not content.strip():
        return None
    try:
        return json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the interpreter allows
        kind = _header(headers, "Content-Type") or "no content type"
        raise ConfluenceApiError(
            status,
            method,
            url,
            None,
            f"The answer is not JSON ({kind[:60]}, {len(content)} bytes); check that api_url is the Atlassian API.",
            headers=kept_headers(headers),
        ) from None


def rate_limit_warnings(headers: Mapping[str, str]) -> tuple[bool, list[str]]:
    """(``X-RateLimit-NearLimit`` is true, the ``Beta-``/``X-Beta-`` header names): warnings, never limits."""
    near = (_header(headers, "X-RateLimit-NearLimit") or "").strip().lower() == "true"
    beta = sorted(h for h in headers if h.lower().startswith(("beta-", "x-beta-")))
    return near, beta
