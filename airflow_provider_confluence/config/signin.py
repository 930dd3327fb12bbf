"""The ``auth_type`` extra of a ``confluence_oauth`` connection: which way it signs in, and the fields each way needs.

=========================  ==========================================  ==========================================
``auth_type``              Login / Password                            how requests are authorized
=========================  ==========================================  ==========================================
``oauth2_3lo`` (default)   OAuth app's client ID / client secret       bearer token; refresh token rotated and saved
``client_credentials``     service account's client ID / secret        bearer token, fetched again when it expires
``api_token``              account e-mail / scoped API token           HTTP Basic; no token at all
=========================  ==========================================  ==========================================

Imports nothing from Airflow; :mod:`.connection` calls these while it parses a connection. Messages name fields,
never their values when they may be secret.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError

OAUTH2_3LO = "oauth2_3lo"
CLIENT_CREDENTIALS = "client_credentials"
API_TOKEN = "api_token"
AUTH_TYPES = (OAUTH2_3LO, CLIENT_CREDENTIALS, API_TOKEN)
#: what people type for the same thing; accepted, and the canonical name used from then on
_ALIASES = {"3lo": OAUTH2_3LO, "oauth2": OAUTH2_3LO, "service_account": CLIENT_CREDENTIALS, "apitoken": API_TOKEN}
_EMAIL = re.compile(r"^[^@\s:]+@[^@\s:]+\.[^@\s:]+$")
#: a cloud id as Atlassian's accessible-resources and ``_edge/tenant_info`` give it (a UUID); only its characters are
#: checked, so that a URL, a host name or a pasted sentence is refused before it becomes part of every request path
_CLOUD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")

_CREDENTIALS = {
    OAUTH2_3LO: (
        "Client ID (the Login field)",
        "Client secret (the Password field)",
        "Copy it from the Atlassian developer console: your app -> Settings -> Authentication details.",
    ),
    CLIENT_CREDENTIALS: (
        "Client ID (the Login field)",
        "Client secret (the Password field)",
        "Copy it from Atlassian Administration: Directory -> Service accounts -> your service account -> "
        "its OAuth 2.0 credential.",
    ),
    API_TOKEN: (
        "e-mail address (the Login field)",
        "API token (the Password field)",
        "Login is the Atlassian account's e-mail address and Password a scoped API token, created at "
        "https://id.atlassian.com/manage-profile/security/api-tokens (Create API token with scopes).",
    ),
}


def parse_auth_type(conn_id: str, value: Any) -> str:
    """The connection's ``auth_type``: ``oauth2_3lo`` when empty.

    :raises ConfluenceConfigError: for any other value than the three types.
    """
    raw = str(value).strip().lower() if value is not None else ""
    if not raw:
        return OAUTH2_3LO
    raw = raw.replace("-", "_")
    auth_type = _ALIASES.get(raw, raw)
    if auth_type not in AUTH_TYPES:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has auth_type={str(value)[:40]!r}; use one of {', '.join(AUTH_TYPES)}: "
            "oauth2_3lo for an OAuth 2.0 (3LO) app a person authorizes, client_credentials for an Atlassian "
            "service account's OAuth 2.0 credential, api_token for an account's e-mail and scoped API token."
        )
    return auth_type


def check_credentials(conn_id: str, auth_type: str, login: str, password: str) -> None:
    """Refuse a missing Login or Password, and an ``api_token`` Login that is not an e-mail address.

    :raises ConfluenceConfigError: saying which field to fill and where to find its value.
    """
    login_name, password_name, where = _CREDENTIALS[auth_type]
    if not login:
        raise ConfluenceConfigError(f"Connection {conn_id!r} has no {login_name}. {where}")
    if not password:
        raise ConfluenceConfigError(f"Connection {conn_id!r} has no {password_name}. {where}")
    if auth_type == API_TOKEN and not _EMAIL.match(login):
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has auth_type=api_token, but its Login is not an e-mail address: an API "
            "token is sent as HTTP Basic with the e-mail of the Atlassian account that created it. Put that "
            "e-mail in Login and the token in Password."
        )


def parse_expiry_date(conn_id: str, value: Any) -> datetime.date | None:
    """The ``credential_expires`` extra: the API token's expiry date, ``YYYY-MM-DD`` (a full ISO time is cut to
    its date). None when empty.

    :raises ConfluenceConfigError: for anything that is not a date.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    try:
        return (
            datetime.date.fromisoformat(text[:10]) if len(text) == 10 else datetime.datetime.fromisoformat(text).date()
        )
    except ValueError:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: credential_expires {text[:40]!r} is not a date; write it as YYYY-MM-DD, the "
            "expiry shown next to the token at https://id.atlassian.com/manage-profile/security/api-tokens "
            "(or leave it empty)."
        ) from None


