"""The settings of a ``confluence_oauth`` connection, parsed and checked before any request is sent.

This module imports nothing from Airflow: it turns the connection's plain fields (host, login, password,
extra) into a frozen :class:`ConnectionSettings`, or raises :class:`ConfluenceConfigError` saying what is
wrong and what to do. Error messages name fields, never their secret values.
"""

from __future__ import annotations

import datetime
import json
import re
import warnings as _warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_confluence.config.endpoints import (
    AllowedHosts,
    check_endpoint,
    is_loopback,
    parse_url,
    refused_character,
)
from airflow_provider_confluence.config.signin import (
    API_TOKEN,
    OAUTH2_3LO,
    check_credentials,
    ignored_extras,
    parse_auth_type,
    parse_cloud_id,
    parse_expiry_date,
)
from airflow_provider_confluence.exceptions import ConfluenceConfigError

DEFAULT_SCOPES = "offline_access read:space:confluence read:page:confluence write:page:confluence"
DEFAULT_AUTH_URL = "https://auth.atlassian.com/authorize"
DEFAULT_TOKEN_URL = "https://auth.atlassian.com/oauth/token"
DEFAULT_API_URL = "https://api.atlassian.com"
DEFAULT_TIMEOUT = 30.0
TOKEN_STORES = ("auto", "connection", "broker", "variable", "memory")

#: Extras renamed in 0.2.0, old name -> new name. Airflow hides the value of every extra whose name contains a
#: sensitive word (``token`` is one, matched as a substring: see "Masking sensitive data" in Airflow's docs), so
#: the old names showed as ``***`` in the connection form and in task logs although they hold no secret. The old
#: names still work, with a deprecation warning.
RENAMED_EXTRAS: dict[str, str] = {
    "token_store": "state_store",
    "token_url": "grant_url",
    "api_token_expires": "credential_expires",
}

#: Classic (v1) scopes and the granular scopes that the v2 endpoints need instead (https://developer.atlassian.com/cloud/confluence/scopes-for-oauth-2-3LO-and-forge-apps/).
CLASSIC_TO_GRANULAR: dict[str, tuple[str, ...]] = {
    "read:confluence-space.summary": ("read:space:confluence",),
    "read:confluence-content.summary": ("read:page:confluence",),
    "read:confluence-content.all": ("read:page:confluence",),
    "write:confluence-content": ("write:page:confluence",),
    "write:confluence-space": ("write:space:confluence",),
    "write:confluence-file": ("write:attachment:confluence",),
    "readonly:content.attachment:confluence": ("read:attachment:confluence",),
    "read:confluence-user": ("read:user:confluence",),
}

