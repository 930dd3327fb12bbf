"""Which store keeps a connection's token state in this process, and why.

``state_store=auto`` (the default) needs no configuration on either major version, and every process of a
deployment reaches the SAME state, so there is one current refresh token:

* **the connection itself**: its ``extra`` in the metadata database, locked with ``SELECT ... FOR UPDATE`` on its
  row for the whole refresh (:class:`~airflow_provider_confluence.auth.stores.connection.ConnectionTokenStore`);
* for a connection from an environment variable or a secrets backend, which has no row to write: the Variable
  ``confluence_oauth_token_state__<conn_id>``, locked with ``SELECT ... FOR UPDATE`` on the Variable's row
  (:class:`VariableRowTokenStore`).

Processes that may use the ORM (Airflow 2.11 workers; the Airflow 3 API server, scheduler, CLI and in-process
``dag.test()``) use that store directly. Airflow 3 task workers and the triggerer, whose ORM is blocked, ask the
token broker in the API server (:class:`~airflow_provider_confluence.auth.broker.client.BrokerTokenSource`), which uses the
same store (:func:`uses_broker`).

Chosen explicitly only: ``state_store=variable`` (or, on Airflow 3, ``[confluence] token_broker = False``) keeps
the state in the Variable under a HOST file lock: safe only while every process that uses the connection runs on
one host, and every process that uses it says so in a warning. ``state_store=memory`` is for tests.
"""

from __future__ import annotations

import logging

from airflow_provider_confluence.auth.broker.client import endpoint_url
from airflow_provider_confluence.auth.stores.connection import (
    ConnectionTokenStore,
    _ConnectionTransaction,
    connection_row_exists,
)
from airflow_provider_confluence.auth.stores.support import VARIABLE_PREFIX, fingerprint, host_lock, variable_key
from airflow_provider_confluence.auth.stores.variable import VariableRowTokenStore, VariableTokenStore
from airflow_provider_confluence.auth.token_codec import WRITTEN_FINGERPRINT
from airflow_provider_confluence.auth.tokens import MemoryTokenStore, TokenState, TokenStore
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.version_compat import TASKS_MAY_USE_ORM, orm_available

log = logging.getLogger(__name__)

__all__ = [
    "BROKER_OPTION",
    "BROKER_SECTION",
    "VARIABLE_PREFIX",
    "WRITTEN_FINGERPRINT",
    "ConnectionTokenStore",
    "VariableRowTokenStore",
    "VariableTokenStore",
    "_ConnectionTransaction",
    "broker_configured",
    "broker_endpoint",
    "choose_token_store",
    "connection_row_exists",
    "fingerprint",
    "host_lock",
    "keeps_tokens_in_row",
    "row_store",
    "uses_broker",
]
#: ``[confluence] token_broker`` (``AIRFLOW__CONFLUENCE__TOKEN_BROKER``, default True): Airflow 3 task workers
#: get their tokens from the broker in the API server. False falls back to the host-locked Variable store.
BROKER_SECTION, BROKER_OPTION = "confluence", "token_broker"


def broker_configured() -> bool:
    """``[confluence] token_broker`` in Airflow's configuration (default True)."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean(BROKER_SECTION, BROKER_OPTION, fallback=True))


def keeps_tokens_in_row(settings: ConnectionSettings) -> bool:
    """True when the connection's state lives in a locked row (:func:`row_store`): the rule for ``auto``,
    ``connection`` and ``broker``, unless an Airflow 3 deployment turned the broker off. The broker serves
    exactly these connections. Only ``oauth2_3lo`` has tokens to keep: service accounts and API tokens never
    touch a store or the broker."""
    if not settings.uses_refresh_token or settings.token_store in ("variable", "memory"):
        return False
    return TASKS_MAY_USE_ORM or broker_configured()


def uses_broker(settings: ConnectionSettings) -> bool:
    """True when this process must ask the API server's broker: the state is in a row, and the ORM is blocked."""
    return keeps_tokens_in_row(settings) and not orm_available()


def row_store(settings: ConnectionSettings) -> TokenStore:
    """The connection's row, or, for a connection from an env var or secrets backend, its Variable's row."""
    if connection_row_exists(settings.conn_id):
        return ConnectionTokenStore(settings.conn_id)
    log.info(
        "Connection %r comes from an environment variable or a secrets backend, which the provider cannot "
        "write: its rotated tokens are kept in Variable %r, locked by its row.",
        settings.conn_id,
        variable_key(settings.conn_id),
    )
    return VariableRowTokenStore(settings.conn_id, settings.refresh_token)


def broker_endpoint(settings: ConnectionSettings) -> str:
    """The broker's URL: the ``broker_url`` extra, else derived from ``[core] execution_api_server_url``."""
    from airflow.providers.common.compat.sdk import conf

    return endpoint_url(
        override=settings.broker_url,
        execution_api_server_url=conf.get("core", "execution_api_server_url", fallback=None),
        api_base_url=conf.get("api", "base_url", fallback=None),
    )


def choose_token_store(settings: ConnectionSettings) -> TokenStore:
    """The store of this connection in a process that may use the metadata database (see the module's text).

    :raises ConfluenceConfigError: this process must ask the broker (:func:`uses_broker`), or
        ``state_store=connection`` was asked for a connection that has no row.
    """
    conn_id = settings.conn_id
    wanted = settings.token_store
    if wanted == "memory":
        return MemoryTokenStore(TokenState(refresh_token=settings.refresh_token))
    if not keeps_tokens_in_row(settings):
        why = "state_store=variable" if wanted == "variable" else f"[{BROKER_SECTION}] {BROKER_OPTION} = False"
        log.warning(
            "Connection %r keeps its rotated tokens in Variable %r under a host file lock (%s). That is safe only "
            "while every process that uses the connection runs on ONE host: two hosts can redeem the same refresh "
            "token, which revokes the grant. Remove the setting to keep the tokens in the connection.",
            conn_id,
            variable_key(conn_id),
            why,
        )
        return VariableTokenStore(conn_id, settings.refresh_token)
    if not orm_available():
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} keeps its tokens in the metadata database, and this process cannot use it: it "
            "must ask the token broker (BrokerTokenSource, as ConfluenceOAuthHook does)."
        )
    if wanted == "connection" and not connection_row_exists(conn_id):
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} comes from an environment variable or a secrets backend, so it has no row "
            "in the metadata database to write rotated tokens into (a row would be shadowed by the backend). "
            "Set state_store to auto, or create the connection in Admin -> Connections."
        )
    return row_store(settings)
