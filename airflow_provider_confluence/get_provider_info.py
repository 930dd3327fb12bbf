"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point.

Airflow calls :func:`get_provider_info` while it lists providers, so this module imports nothing from
Airflow and nothing heavy. ``conn-fields`` and ``ui-field-behaviour`` describe the connection form for the
Airflow 3 UI without importing the hook; Airflow 2 reads the hook's ``get_connection_form_widgets``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_confluence import __version__

HOOK_CLASS = "airflow_provider_confluence.hooks.confluence.ConfluenceOAuthHook"
#: The connection type of this provider: the one place it is spelled out.
CONN_TYPE = "confluence_oauth"
#: The name of the connection type in the connection form.
HOOK_NAME = "Confluence Cloud (OAuth 2.0)"
LINK_CLASS = "airflow_provider_confluence.links.confluence.ConfluencePageLink"
NOTIFIER_CLASS = "airflow_provider_confluence.notifications.confluence.ConfluenceNotifier"
#: The ``confluence://<site host>/pages/<id>`` asset URIs and their normaliser: ``asset-uris`` is read by Airflow 3,
#: ``dataset-uris`` by Airflow 2 (each line ignores the other's key).
ASSET_URIS = [{"schemes": ["confluence"], "handler": "airflow_provider_confluence.assets.uri.sanitize_uri"}]

#: The values of the ``auth_type`` extra and how the form shows them (``config/signin.py`` parses them).
AUTH_TYPE_CHOICES: dict[str, str] = {
    "oauth2_3lo": "OAuth 2.0 app (3LO): a person authorizes once; refresh token rotated (default)",
    "client_credentials": "Service account (OAuth 2.0 client credentials): nobody consents; nothing rotates",
    "api_token": "Scoped API token with the account's e-mail (HTTP Basic); expires within a year",
}
AUTH_TYPE_HELP = (
    "How to sign in. oauth2_3lo (default): Login/Password are an OAuth app's client ID/secret, plus the "
    "refresh_token. client_credentials: a service account's OAuth 2.0 credential (client ID/secret); no refresh "
    "token. api_token: Login is the account's e-mail, Password a scoped API token."
)

#: The extras of the connection form: (name, label, placeholder, description, secret). A secret's name contains a
#: word Airflow treats as sensitive (so Airflow masks it); every other name contains none ("token", "secret",
#: "password", ... matched as substrings), or the form would show its value as ***.
CONNECTION_EXTRAS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("auth_type", "Sign-in type", "oauth2_3lo", AUTH_TYPE_HELP, False),
    (
        "refresh_token",
        "Refresh token",
        "",
        "oauth2_3lo only: from the first authorization; rotated and saved by the provider.",
        True,
    ),
    (
        "scopes",
        "Scopes",
        "offline_access read:space:confluence read:page:confluence write:page:confluence",
        "oauth2_3lo: space- or comma-separated; must include offline_access and match the app's scopes. "
        "Service accounts and API tokens have their scopes fixed at creation.",
        False,
    ),
    (
        "credential_expires",
        "API token expiry date",
        "YYYY-MM-DD",
        "api_token only: the token's expiry date; the provider warns 30 days ahead.",
        False,
    ),
    (
        "auth_url",
        "Authorization URL",
        "https://auth.atlassian.com/authorize",
        "Leave empty for Atlassian's: https://auth.atlassian.com/authorize",
        False,
    ),
    (
        "grant_url",
        "Token endpoint URL",
        "https://auth.atlassian.com/oauth/token",
        "Leave empty for Atlassian's: https://auth.atlassian.com/oauth/token (formerly the token_url extra)",
        False,
    ),
    (
        "api_url",
        "API gateway URL",
        "https://api.atlassian.com",
        "Leave empty for Atlassian's: https://api.atlassian.com",
        False,
    ),
    (
        "redirect_uri",
        "Callback URL",
        "https://airflow.example.com/confluence-oauth/callback",
        "Must equal the callback URL registered in the developer console.",
        False,
    ),
    (
        "cloud_id",
        "Cloud ID",
        "found from the site URL when empty",
        "Leave empty; it is looked up (accessible-resources, or <site>/_edge/tenant_info for api_token) and cached.",
        False,
    ),
    (
        "state_store",
        "Token state store",
        "auto",
        "auto (default): the connection itself; Airflow 3 tasks reach it through the API server. variable: one host "
        "only. (Formerly the token_store extra.)",
        False,
    ),
    ("broker_url", "Broker URL", "derived from the execution API URL", "Airflow 3 token broker; leave empty.", False),
    ("timeout", "Timeout (seconds)", "30", "Per HTTP request; default 30.", False),
)

