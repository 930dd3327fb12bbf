"""The parts of :class:`~.confluence.ConfluenceOAuthHook` that differ by ``auth_type``, kept out of the hook module.

``oauth2_3lo`` keeps today's path (the rotation protocol over a store, or the token broker in an Airflow 3
worker); ``client_credentials`` and ``api_token`` never ask the broker and never touch a store
(:mod:`airflow_provider_confluence.auth.signin`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.manager import find_cloud_id
from airflow_provider_confluence.auth.service_account import ClientCredentialsTokens
from airflow_provider_confluence.auth.signin import expiry_text, tenant_cloud_id
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.config.signin import API_TOKEN, CLIENT_CREDENTIALS
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError, ConfluenceScopeError

if TYPE_CHECKING:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

NO_BEARER_TOKEN = (
    "Connection {conn_id!r} has auth_type=api_token, which has no bearer access token: every request carries HTTP "
    "Basic with the e-mail and API token. Use macros.confluence.authorization_header({conn_id!r}) as the whole "
    "Authorization header instead, or a connection of auth_type oauth2_3lo or client_credentials."
)


def discover_cloud_id(hook: ConfluenceOAuthHook) -> str:
    """The site's cloud id when the ``cloud_id`` extra is empty: accessible-resources with a bearer token (3LO, kept
    in the token state; service accounts, kept in this process), or ``<site>/_edge/tenant_info`` (API tokens)."""
    settings = hook.settings
    if settings.auth_type == API_TOKEN:
        return tenant_cloud_id(hook.session, site_url=settings.site_url, timeout=settings.timeout)
    discover = partial(find_cloud_id, settings, hook.session)
    manager = hook.token_manager
    if isinstance(manager, ClientCredentialsTokens):
        return manager.get_cloud_id(settings.site_host, discover)
    return manager.get_cloud_id(discover)


def test_connection(hook: ConfluenceOAuthHook) -> tuple[bool, str]:
    """A live check of a ``client_credentials`` or ``api_token`` connection, which uses nothing up (the hook's
    ``test_connection`` checks ``oauth2_3lo`` connections with the saved grant, never a refresh)."""
    try:
        if hook.settings.auth_type == CLIENT_CREDENTIALS:
            return _check_service_account(hook)
        return _check_api_token(hook)
    except ConfluenceError as exc:
        return False, exc.message


def _check_service_account(hook: ConfluenceOAuthHook) -> tuple[bool, str]:
    """A new token (nothing rotates, so a fetch burns nothing), then the site among the sites it reaches."""
    settings = hook.settings
    manager = hook.token_manager
    assert isinstance(manager, ClientCredentialsTokens)
    token = manager.fetch_new()
    resources = oauth.accessible_resources(
        hook.session, api_url=settings.api_url, access_token=token, timeout=settings.timeout
    )
    cloud_id = oauth.find_cloud_id(resources, settings.site_host)
    if settings.cloud_id and settings.cloud_id != cloud_id:
        return False, (
            f"The service account reaches {settings.site_url} as cloud id {cloud_id}, but the cloud_id "
            f"extra says {settings.cloud_id}: empty the extra, or fix it."
        )
    return True, f"Connected to {settings.site_url} (cloud id {cloud_id}) as a service account (client credentials)."


def _check_api_token(hook: ConfluenceOAuthHook) -> tuple[bool, str]:
    """The cloud id, then one cheap read through the gateway with the e-mail and token (an API token never
    changes when used)."""
    settings = hook.settings
    client: ConfluenceClient = hook.get_conn()
    cloud_id = client.cloud_id
    note = ""
    try:
        client.request("GET", "/wiki/api/v2/spaces", params={"limit": 1})
    except ConfluenceScopeError:
        note = (
            " The e-mail and token were accepted, but the token lacks read:space:confluence; give it the "
            "scopes your tasks need."
        )
    expires = settings.credential_expires
    when = f" The token expires on {expiry_text(expires)}." if expires else ""
    return True, f"Connected to {settings.site_url} (cloud id {cloud_id}) with an API token.{when}{note}"


def no_bearer_token(conn_id: str) -> ConfluenceConfigError:
    """The error of asking an ``api_token`` connection for an access token."""
    return ConfluenceConfigError(NO_BEARER_TOKEN.format(conn_id=conn_id))
