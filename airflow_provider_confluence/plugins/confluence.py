"""``ConfluencePlugin``: registered through the ``airflow.plugins`` entry point of this distribution.

On Airflow 3 it mounts a FastAPI app at ``/confluence-oauth`` in the API server (:mod:`.app`: the token broker,
and the routers added beside it). Every Airflow process loads plugins, task workers included, so the app is
built only when Airflow asks for ``fastapi_apps`` (the API server, ``airflow plugins``): importing this module
imports neither FastAPI nor the provider's HTTP stack.

Its ``macros`` (:mod:`airflow_provider_confluence.macros`) work in the templates of every task, on both Airflow
versions: ``{{ macros.confluence.access_token('confluence_default') }}``.

On Airflow 2.11, which has no API server, ``fastapi_apps`` is empty and Airflow 2 never reads it: the plugin
registers nothing there (its import needs nothing that Airflow 2 lacks).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

from airflow_provider_confluence.macros import access_token, authorization_header
from airflow_provider_confluence.version_compat import PLUGINS_SERVE_FASTAPI_APPS

URL_PREFIX = (
    "/confluence-oauth"  # the same as airflow_provider_confluence.auth.broker.client.URL_PREFIX (not imported: cheap)
)


class ConfluencePlugin(AirflowPlugin):
    """The Confluence provider's plugin: the token broker and consent app in the Airflow 3 API server, and the
    status page in the UI's Admin menu."""

    name = "confluence"
    #: ``{{ macros.confluence.access_token('confluence_default') }}`` and
    #: ``{{ macros.confluence.authorization_header('confluence_default') }}`` in templates (Airflow 2.11 and 3).
    macros = [access_token, authorization_header]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]  # lazy: see the module docstring
        """The app mounted at ``/confluence-oauth`` (Airflow 3 only), built on first use."""
        if not PLUGINS_SERVE_FASTAPI_APPS:
            return []
        from airflow_provider_confluence.plugins.app import get_app

        return [{"app": get_app(), "url_prefix": URL_PREFIX, "name": "Confluence OAuth"}]

    @property
    def external_views(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The status page of every ``confluence_oauth`` connection, under Admin in the Airflow 3 UI.

        It opens as its own page, not in the UI's frame (no ``url_route``): the frame's sandbox forbids the
        top-level navigation that the Connect button starts towards Atlassian's consent screen.
        """
        if not PLUGINS_SERVE_FASTAPI_APPS:
            return []
        return [
            {
                "name": "Confluence OAuth",
                "href": f"{URL_PREFIX}/status",
                "destination": "nav",
                "category": "admin",
            }
        ]