def parse_cloud_id(conn_id: str, value: Any) -> str | None:
    """The ``cloud_id`` extra (None when empty): the site's cloud id, a UUID.

    :raises ConfluenceConfigError: for a value that cannot be a cloud id (a URL, a host name, spaces).
    """
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if not _CLOUD_ID.match(text):
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: cloud_id {text[:60]!r} is not a cloud id, which is a UUID such as "
            "1324a887-45db-1bf4-1e99-ef0ff456d421 (not the site's URL or name). Leave cloud_id empty: the provider "
            "looks it up from the site URL (Host); or copy the cloudId that "
            "https://your-site.atlassian.net/_edge/tenant_info shows."
        )
    return text


def ignored_extras(conn_id: str, auth_type: str, extras: Mapping[str, Any]) -> tuple[str, ...]:
    """Warnings for extras that the connection's ``auth_type`` does not use (kept, never sent anywhere)."""
    if auth_type == OAUTH2_3LO:
        unused = ["credential_expires"]
        why = "it belongs to auth_type api_token"
    else:
        unused = ["refresh_token", "access_token", "broker_url", "redirect_uri"]
        if str(extras.get("state_store") or "auto").strip().lower() != "auto":
            unused.append("state_store")
        if auth_type == CLIENT_CREDENTIALS:
            unused.append("credential_expires")
        why = (
            "a service account gets no refresh token: its access tokens are fetched again when they expire and "
            "kept in memory only"
            if auth_type == CLIENT_CREDENTIALS
            else "an API token is sent as it is (HTTP Basic): there is no OAuth token to keep"
        )
    found = [name for name in unused if str(extras.get(name) or "").strip()]
    advice: tuple[str, ...] = ()
    if found:
        advice += (
            f"Connection {conn_id!r} has auth_type={auth_type} and the extra(s) {', '.join(found)}, which it "
            f"ignores: {why}. Remove them to avoid confusion.",
        )
    if auth_type != OAUTH2_3LO and str(extras.get("scopes") or "").strip():
        fixed = (
            "a service account's scopes are fixed on its OAuth 2.0 credential (Atlassian refuses a token request "
            "that names scopes: invalid_scope)"
            if auth_type == CLIENT_CREDENTIALS
            else "a scoped API token's scopes are fixed when it is created"
        )
        advice += (
            f"Connection {conn_id!r} has auth_type={auth_type} and a scopes extra, which it ignores and never "
            f"sends: {fixed}. Remove the extra; for other scopes, create a new credential or token with them.",
        )
    return advice


def no_consent_needed(conn_id: str, auth_type: str) -> str:
    """Why a consent (the Connect page, ``airflow-confluence authorize``) is refused for a connection that is not
    ``oauth2_3lo``: nothing would use the refresh token it gives."""
    return (
        f"Connection {conn_id!r} has auth_type={auth_type}, which signs in without a person's consent and has no "
        "refresh token to save. Test the connection instead; set auth_type to oauth2_3lo to use an OAuth 2.0 app."
    )
