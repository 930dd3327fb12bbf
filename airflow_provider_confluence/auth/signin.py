"""The three ways a ``confluence_oauth`` connection signs in, as the client sees them: an ``Authorization`` source.

* ``oauth2_3lo``: the rotation protocol (:mod:`.tokens` over a store) or, in an Airflow 3 worker, the token broker;
  the hook builds those, and :class:`~airflow_provider_confluence.client.authorization.BearerAuthorization` wraps them.
* ``client_credentials``: :class:`~.service_account.ClientCredentialsTokens`, a per-process cache; no store, no
  broker (:func:`client_credentials_tokens`).
* ``api_token``: no token at all; every request carries HTTP Basic ``e-mail:token``
  (:func:`api_token_authorization`); the cloud id comes from ``<site>/_edge/tenant_info`` (:func:`tenant_cloud_id`)
  unless the ``cloud_id`` extra gives it.

Scoped API tokens: https://support.atlassian.com/confluence/kb/scoped-api-tokens-in-confluence-cloud/ ; they
expire within a year: https://support.atlassian.com/atlassian-account/docs/manage-api-tokens-for-your-atlassian-account/
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

import requests

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.service_account import (
    ClientCredentialsCache,
    ClientCredentialsTokens,
    credential_key,
)
from airflow_provider_confluence.auth.tokens import GRANT_WARNING, wall_clock
from airflow_provider_confluence.client.authorization import BasicAuthorization
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceConfigError

__all__ = [
    "api_token_authorization",
    "api_token_refused",
    "client_credentials_tokens",
    "expiry_text",
    "tenant_cloud_id",
]

log = logging.getLogger(__name__)

API_TOKENS_PAGE = "https://id.atlassian.com/manage-profile/security/api-tokens"


def client_credentials_tokens(
    settings: ConnectionSettings,
    *,
    session: requests.Session,
    on_secret: Callable[[str], None],
    cache: ClientCredentialsCache | None = None,
    clock: Callable[[], float] | None = None,
) -> ClientCredentialsTokens:
    """The service-account token source of a ``client_credentials`` connection (never a store, never the broker)."""

    def fetch() -> oauth.TokenResponse:
        return oauth.client_credentials(
            session,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            timeout=settings.timeout,
        )

    return ClientCredentialsTokens(
        fetch=fetch,
        key=credential_key(settings.token_url, settings.client_id, settings.client_secret),
        conn_id=settings.conn_id,
        cache=cache,
        on_secret=on_secret,
        clock=clock,
    )


def expiry_text(day: datetime.date) -> str:
    """A date as messages show it, ``31 January 2027``: not in the extra's own ``YYYY-MM-DD`` form, which Airflow
    masks as a secret in logs (the key ``credential_expires`` holds the word "token")."""
    return f"{day.day} {day:%B %Y}"


def _expiry_moment(day: datetime.date) -> float:
    """Epoch seconds of 00:00 UTC on ``day``: a token dated to expire that day is treated as dead from then."""
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


def api_token_refused(settings: ConnectionSettings, *, clock: Callable[[], float] | None = None) -> ConfluenceAuthError:
    """The error for a 401 on an API token: Atlassian answers a wrong e-mail, a wrong, revoked or expired token alike."""
    now = (clock or wall_clock)()
    expires = settings.credential_expires
    if expires is not None and now >= _expiry_moment(expires):
        why = f"the token expired on {expiry_text(expires)} (credential_expires)"
    else:
        why = "the e-mail (Login) or the API token (Password) is wrong, or the token was revoked or has expired"
    return ConfluenceAuthError(
        f"Atlassian refused the e-mail and API token of connection {settings.conn_id!r} (401 Unauthorized): {why}. "
        f"Create a scoped API token at {API_TOKENS_PAGE} with the account whose e-mail is the Login, put it in "
        "Password, and its expiry date in the credential_expires extra.",
        status_code=401,
    )


def api_token_authorization(
    settings: ConnectionSettings,
    *,
    on_secret: Callable[[str], None],
    clock: Callable[[], float] | None = None,
) -> BasicAuthorization:
    """HTTP Basic for an ``api_token`` connection; logs a warning once when ``credential_expires`` is 30 days away
    or less (like the 365-day grant warning of 3LO), and an error-level message once it has passed."""
    warned: list[bool] = []
    read_clock = clock or (lambda: wall_clock())

    def warn_if_expiring() -> None:
        expires = settings.credential_expires
        if warned or expires is None:
            return
        left = _expiry_moment(expires) - read_clock()
        if left >= GRANT_WARNING:
            return
        warned.append(True)
        if left <= 0:
            log.error(
                "The API token of connection %r expired on %s (credential_expires): Atlassian refuses it. "
                "Create a new scoped API token at %s and put it in the connection's Password.",
                settings.conn_id,
                expiry_text(expires),
                API_TOKENS_PAGE,
            )
        else:
            log.warning(
                "The API token of connection %r expires on %s (%.0f days left). Create a new scoped API "
                "token at %s, put it in the connection's Password and its expiry in credential_expires.",
                settings.conn_id,
                expiry_text(expires),
                left / 86400,
                API_TOKENS_PAGE,
            )

    basic = BasicAuthorization(
        settings.client_id,
        settings.client_secret,
        on_rejected=lambda: api_token_refused(settings, clock=clock),
        on_use=warn_if_expiring,
    )
    for secret in basic.secrets:
        on_secret(secret)
    return basic


def tenant_cloud_id(session: requests.Session, *, site_url: str, timeout: float) -> str:
    """The site's cloud id from ``<site>/_edge/tenant_info`` (``{"cloudId": ...}``; no credentials are sent).

    :raises ConfluenceConfigError: when the site gives no cloud id (the message says to set the ``cloud_id`` extra).
    """
    url = f"{site_url.rstrip('/')}/_edge/tenant_info"
    fix = (
        "Check the Host (the site URL, https://your-site.atlassian.net), or set the cloud_id extra (the cloudId "
        f"that {url} shows in a browser)."
    )
    try:
        response = session.get(url, headers={"Accept": "application/json"}, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        raise ConfluenceConfigError(f"{url} could not be reached ({type(exc).__name__}). {fix}") from None
    try:
        payload = response.json() if response.status_code == 200 else None
    except (ValueError, RecursionError):
        payload = None
    cloud_id = payload.get("cloudId") if isinstance(payload, dict) else None
    if not isinstance(cloud_id, str) or not cloud_id.strip() or "/" in cloud_id:
        raise ConfluenceConfigError(f"{url} answered {response.status_code} without a usable cloudId. {fix}")
    return cloud_id.strip()
