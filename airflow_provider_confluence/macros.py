"""Template macros of the Confluence provider, exposed by its plugin (named ``confluence``).

``{{ macros.confluence.access_token('confluence_default') }}`` renders a valid Atlassian access token, so that
any operator (``HttpOperator``, ``BashOperator``, ...) can call a Confluence endpoint this provider does not
wrap. The token is registered with ``mask_secret`` before it is returned, so task logs and the stored rendered
fields (Rendered Template in the UI) show ``***`` in its place.

How Airflow finds it: plugin macros become ``airflow.macros.<plugin name>`` on Airflow 2
(``plugins_manager.integrate_macros_plugins``, called when the template context is built), and
``airflow.sdk.execution_time.macros.<plugin name>`` on Airflow 3, whose task runner calls
``airflow.sdk.plugins_manager.integrate_macros_plugins`` before it renders templates.

Importing this module imports neither the hook nor ``requests``: the plugin module imports it in every Airflow
process.
"""

from __future__ import annotations

__all__ = ["access_token", "authorization_header"]


def access_token(conn_id: str = "confluence_default") -> str:
    """A valid access token of a ``confluence_oauth`` connection, refreshed (and the rotation saved) when due.

    Use it as a bearer token against the gateway, ``https://api.atlassian.com/ex/confluence/<cloud id>``:
    ``Authorization: Bearer {{ macros.confluence.access_token('confluence_default') }}``. It is masked in logs.
    ``oauth2_3lo`` connections get their rotated token; ``client_credentials`` ones this process's service-account
    token. An ``api_token`` connection has no bearer token: this raises ``ConfluenceConfigError`` pointing to
    :func:`authorization_header`.

    :param conn_id: the ``confluence_oauth`` connection.
    """
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    from airflow_provider_confluence.version_compat import mask_secret

    token = ConfluenceOAuthHook(confluence_conn_id=conn_id).get_access_token()
    mask_secret(token)  # the hook masks every token it hands out; once more costs nothing and is explicit
    return token


def authorization_header(conn_id: str = "confluence_default") -> str:
    """The whole ``Authorization`` header value for the gateway, whatever the connection's ``auth_type``.

    ``Bearer <access token>`` (``oauth2_3lo``, ``client_credentials``) or ``Basic <base64 of e-mail:token>``
    (``api_token``): ``headers={"Authorization": "{{ macros.confluence.authorization_header('confluence_default') }}"}``.
    Its secret part is masked in logs and in the rendered fields.

    :param conn_id: the ``confluence_oauth`` connection.
    """
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    return ConfluenceOAuthHook(confluence_conn_id=conn_id).get_authorization_header()