_SCOPE_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything the hook needs from a ``confluence_oauth`` connection.

    :param conn_id: the Airflow connection id (used in messages and store names).
    :param site_url: the Confluence site, ``https://your-site.atlassian.net``, without a path.
    :param client_id: the Login: the OAuth app's or service account's client ID, or (``api_token``) the e-mail.
    :param client_secret: the Password: the client secret, or (``api_token``) the API token.
    :param refresh_token: the refresh token held in the connection (may be stale once a store has rotated it).
    :param scopes: the granted scopes, normalised and de-duplicated.
    :param broker_url: the Airflow API server that runs the token broker, when not the one Airflow's
        ``[core] execution_api_server_url`` points at.
    :param token_url: the OAuth token endpoint (every grant is posted there): the ``grant_url`` extra, formerly
        ``token_url``.
    :param token_store: where the rotated token state is kept: the ``state_store`` extra, formerly
        ``token_store``.
    :param broker_secret: the random key that signs this connection's requests to the token broker; the
        provider writes it into the extra on the first save of a rotation.
    :param auth_type: how the connection signs in: ``oauth2_3lo``, ``client_credentials`` or ``api_token``
        (:mod:`airflow_provider_confluence.config.signin`).
    :param credential_expires: the API token's expiry date (``api_token`` only), for the warning 30 days ahead.
    :param warnings: advice found while parsing (classic scopes, deprecated extra names, ignored extras); the hook
        logs it.
    """

    conn_id: str
    site_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = tuple(DEFAULT_SCOPES.split())
    auth_url: str = DEFAULT_AUTH_URL
    token_url: str = DEFAULT_TOKEN_URL
    api_url: str = DEFAULT_API_URL
    redirect_uri: str | None = None
    cloud_id: str | None = None
    token_store: str = "auto"
    timeout: float = DEFAULT_TIMEOUT
    broker_url: str | None = None
    broker_secret: str | None = field(default=None, repr=False)
    auth_type: str = OAUTH2_3LO
    credential_expires: datetime.date | None = None
    warnings: tuple[str, ...] = ()

    @property
    def uses_refresh_token(self) -> bool:
        """True for ``oauth2_3lo``: the only type with a refresh token to rotate, stores and the token broker."""
        return self.auth_type == OAUTH2_3LO

    @property
    def scope(self) -> str:
        """The scopes in Atlassian's space-separated form."""
        return " ".join(self.scopes)

    @property
    def site_host(self) -> str:
        """The site's host name, lower-cased, for matching accessible-resources."""
        return (urlsplit(self.site_url).hostname or "").lower()

    @classmethod
    def from_connection_fields(
        cls,
        conn_id: str,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: str | Mapping[str, Any] | None,
        allowed_endpoint_hosts: str | None = None,
    ) -> ConnectionSettings:
        """Parse and check a connection's fields.

        :param conn_id: the connection id, for messages.
        :param host: the Confluence site URL.
        :param login: the client ID (the e-mail with ``auth_type`` ``api_token``).
        :param password: the client secret (the API token with ``auth_type`` ``api_token``).
        :param extra: the extra field, as the JSON text Airflow stores or an already parsed mapping.
        :param allowed_endpoint_hosts: the deployment's ``[confluence] allowed_endpoint_hosts``, read from
            Airflow's configuration by the caller (:func:`airflow_provider_confluence.config.deployment.connection_settings`);
            without it only Atlassian's hosts may be endpoints.
        :raises ConfluenceConfigError: when a field is missing or unusable, or an endpoint is not allowed.
        """
        allowed = AllowedHosts.parse(allowed_endpoint_hosts)
        extras, warnings = renamed_extras(conn_id, parse_extra(conn_id, extra))
        auth_type = parse_auth_type(conn_id, extras.get("auth_type"))
        client_id = (login or "").strip()
        client_secret = (password or "").strip()
        check_credentials(conn_id, auth_type, client_id, client_secret)
        scopes, scope_warnings = parse_scopes(
            conn_id, _text(extras.get("scopes")) or DEFAULT_SCOPES, needs_offline_access=auth_type == OAUTH2_3LO
        )
        warnings += scope_warnings
        warnings += ignored_extras(conn_id, auth_type, extras)
        credential_expires = parse_expiry_date(conn_id, extras.get("credential_expires"))
        token_store = (_text(extras.get("state_store")) or "auto").lower()
        if token_store not in TOKEN_STORES:
            raise ConfluenceConfigError(
                f"Connection {conn_id!r} has state_store={token_store!r}; use one of {', '.join(TOKEN_STORES)} "
                "(auto picks the right one and logs which)."
            )
        if _text(extras.get("broker_fallback")):
            warnings += (
                f"Connection {conn_id!r} has a broker_fallback extra, which is no longer used: a task waits for the "
                "token broker (a bounded wait) and never keeps tokens anywhere else. Remove the extra.",
            )
        broker_url = _text(extras.get("broker_url"))
        if broker_url:
            parse_url(
                f"Connection {conn_id!r}: broker_url",
                broker_url,
                fix="give the Airflow API server's base URL, or leave it empty to use [core] execution_api_server_url.",
            )
        redirect_uri = _text(extras.get("redirect_uri"))
        if redirect_uri:
            parse_url(
                f"Connection {conn_id!r}: redirect_uri",
                redirect_uri,
                fix="set it to the Callback URL registered in the Atlassian developer console.",
            )
        return cls(
            conn_id=conn_id,
            site_url=parse_site_url(conn_id, host),
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=_text(extras.get("refresh_token")),
            scopes=scopes,
            auth_url=check_endpoint(conn_id, "auth_url", _text(extras.get("auth_url")) or DEFAULT_AUTH_URL, allowed),
            token_url=check_endpoint(
                conn_id, "grant_url", _text(extras.get("grant_url")) or DEFAULT_TOKEN_URL, allowed
            ),
            api_url=check_endpoint(conn_id, "api_url", _text(extras.get("api_url")) or DEFAULT_API_URL, allowed).rstrip(
                "/"
            ),
            redirect_uri=redirect_uri,
            cloud_id=parse_cloud_id(conn_id, extras.get("cloud_id")),
            token_store=token_store,
            timeout=parse_timeout(conn_id, extras.get("timeout")),
            broker_url=broker_url,
            broker_secret=_text(extras.get("broker_secret")),
            auth_type=auth_type,
            credential_expires=credential_expires if auth_type == API_TOKEN else None,
            warnings=warnings,
        )


def _text(value: Any) -> str | None:
    """Return a stripped string, or None for empty values."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def renamed_extras(conn_id: str, extras: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The extras with every old name of :data:`RENAMED_EXTRAS` moved to its new name, and the warnings to log.

    An old name alone still works: a :class:`DeprecationWarning` is issued and a warning naming the new key is
    returned (the hook logs it). Both names with the same value are accepted (the old one is ignored, with the
    warning); with different values nothing can tell which one is meant, so the connection is refused.

    :raises ConfluenceConfigError: both names are set, to different values.
    """
    result = dict(extras)
    advice: tuple[str, ...] = ()
    for old, new in RENAMED_EXTRAS.items():
        if old not in result:
            continue
        old_value, new_value = _text(result.pop(old)), _text(result.get(new))
        if old_value is None:
            continue
        if new_value is not None and new_value != old_value:
            raise ConfluenceConfigError(
                f"Connection {conn_id!r} has both {new} and its old name {old}, with different values. Keep {new} "
                f"(set it to the value you mean) and delete {old} from the Extra field."
            )
        result[new] = old_value
        message = (
            f"Connection {conn_id!r} uses the extra {old}, which is deprecated: rename it to {new} (same "
            f"value). Airflow hides the values of extras whose names contain 'token'."
        )
        _warnings.warn(message, DeprecationWarning, stacklevel=3)
        advice += (message,)
    return result, advice