HIDDEN_FIELDS = ["schema", "port"]
RELABELING = {
    "host": "Confluence site URL",
    "login": "Client ID (or e-mail for api_token)",
    "password": "Client secret (or API token for api_token)",
}
PLACEHOLDERS = {
    "host": "https://your-site.atlassian.net",
    "login": "client ID of the app or service account; the account's e-mail for api_token",
    "password": "client secret; the scoped API token for api_token",
}
#: JSON-schema keywords of some extras in the Airflow 3 form: a select for auth_type, a date picker for the expiry.
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "auth_type": {"default": "oauth2_3lo", "enum": list(AUTH_TYPE_CHOICES), "values_display": AUTH_TYPE_CHOICES},
    "credential_expires": {"format": "date"},
}


def _conn_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, label, _placeholder, description, secret in CONNECTION_EXTRAS:
        schema: dict[str, Any] = {"type": ["string", "null"], **FIELD_SCHEMAS.get(name, {})}
        if secret:
            schema["format"] = "password"
        fields[name] = {"label": label, "schema": schema, "description": description}
    return fields


#: The deployment settings of the ``[confluence]`` section (``airflow config list`` shows them with defaults).
CONFIG: dict[str, Any] = {
    "confluence": {
        "description": "Deployment settings of airflow-provider-confluence.",
        "options": {
            "token_broker": {
                "description": "Airflow 3 task workers and the triggerer get their access tokens from the token "
                "broker in the API server, which keeps the rotated refresh token in the connection. False keeps "
                "it in a Variable under a host file lock instead: safe only when every process runs on one host.",
                "version_added": "0.2.0",
                "type": "boolean",
                "example": None,
                "default": "True",
            },
            "allowed_endpoint_hosts": {
                "description": "Hosts besides auth.atlassian.com and api.atlassian.com that a connection's auth_url, "
                "grant_url and api_url may name, so that the client secret and tokens may be sent there: "
                "comma-separated host (any port) or host:port entries; plain http only to a listed loopback host. "
                "No connection field can widen this list. Leave it empty in production.",
                "version_added": "0.2.0",
                "type": "string",
                "example": "auth-proxy.example.com, 127.0.0.1:8765",
                "default": "",
            },
            "attachment_roots": {
                "description": "Folders whose files ConfluenceUploadAttachmentOperator(file_path=...) may upload: "
                "comma-separated absolute paths, checked after symlinks and '..' are resolved. Empty: any file the "
                "worker can read.",
                "version_added": "0.2.0",
                "type": "string",
                "example": "/srv/airflow/reports",
                "default": "",
            },
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager."""
    return {
        "package-name": "airflow-provider-confluence",
        "name": "Confluence Cloud (OAuth 2.0)",
        "description": "Confluence Cloud over Atlassian OAuth 2.0 (3LO, with rotated refresh tokens kept safe), "
        "service accounts (client credentials) or scoped API tokens.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Confluence Cloud",
                "external-doc-url": "https://developer.atlassian.com/cloud/confluence/rest/v2/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {"integration-name": "Confluence Cloud", "python-modules": ["airflow_provider_confluence.hooks.confluence"]}
        ],
        "operators": [
            {
                "integration-name": "Confluence Cloud",
                "python-modules": ["airflow_provider_confluence.operators.confluence"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Confluence Cloud",
                "python-modules": ["airflow_provider_confluence.sensors.confluence"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Confluence Cloud",
                "python-modules": [
                    "airflow_provider_confluence.triggers.confluence",
                    "airflow_provider_confluence.triggers.rate_limit",
                ],
            }
        ],
        "extra-links": [LINK_CLASS],
        "notifications": [NOTIFIER_CLASS],
        "asset-uris": ASSET_URIS,
        "dataset-uris": ASSET_URIS,
        "config": CONFIG,
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS,
                "hook-name": HOOK_NAME,
                "conn-fields": _conn_fields(),
                "ui-field-behaviour": {
                    "hidden-fields": HIDDEN_FIELDS,
                    "relabeling": RELABELING,
                    "placeholders": {
                        **PLACEHOLDERS,
                        **{name: placeholder for name, _l, placeholder, _d, _s in CONNECTION_EXTRAS if placeholder},
                    },
                },
            }
        ],
    }
