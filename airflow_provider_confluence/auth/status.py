"""Facts about ``confluence_oauth`` connections, for the status page and ``airflow-confluence status``.

Runs where the ORM may be used (the API server, the command line) on Airflow 2.11 and 3.x, and imports no
web framework. A :class:`ConnectionStatus` holds no token: only a fingerprint of the refresh token.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

from airflow_provider_confluence.auth.stores.choice import (
    ConnectionTokenStore,
    VariableTokenStore,
    choose_token_store,
    fingerprint,
)
from airflow_provider_confluence.auth.token_codec import state_from_extra
from airflow_provider_confluence.auth.tokens import GRANT_LIFETIME, TokenState, TokenStore
from airflow_provider_confluence.config.connection import ConnectionSettings, parse_extra
from airflow_provider_confluence.config.deployment import CONN_TYPE, NotAConfluenceConnection, connection_settings
from airflow_provider_confluence.exceptions import ConfluenceError
from airflow_provider_confluence.version_compat import create_session, get_connection_in_server

log = logging.getLogger(__name__)

DATABASE = "database"
ENVIRONMENT = "environment variable"
_ENV_PREFIX = "AIRFLOW_CONN_"
_PERSISTED_STORES = ("connection", "variable")


@dataclass(frozen=True)
class ConnectionStatus:
    """What a person needs to know about one connection's grant.

    :param conn_id: the connection id.
    :param source: ``database``, ``environment variable`` or ``secrets backend (<class>)``.
    :param site: the Confluence site URL, when the settings are readable.
    :param store: the token store that ``state_store`` selects in this process.
    :param refresh_token_fingerprint: a one-way fingerprint of the current refresh token, None when there is none.
    :param access_token_expires_at: when the stored access token expires (epoch seconds).
    :param rotated_at: the last refresh (epoch seconds).
    :param grant_issued_at: the consent, or the first refresh seen (epoch seconds).
    :param scope: the granted scopes.
    :param problem: why the connection cannot work as it is, when it cannot.
    :param auth_type: how the connection signs in; only ``oauth2_3lo`` has a consent and a grant.
    """

    conn_id: str
    source: str
    site: str | None = None
    store: str | None = None
    refresh_token_fingerprint: str | None = None
    access_token_expires_at: float | None = None
    rotated_at: float | None = None
    grant_issued_at: float | None = None
    scope: str | None = None
    problem: str | None = None
    auth_type: str = "oauth2_3lo"

    @property
    def needs_consent(self) -> bool:
        """True for ``oauth2_3lo``: a person's consent gives the grant (service accounts and API tokens need none)."""
        return self.auth_type == "oauth2_3lo"

    @property
    def connected(self) -> bool:
        """True when a refresh token is stored."""
        return self.refresh_token_fingerprint is not None

    @property
    def can_write_consent(self) -> bool:
        """True when a consent can be written into the connection (it is the row Airflow reads)."""
        return self.source == DATABASE

    def days_left(self, now: float | None = None) -> float | None:
        """Days before Atlassian's 365-day limit ends the grant, when its start is known."""
        if self.grant_issued_at is None:
            return None
        return (self.grant_issued_at + GRANT_LIFETIME - (time.time() if now is None else now)) / 86400


def format_time(epoch: float | None) -> str:
    """``YYYY-MM-DD HH:MM UTC``, or ``-``."""
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def format_days(days: float | None) -> str:
    """Whole days left, ``expired`` or ``unknown``."""
    if days is None:
        return "unknown"
    return "expired" if days <= 0 else f"{int(days)}"


def connection_source(conn_id: str) -> str | None:
    """Where Airflow reads this connection from (the first secrets backend that has it), None when nowhere.

    A connection found in an environment variable or a secrets backend before the metadata database shadows any
    row: writing a consent into the row would change nothing Airflow reads.
    """
    from airflow.configuration import ensure_secrets_loaded

    for backend in ensure_secrets_loaded():
        try:
            found = backend.get_connection(conn_id=conn_id)
        except Exception:  # a backend that fails is skipped, as Airflow's own lookup does
            log.debug("Secrets backend %s could not be asked for %r.", type(backend).__name__, conn_id)
            continue
        if found is not None:
            name = type(backend).__name__
            if name == "MetastoreBackend":
                return DATABASE
            if name == "EnvironmentVariablesBackend":
                return ENVIRONMENT
            return f"secrets backend ({name})"
    return None


