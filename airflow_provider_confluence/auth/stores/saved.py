"""The grants of the saved ``confluence_oauth`` connections, read from their stores for the Test button.

Only a process that may use the metadata database reads them (the API server, the Airflow 2 webserver). Every
read is lock-free and changes nothing: a connection row (its extra, and the fingerprints of the refresh tokens its
rotation journal retired), or, for a connection from an environment variable or a secrets backend, the Variable
that the row store keeps its state in (``confluence_oauth_token_state__<conn_id>``, or its name before 0.2.0).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_confluence.auth.live_check import SavedGrant
from airflow_provider_confluence.auth.stores.connection import row_state
from airflow_provider_confluence.auth.stores.journal import connection_binding, read_journal
from airflow_provider_confluence.auth.stores.support import LEGACY_VARIABLE_PREFIX, VARIABLE_PREFIX, fingerprint
from airflow_provider_confluence.auth.stores.variable import VariableRowTokenStore
from airflow_provider_confluence.config.deployment import connection_settings
from airflow_provider_confluence.exceptions import ConfluenceError
from airflow_provider_confluence.get_provider_info import CONN_TYPE
from airflow_provider_confluence.version_compat import create_session, get_connection

log = logging.getLogger(__name__)


def _lineage(*tokens: str | None, retired: tuple[str, ...] = ()) -> frozenset[str]:
    return frozenset({fp for fp in (fingerprint(token) for token in tokens) if fp} | set(retired))


def saved_grants() -> list[SavedGrant]:
    """Every saved grant this process can read; connections whose settings do not parse are left out."""
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable

    grants: list[SavedGrant] = []
    with create_session() as session:
        rows = session.query(Connection).filter(Connection.conn_type == CONN_TYPE).all()
        row_ids = {row.conn_id for row in rows}
        for row in rows:
            try:
                settings = connection_settings(row.conn_id, row)
                state = row_state(row)
            except (ConfluenceError, ValueError):
                continue
            journal = read_journal(session, row.conn_id)
            retired = journal.retired if journal and journal.binding == connection_binding(row) else ()
            grants.append(
                SavedGrant(
                    row.conn_id, settings, state, _lineage(state.refresh_token, settings.refresh_token, retired=retired)
                )
            )
        names: list[Any] = (
            session.query(Variable.key)
            .filter(Variable.key.like(f"{VARIABLE_PREFIX}%") | Variable.key.like(f"{LEGACY_VARIABLE_PREFIX}%"))
            .all()
        )
    for (key,) in names:
        prefix = VARIABLE_PREFIX if key.startswith(VARIABLE_PREFIX) else LEGACY_VARIABLE_PREFIX
        conn_id = key[len(prefix) :]
        if conn_id in row_ids or any(grant.conn_id == conn_id for grant in grants):
            continue
        grant = _variable_grant(conn_id)
        if grant is not None:
            grants.append(grant)
    return grants


def _variable_grant(conn_id: str) -> SavedGrant | None:
    """The grant of a connection from an environment variable or a secrets backend, kept in a Variable."""
    try:
        settings = connection_settings(conn_id, get_connection(conn_id))
        state = VariableRowTokenStore(conn_id, settings.refresh_token).load()
    except Exception:  # not a connection any more, or not this provider's: nothing to test with
        log.debug("Skipping the Variable store of %r: its connection cannot be read.", conn_id)
        return None
    return SavedGrant(conn_id, settings, state, _lineage(state.refresh_token, settings.refresh_token))
