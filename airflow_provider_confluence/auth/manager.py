"""A connection's settings turned into its rotation protocol: the one place that wires refresh and cloud-id lookup.

Used by the hook and by the token broker in the API server, so both refresh the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.tokens import TokenManager, TokenStore
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.version_compat import mask_secret

__all__ = ["find_cloud_id", "token_manager_for"]


def token_manager_for(
    settings: ConnectionSettings,
    store: TokenStore,
    *,
    session: requests.Session,
    on_secret: Callable[[str], None] = mask_secret,
) -> TokenManager:
    """The rotation protocol of a connection over ``store``.

    :param on_secret: given every token the manager hands out or stores; by default ``mask_secret``, which
        registers it with the secrets maskers of this process for as long as it lives. The token broker passes
        its own (:mod:`airflow_provider_confluence.plugins.broker`): the API server must not keep every rotated
        token.
    """

    def refresh(refresh_token: str) -> oauth.TokenResponse:
        return oauth.refresh(
            session,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=refresh_token,
            timeout=settings.timeout,
        )

    return TokenManager(store=store, refresh=refresh, conn_id=settings.conn_id, on_secret=on_secret)


def find_cloud_id(settings: ConnectionSettings, session: requests.Session, access_token: str) -> str:
    """The cloud id of the connection's site, from accessible-resources (https://developer.atlassian.com/cloud/confluence/oauth-2-3lo-apps/#3-1-get-the-cloudid-for-your-site)."""
    resources = oauth.accessible_resources(
        session, api_url=settings.api_url, access_token=access_token, timeout=settings.timeout
    )
    return oauth.find_cloud_id(resources, settings.site_host)