def _database_conn_ids() -> list[str]:
    from airflow.models.connection import Connection

    with create_session() as session:
        rows = session.query(Connection.conn_id).filter(Connection.conn_type == CONN_TYPE).all()
    return [row[0] for row in rows]


def _environment_conn_ids() -> list[str]:
    found = []
    for key, value in os.environ.items():
        if not key.startswith(_ENV_PREFIX) or not value:
            continue
        text = value.strip()
        is_ours = text.startswith(CONN_TYPE.replace("_", "-") + "://") or text.startswith(CONN_TYPE + "://")
        if text.startswith("{"):
            try:
                is_ours = json.loads(text).get("conn_type") == CONN_TYPE
            except (ValueError, AttributeError):
                is_ours = False
        if is_ours:
            found.append(key[len(_ENV_PREFIX) :].lower())
    return found


def list_conn_ids() -> list[str]:
    """Every ``confluence_oauth`` connection in the metadata database or in ``AIRFLOW_CONN_*`` variables.

    Connections in other secrets backends cannot be listed; ask for them by id.
    """
    return sorted(set(_database_conn_ids()) | set(_environment_conn_ids()))


def _stored_state(store: TokenStore, settings: ConnectionSettings, source: str) -> TokenState:
    """The state the selected store holds, read without a lock and without any network call."""
    if store.name in _PERSISTED_STORES:
        return store.load()
    if source == DATABASE:  # memory (nothing persisted), or a store that delegates to another process
        return ConnectionTokenStore(settings.conn_id).load()
    return VariableTokenStore(settings.conn_id, settings.refresh_token).load()


def _store_label(store: TokenStore, settings: ConnectionSettings) -> str:
    from airflow_provider_confluence.auth.stores.choice import keeps_tokens_in_row
    from airflow_provider_confluence.version_compat import TASKS_MAY_USE_ORM

    if not TASKS_MAY_USE_ORM and keeps_tokens_in_row(settings):
        return f"{store.name} (token broker)"
    return store.name


def connection_status(conn_id: str) -> ConnectionStatus | None:
    """The facts about one connection, None when Airflow cannot find it.

    A connection of another type, or with unusable settings, yields a status whose ``problem`` says so.
    """
    source = connection_source(conn_id)
    if source is None:
        return None
    try:
        conn = get_connection_in_server(conn_id)  # the status page runs in the API server: no masker growth
    except Exception as exc:  # AirflowNotFoundException, or a backend failing now
        return ConnectionStatus(conn_id, source, problem=f"Airflow could not read it ({type(exc).__name__}).")
    try:  # read without extra_dejson, which registers the extra's tokens with the masker for good
        extra = parse_extra(conn_id, conn.get_extra())
    except ConfluenceError:
        extra = {}
    try:
        settings = connection_settings(conn_id, conn)
        if not settings.uses_refresh_token:  # service accounts and API tokens keep nothing anywhere
            return ConnectionStatus(
                conn_id,
                source,
                site=settings.site_url,
                store=f"none ({settings.auth_type})",
                auth_type=settings.auth_type,
            )
        store = choose_token_store(settings)
        label = _store_label(store, settings)
        state = _stored_state(store, settings, source)
    except NotAConfluenceConnection as exc:
        return ConnectionStatus(conn_id, source, problem=exc.message)
    except ConfluenceError as exc:
        return ConnectionStatus(conn_id, source, site=conn.host or None, problem=exc.message)
    fallback = state_from_extra(extra)  # trusted only when it describes the refresh token beside it
    grant_issued_at = state.grant_issued_at
    if grant_issued_at is None and fallback.refresh_token == state.refresh_token:
        grant_issued_at = fallback.grant_issued_at
    problem = None if state.refresh_token else "No refresh token yet: authorize the app (Connect)."
    return ConnectionStatus(
        conn_id=conn_id,
        source=source,
        site=settings.site_url,
        store=label,
        refresh_token_fingerprint=fingerprint(state.refresh_token),
        access_token_expires_at=state.expires_at if state.access_token else None,
        rotated_at=state.rotated_at,
        grant_issued_at=grant_issued_at,
        scope=state.scope or fallback.scope,
        problem=problem,
    )


def all_statuses() -> list[ConnectionStatus]:
    """The status of every listable ``confluence_oauth`` connection, by connection id."""
    statuses = (connection_status(conn_id) for conn_id in list_conn_ids())
    return [status for status in statuses if status is not None]
