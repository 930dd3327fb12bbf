"""The ``connection`` token store: the state in the connection's extra, locked with ``SELECT ... FOR UPDATE``.

Every save also records the rotation in the connection's :mod:`rotation journal
<airflow_provider_confluence.rotation_journal>`, in the same transaction, so that a stale copy of the connection
written back later (an old edit form, a backup) is recognised before its retired refresh token is redeemed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence._compat import create_session
from airflow_provider_confluence.exceptions import ConfluenceTokenStoreError
from airflow_provider_confluence.rotation_journal import (
    connection_binding,
    read_journal,
    record_rotation,
    recover_from_stale_copy,
)
from airflow_provider_confluence.store_support import (
    VARIABLE_PREFIX,
    fingerprint,
    private_session,
    row_lock_or_host_lock,
)
from airflow_provider_confluence.tokens import STATE_KEYS, TokenState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: The extra key holding the fingerprint of the refresh token the store saved last.
WRITTEN_FINGERPRINT = "refresh_token_fingerprint"


def _connection_model() -> Any:
    from airflow.models.connection import Connection

    return Connection


def connection_row_exists(conn_id: str) -> bool:
    """True when the connection is a row of the metadata database (not an env var or secrets backend)."""
    connection = _connection_model()
    with create_session() as session:
        return session.query(connection.id).filter(connection.conn_id == conn_id).first() is not None


def _state_of(extra: dict[str, Any]) -> TokenState:
    """The token state in a connection's extra.

    The store writes a fingerprint of each refresh token it saves. A refresh token that does not match it was
    pasted by a person after a new consent: the access token and grant times beside it belong to the old grant,
    so only the new refresh token (and the site's cloud id) are kept.
    """
    state = TokenState.from_mapping(extra)
    written = extra.get(WRITTEN_FINGERPRINT)
    if written and written != fingerprint(state.refresh_token):
        return TokenState(refresh_token=state.refresh_token, cloud_id=state.cloud_id)
    return state


def _extra_of(row: Any) -> dict[str, Any]:
    raw = row.get_extra()
    if not raw:
        return {}
    data = json.loads(raw)
    return data if isinstance(data, dict) else {}


class _ConnectionTransaction:
    def __init__(self, conn_id: str, session: Session, row: Any, state: TokenState) -> None:
        self._conn_id = conn_id
        self._session = session
        self._row = row
        self.state = state

    def save(self, state: TokenState) -> None:
        try:
            extra = _extra_of(self._row)
            for key in (*STATE_KEYS, WRITTEN_FINGERPRINT):
                extra.pop(key, None)
            extra.update(state.to_dict())
            extra[WRITTEN_FINGERPRINT] = fingerprint(state.refresh_token)
            self._row.set_extra(json.dumps(extra))
            record_rotation(self._session, self._conn_id, self.state, state, connection_binding(self._row))
            self._session.commit()
        except Exception as exc:
            self._session.rollback()
            raise ConfluenceTokenStoreError(
                f"Could not save the rotated token state into connection {self._conn_id!r} "
                f"({type(exc).__name__}); the new token was not used. Check the metadata database, then run the "
                "task again within 10 minutes so that Atlassian still accepts the previous refresh token."
            ) from None
        self.state = state


class ConnectionTokenStore:
    """Token state in the connection's extra, locked with ``SELECT ... FOR UPDATE`` on its row.

    On SQLite, which has no row locks, a host file lock is taken as well. A :meth:`load` inside a
    :meth:`transaction` of the same thread reads through the transaction's session (no second connection), and
    checks the rotation journal: what is read there is what gets redeemed.

    Tokens that the variable store rotated from the refresh token in the extra (seeded from it, and ahead of
    it) are adopted: switching a connection from the Variable to the row (enabling the broker on Airflow 3, or a
    worker's ``broker_fallback``) must continue the newest token, never redeem the superseded one in the row.
    """

    name = "connection"

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self._local = threading.local()

    def _query(self, session: Session) -> Any:
        connection = _connection_model()
        return session.query(connection).filter(connection.conn_id == self.conn_id)

    def load(self) -> TokenState:
        active = getattr(self._local, "session", None)
        if active is not None:
            row = self._query(active).populate_existing().one_or_none()
            return self._state(active, row, before_redeeming=True)
        with create_session() as session:
            return self._state(session, self._query(session).one_or_none())

    def _state(self, session: Session, row: Any, *, before_redeeming: bool = False) -> TokenState:
        """The row's state. Before a redeem (under the lock) a stale copy is replaced by the journal's state;
        a lock-free read skips that query: a stale access token only costs one refused call and a locked retry."""
        if row is None:
            return TokenState()
        state = _state_of(_extra_of(row))
        if before_redeeming:
            state = recover_from_stale_copy(read_journal(session, self.conn_id), state, self.conn_id,
                                            connection_binding(row))
        return adopt_variable_state(session, self.conn_id, state)

    @contextmanager
    def transaction(self) -> Iterator[_ConnectionTransaction]:
        with private_session() as session, row_lock_or_host_lock(session, f"connection:{self.conn_id}"):
            row = self._query(session).with_for_update().one_or_none()
            if row is None:
                raise ConfluenceTokenStoreError(
                    f"Connection {self.conn_id!r} is no longer in the metadata database; nothing was changed."
                )
            tx = _ConnectionTransaction(self.conn_id, session, row, self._state(session, row, before_redeeming=True))
            self._local.session = session
            try:
                yield tx
            finally:
                self._local.session = None


def adopt_variable_state(session: Session, conn_id: str, state: TokenState) -> TokenState:
    """``state`` (from the connection), or the Variable's newer state when it descends from ``state``'s token.

    The variable store records the fingerprint of the connection's refresh token it was seeded from; when that
    is the token in the connection and the Variable holds another one, the Variable rotated further.
    """
    from airflow.models.variable import Variable

    if not state.refresh_token:
        return state
    key = VARIABLE_PREFIX + conn_id
    row = session.query(Variable).filter(Variable.key == key).one_or_none()
    try:
        data = json.loads(row.get_val() or "") if row is not None else None
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("seed_fingerprint") != fingerprint(state.refresh_token):
        return state
    newer = TokenState.from_mapping(data)
    if not newer.refresh_token or newer.refresh_token == state.refresh_token:
        return state
    log.info("Variable %r holds tokens rotated from the refresh token of connection %r (fingerprint %s); "
             "continuing from them.", key, conn_id, fingerprint(newer.refresh_token))
    return replace(newer, cloud_id=newer.cloud_id or state.cloud_id)
