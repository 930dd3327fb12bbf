"""The consent screen (``GET /authorize``) and site discovery (``GET /oauth/token/accessible-resources``).

``authorize`` checks every parameter https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/ lists as required and answers a 400 HTML page naming the first
missing or wrong one; otherwise it redirects (302) to ``redirect_uri`` with ``code`` and ``state``, or with
``error=access_denied`` when the emulator's ``deny_consent`` knob is set.
"""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import urlencode, urlsplit

from ._http import Reply, gateway_error
from .auth import AccessCheck, AuthModel, same, split_scopes

AUTHORIZE_PARAMS = ("audience", "client_id", "scope", "redirect_uri", "state", "response_type", "prompt")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9_:.\-]+$")
_AVATAR = "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png"


def _add_query(url: str, **params: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _consent_error(message: str) -> Reply:
    page = f"<!DOCTYPE html><html><body><h1>Something went wrong</h1><p>{html.escape(message)}</p></body></html>"
    return Reply(400, page, content_type="text/html; charset=utf-8")


def authorize(auth: AuthModel, query: dict[str, list[str]]) -> Reply:
    """Answer the consent URL for the app of ``auth`` (see the module docstring)."""
    params = {name: values[0] for name, values in query.items() if values}
    for name in AUTHORIZE_PARAMS:
        if not params.get(name):
            return _consent_error(f"Missing required parameter: {name}")
    checks = (
        (params["audience"] == "api.atlassian.com", "audience must be api.atlassian.com"),
        (same(params["client_id"], auth.client_id), "client_id: no app has this client id"),
        (params["response_type"] == "code", "response_type must be code"),
        (params["prompt"] == "consent", "prompt must be consent"),
    )
    for ok, message in checks:
        if not ok:
            return _consent_error(f"Invalid parameter: {message}")
    redirect = params["redirect_uri"]
    parts = urlsplit(redirect)
    registered = auth.registered_redirect_uris
    unregistered = registered is not None and redirect not in registered
    if parts.scheme not in ("http", "https") or not parts.netloc or unregistered:
        return _consent_error("Invalid parameter: redirect_uri does not match the app's callback URL")
    scopes = split_scopes(params["scope"], strict=True)
    if not scopes or not all(_SCOPE_RE.match(scope) for scope in scopes):
        return _consent_error("Invalid parameter: scope must be space-separated scope names")
    if auth.deny_consent:
        return Reply(302, None, {"Location": _add_query(redirect, error="access_denied", state=params["state"])})
    code = auth.new_code(redirect, scopes)
    return Reply(302, None, {"Location": _add_query(redirect, code=code, state=params["state"])})


def accessible_resources(check: AccessCheck, site_url: str, cloud_id: str, extra_sites: list[tuple[str, str]]) -> Reply:
    """Answer ``GET /oauth/token/accessible-resources`` for the caller judged by ``check`` (a 3LO or service-account
    bearer token: anything else answers 401). Extra sites are listed BEFORE the real one, so a client that takes the
    first entry instead of matching the site's hostname fails visibly; a service account sees only its sites."""
    if check.state != "ok" or check.kind == "api_token":
        return gateway_error(401, "Unauthorized")
    scopes = [scope for scope in check.scopes if scope != "offline_access"]
    sites = [(str(uuid.uuid5(uuid.NAMESPACE_URL, url)), name, url) for name, url in extra_sites]
    sites.append((cloud_id, (urlsplit(site_url).hostname or site_url).split(".")[0], site_url))
    resources = [
        {"id": site_id, "name": name, "url": url, "scopes": scopes, "avatarUrl": _AVATAR}
        for site_id, name, url in sites
        if check.reaches(site_id)
    ]
    return Reply(200, resources)
