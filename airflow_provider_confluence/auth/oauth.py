"""Atlassian's OAuth 2.0 endpoints: consent URL, code exchange, refresh, client credentials, accessible resources.

Single requests, no retries and no state: :mod:`airflow_provider_confluence.auth.tokens` decides when to call
them and what to do with failures. Token requests are JSON, as Atlassian documents
(https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/); a refresh never sends ``scope`` or
``redirect_uri`` and never anything but its own body. Error messages quote the server's ``error`` and
``error_description`` (capped), with any value the request sent (client secret, refresh token, code) or anything
token-like cut out: never a token or the client secret, even when the endpoint quotes them.

Why not requests-oauthlib (it is no longer a dependency): its ``OAuth2Session`` would build the consent URL
(with ``audience`` and ``prompt`` as extra parameters) and exchange the code, but

* it sends the token request form-encoded, where Atlassian documents JSON (a compliance hook would have to
  rewrite every body);
* oauthlib refuses ``http://`` endpoints unless the process-wide ``OAUTHLIB_INSECURE_TRANSPORT`` is set, and the
  emulator (:mod:`airflow_provider_confluence.testing`) serves plain HTTP over loopback;
* oauthlib raises when the granted scopes differ from the requested ones unless the process-wide
  ``OAUTHLIB_RELAX_TOKEN_SCOPE`` is set, where the consent flow must see what was granted (``offline_access``)
  and say so;
* its errors (oauthlib's ``OAuth2Error``) carry neither the HTTP status nor the transient/permanent split that
  the rotation protocol needs, and the endpoint pinning and redirect refusal of this module would wrap it anyway.

What it would replace is a ``urlencode`` of seven fixed parameters and one ``POST``; the refresh protocol stays
ours in any case. So the provider keeps these few lines and does not ship the dependency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_confluence._error_support import trace_id_of
from airflow_provider_confluence.client.responses import redact
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceInvalidGrant,
)

log = logging.getLogger(__name__)

AUDIENCE = "api.atlassian.com"
_MAX_ECHO = 200
#: The fields of a token request that are secrets: an error text that quotes one of them never shows it.
_SENT_SECRETS = ("client_secret", "refresh_token", "code")


@dataclass(frozen=True)
class TokenResponse:
    """A successful answer of the token endpoint.

    :param access_token: the new access token.
    :param expires_in: its lifetime in seconds, as the server said.
    :param refresh_token: the rotated refresh token, or None when the server sent none (keep the old one).
    :param scope: the granted scopes, space-separated, when the server said.
    """

    access_token: str = field(repr=False)
    expires_in: float
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None


def authorization_url(*, auth_url: str, client_id: str, scope: str, redirect_uri: str, state: str) -> str:
    """Build the consent URL a person opens in a browser (the parameters Atlassian documents for 3LO apps).

    :param scope: the scopes, space-separated (sent as ``%20``-separated, as Atlassian documents).
    :param state: an unguessable value bound to the person, checked again on the callback.
    """
    from urllib.parse import quote, urlencode

    query = urlencode(
        {
            "audience": AUDIENCE,
            "client_id": client_id,
            "scope": " ".join(scope.split()),
            "redirect_uri": redirect_uri,
            "state": state,
            "response_type": "code",
            "prompt": "consent",
        },
        quote_via=quote,
    )
    return f"{auth_url}?{query}"


def refresh(
    session: requests.Session,
    *,
    token_url: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    timeout: float,
) -> TokenResponse:
    """Redeem a refresh token for a new access token and a rotated refresh token.

    :raises ConfluenceInvalidGrant: the refresh token is dead or unknown.
    :raises ConfluenceAuthError: any other failure; ``transient`` says whether trying again may help.
    """
    body = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    return _token_request(session, token_url, body, timeout)


def exchange_code(
    session: requests.Session,
    *,
    token_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    timeout: float,
) -> TokenResponse:
    """Exchange an authorization code from the consent callback for the grant's first tokens."""
    body = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "client_secret": client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    return _token_request(session, token_url, body, timeout)


def client_credentials(
    session: requests.Session,
    *,
    token_url: str,
    client_id: str,
    client_secret: str,
    timeout: float,
) -> TokenResponse:
    """An access token of an Atlassian service account (OAuth 2.0 client credentials; about 60 minutes, no refresh
    token).

    No ``scope`` is sent: the credential's scopes are fixed when it is created, and Atlassian refuses the parameter
    (https://support.atlassian.com/user-management/docs/create-oauth-2-0-credential-for-service-accounts/).

    :raises ConfluenceAuthError: ``invalid_client`` and other refusals (not ``transient``), or a failure that may
        pass (``transient``).
    """
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    return _token_request(session, token_url, body, timeout, refused_hint=_SERVICE_ACCOUNT_HINT)


_APP_HINT = (
    "Check the Client ID (Login) and Client secret (Password) against the developer console: your app -> Settings."
)
_SERVICE_ACCOUNT_HINT = (
    "Check the Client ID (Login) and Client secret (Password) against the service account's OAuth 2.0 credential "
    "in Atlassian Administration (Directory -> Service accounts); a deleted credential, or the client ID of an "
    "OAuth 2.0 (3LO) app, is refused too (for an app use auth_type oauth2_3lo)."
)


