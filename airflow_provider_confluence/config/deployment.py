"""The deployment's own settings (Airflow's ``[confluence]`` section), and a connection's settings checked by them.

A connection can be edited by more people than the deployment's configuration: a setting that decides where
credentials may go, or which files a task may read, is therefore read here, from Airflow's configuration
(``airflow.cfg`` or ``AIRFLOW__CONFLUENCE__...`` environment variables of every Airflow process), and never from
a connection field. The Airflow-free modules (:mod:`.settings`, :mod:`.endpoints`) get the values as arguments.

* ``[confluence] allowed_endpoint_hosts`` (``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS``): hosts besides
  ``auth.atlassian.com`` and ``api.atlassian.com`` that a connection's ``auth_url``, ``grant_url`` and
  ``api_url`` may name (see :mod:`.endpoints`).
* ``[confluence] attachment_roots`` (``AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS``): the folders whose files the
  operators may upload (``file_path``) or write (``output_path`` of downloads and exports); see :mod:`.local_files`.

See Airflow's "Setting Configuration Options"
(https://airflow.apache.org/docs/apache-airflow/stable/howto/set-config.html).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_OPTION, SECTION
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.get_provider_info import CONN_TYPE, HOOK_NAME

__all__ = [
    "CONN_TYPE",
    "NotAConfluenceConnection",
    "allowed_endpoint_hosts",
    "attachment_roots",
    "config_value",
    "connection_settings",
]


class NotAConfluenceConnection(ConfluenceConfigError):
    """The connection exists, but is not a ``confluence_oauth`` connection."""


def config_value(option: str) -> str:
    """``[confluence] <option>`` of this process's Airflow configuration, empty when unset."""
    from airflow.providers.common.compat.sdk import conf

    return str(conf.get(SECTION, option, fallback="") or "")


def allowed_endpoint_hosts() -> str:
    """``[confluence] allowed_endpoint_hosts``, as configured (parsed by :class:`.endpoints.AllowedHosts`)."""
    return config_value(ALLOWED_HOSTS_OPTION)


def attachment_roots() -> str:
    """``[confluence] attachment_roots``, as configured (parsed by :func:`.local_files.parse_roots`)."""
    from airflow_provider_confluence.config.local_files import ATTACHMENT_ROOTS_OPTION

    return config_value(ATTACHMENT_ROOTS_OPTION)


def connection_settings(conn_id: str, conn: Any, *, any_type: bool = False) -> ConnectionSettings:
    """The checked settings of connection ``conn`` (an Airflow ``Connection``), under this deployment's settings.

    Every place that turns a connection into settings (the hook, the CLI, the status page, the consent flow, the
    token broker) calls this.

    :param any_type: read the fields of a connection of any type (the hook does: a connection defined without a
        type, such as a JSON secret, still works); otherwise it must be a ``confluence_oauth`` connection.
    :raises NotAConfluenceConnection: the connection has another type (and ``any_type`` is False).
    :raises ConfluenceConfigError: a field is missing or unusable, or an endpoint is not allowed.
    """
    if not any_type and conn.conn_type != CONN_TYPE:
        raise NotAConfluenceConnection(
            f"Connection {conn_id!r} is a {conn.conn_type!r} connection, not {CONN_TYPE}: give it the connection "
            f"type {HOOK_NAME!r} ({CONN_TYPE}), or name a connection of that type."
        )
    return ConnectionSettings.from_connection_fields(
        conn_id,
        host=conn.host,
        login=conn.login,
        password=conn.password,
        extra=conn.extra,
        allowed_endpoint_hosts=allowed_endpoint_hosts(),
    )