def extra_value(extras: Mapping[str, Any], name: str) -> str | None:
    """The stripped value of the extra ``name`` (a new name of :data:`RENAMED_EXTRAS`), read under its old name
    when only that is set; for readers that do not refuse a connection (the rotation journal's binding)."""
    value = _text(extras.get(name))
    if value is None:
        old = next((o for o, n in RENAMED_EXTRAS.items() if n == name), None)
        value = _text(extras.get(old)) if old else None
    return value


def parse_extra(conn_id: str, extra: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse the connection's extra, refusing malformed JSON instead of silently treating it as empty.

    The message gives the JSON error's position but never the text, which holds secrets.
    """
    if extra is None or extra == "":
        return {}
    if isinstance(extra, Mapping):
        return dict(extra)
    try:
        parsed = json.loads(extra)
    except ValueError as exc:
        position = getattr(exc, "pos", None)
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has an Extra field that is not valid JSON (error at character {position}). "
            'Fix it in Admin -> Connections; it must be an object such as {"refresh_token": "...", "scopes": "..."}.'
        ) from None
    if not isinstance(parsed, dict):
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has an Extra field that is JSON but not an object; "
            'it must look like {"refresh_token": "...", "scopes": "..."}.'
        )
    return parsed


def parse_scopes(
    conn_id: str, raw: str, *, needs_offline_access: bool = True
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Normalise comma- or space-separated scopes and check them.

    :param needs_offline_access: refuse scopes without ``offline_access`` (3LO; service accounts and API tokens
        have their scopes fixed at creation and no refresh token).
    :returns: the scopes in order without duplicates, and warnings to log.
    :raises ConfluenceConfigError: when ``offline_access`` is missing (no refresh token without it).
    """
    scopes = tuple(dict.fromkeys(s for s in _SCOPE_SEPARATORS.split(raw) if s))
    if needs_offline_access and "offline_access" not in scopes:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} does not request the offline_access scope, so Atlassian issues no refresh "
            "token and every run would need a person. Add offline_access to the scopes extra, then authorize "
            "the app again."
        )
    classic = [s for s in scopes if s in CLASSIC_TO_GRANULAR]
    granular = [s for s in scopes if s.endswith(":confluence")]
    warnings: tuple[str, ...] = ()
    if classic and not granular:
        needed = sorted({g for s in classic for g in CLASSIC_TO_GRANULAR[s]})
        warnings = (
            f"Connection {conn_id!r} only has classic Confluence scopes ({', '.join(classic)}), which the v2 "
            f"API answers with 'scope does not match'. Add the granular scopes {', '.join(needed)} to the app "
            "in the developer console (Permissions -> Confluence API -> Granular scopes) and to the scopes "
            "extra, then authorize again.",
        )
    return scopes, warnings


def parse_site_url(conn_id: str, host: str | None) -> str:
    """Check the Confluence site URL and return it as ``scheme://host[:port]``.

    A trailing ``/wiki`` is accepted (people copy it from the browser); any other path is refused. Any https
    host is accepted (http on loopback): no credential is ever sent to the site, which only makes the links to
    pages and picks the cloud id among the sites a grant covers.
    """
    raw = (host or "").strip()
    what = f"Connection {conn_id!r}: the site URL (Host)"
    if not raw:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has no Confluence site URL (the Host field); set it to "
            "https://your-site.atlassian.net."
        )
    fix = "write it as https://your-site.atlassian.net."
    problem = refused_character(raw)
    if problem:
        raise ConfluenceConfigError(f"{what} {problem}; {fix}")
    try:
        parts = urlsplit(raw)
    except ValueError:
        parts = urlsplit("")
    if not parts.scheme or not parts.hostname:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: the Confluence site URL {raw!r} has no scheme; write it as https://{raw}."
        )
    if parts.path.rstrip("/") not in ("", "/wiki") or parts.query:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: the Confluence site URL {raw!r} has a path; use only the site, such as "
            f"{parts.scheme}://{parts.netloc}."
        )
    where = parse_url(what, raw, fix=fix)
    if where.scheme != "https" and not is_loopback(where.host):
        raise ConfluenceConfigError(f"{what} must use https:// (got {where.scheme}://{where.host}).")
    return f"{parts.scheme}://{parts.netloc}"


def parse_timeout(conn_id: str, value: Any) -> float:
    """Parse the ``timeout`` extra (seconds, default 30)."""
    if value is None or value == "":
        return DEFAULT_TIMEOUT
    try:
        timeout = float(value)
    except (TypeError, ValueError):
        timeout = -1.0
    if not 0 < timeout <= 600:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: timeout {value!r} must be a number of seconds between 0 and 600."
        )
    return timeout