def _token_request(
    session: requests.Session, token_url: str, body: dict[str, str], timeout: float, *, refused_hint: str = _APP_HINT
) -> TokenResponse:
    try:
        response = session.post(token_url, json=body, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise ConfluenceAuthError(
            f"The token endpoint {token_url} could not be reached ({type(exc).__name__}); the refresh may be retried.",
            transient=True,
        ) from None
    payload = _json_or_none(response)
    status = response.status_code
    if status == 200 and isinstance(payload, dict) and payload.get("access_token"):
        return _parse_success(token_url, payload)
    error = str(payload.get("error") or "") if isinstance(payload, dict) else ""
    description = str(payload.get("error_description") or "") if isinstance(payload, dict) else ""
    # Redacted before it is capped (a cut would leave a secret's head): the endpoint, or a proxy before it, may quote
    # the body it got, and this text goes to logs, to a worker's broker answer and to its task log.
    sent = [body[name] for name in _SENT_SECRETS if body.get(name)]
    said = redact(f"{error}: {description}", sent)[:_MAX_ECHO] if error else _snippet(response)
    trace_id = trace_id_of(response.headers)
    if error == "invalid_grant":
        raise ConfluenceInvalidGrant(
            f"The token endpoint refused the refresh token ({said}).",
            status_code=status,
            error=error,
            trace_id=trace_id,
        )
    if status == 200 or status >= 500 or status == 429:
        raise ConfluenceAuthError(
            f"The token endpoint {token_url} answered {status} without a usable token ({said}); the refresh "
            "may be retried.",
            status_code=status,
            error=error or None,
            transient=True,
            trace_id=trace_id,
        )
    if status == 401 or error in ("invalid_client", "access_denied", "unauthorized_client"):
        raise ConfluenceAuthError(
            f"The token endpoint rejected the client credentials ({said}). {refused_hint}",
            status_code=status,
            error=error or None,
            trace_id=trace_id,
        )
    raise ConfluenceAuthError(
        f"The token endpoint {token_url} answered {status} ({said}).",
        status_code=status,
        error=error or None,
        trace_id=trace_id,
    )


def _parse_success(token_url: str, payload: dict[str, Any]) -> TokenResponse:
    try:
        expires_in = float(payload.get("expires_in", 3600))
    except (TypeError, ValueError):
        raise ConfluenceAuthError(
            f"The token endpoint {token_url} sent an unreadable expires_in; the refresh may be retried.",
            transient=True,
        ) from None
    refresh_token = payload.get("refresh_token")
    scope = payload.get("scope")
    return TokenResponse(
        access_token=str(payload["access_token"]),
        expires_in=expires_in,
        refresh_token=str(refresh_token) if refresh_token else None,
        scope=str(scope) if scope else None,
    )


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the interpreter allows
        return None


def _snippet(response: requests.Response) -> str:
    """A short, single-line description of a non-JSON answer (an HTML error page, garbage)."""
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    return f"a {len(response.content)}-byte {kind} body"


def accessible_resources(
    session: requests.Session, *, api_url: str, access_token: str, timeout: float
) -> list[dict[str, Any]]:
    """List the sites an access token can reach (https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/)."""
    url = f"{api_url.rstrip('/')}/oauth/token/accessible-resources"
    try:
        response = session.get(
            url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise ConfluenceAuthError(f"{url} could not be reached ({type(exc).__name__}).", transient=True) from None
    if response.is_redirect:
        from airflow_provider_confluence.config.endpoints import redirect_origin

        raise ConfluenceAuthError(
            f"{url} answered {response.status_code}, a redirect to {redirect_origin(url, response.headers.get('Location'))}"
            ", which is not followed: the access token is sent only to api_url. Check api_url.",
            status_code=response.status_code,
        )
    payload = _json_or_none(response)
    if response.status_code != 200 or not isinstance(payload, list):
        said = (
            redact(str(payload.get("message")), [access_token])[:_MAX_ECHO]
            if isinstance(payload, dict) and payload.get("message")
            else (_snippet(response))
        )
        raise ConfluenceAuthError(
            f"{url} answered {response.status_code} ({said}); the access token was not accepted.",
            status_code=response.status_code,
            transient=response.status_code >= 500,
            trace_id=trace_id_of(response.headers),
        )
    return [r for r in payload if isinstance(r, dict)]


def find_cloud_id(resources: list[dict[str, Any]], site_host: str) -> str:
    """Pick the cloud id of the site whose host name matches, case-insensitively.

    :raises ConfluenceAuthError: no site matches; the message lists the sites the token can reach.
    """
    from urllib.parse import urlsplit

    for resource in resources:
        host = (urlsplit(str(resource.get("url", ""))).hostname or "").lower()
        if host == site_host.lower() and resource.get("id"):
            return str(resource["id"])
    reachable = ", ".join(str(r.get("url")) for r in resources) or "none"
    raise ConfluenceAuthError(
        f"The grant does not cover the site {site_host}; it can reach: {reachable}. Fix the connection's Host, "
        "or authorize the app again and pick that site on the consent screen."
    )
