"""The ``connection`` token store: the state in the connection's extra, locked with ``SELECT ... FOR UPDATE``.

Every save also records the rotation in the connection's :mod:`rotation journal
<airflow_provider_confluence.auth.stores.journal>`, in the same transaction, so that a stale copy of the connection
written back later (an old edit form, a backup) is recognised before its retired refresh token is redeemed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.auth.broker.protocol import BROKER_SECRET, new_broker_secret
from airflow_provider_confluence.auth.stores.journal import (
    connection_binding,
    read_journal,
    record_rotation,
    recover_from_stale_copy,
)
from airflow_provider_confluence.auth.stores.support import (
    fingerprint,
    legacy_variable_key,
    private_session,
    row_lock_or_host_lock,
    variable_key,
)
from airflow_provider_confluence.auth.stores.variable_rows import VariableRow, delete_row, read_row
from airflow_provider_confluence.auth.token_codec import (
    extra_with_state,
    parse_stored,
    seed_matches,
    state_from_extra,
)
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceTokenStoreError
from airflow_provider_confluence.version_compat import create_session

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def _connection_model() -> Any:
    from airflow.models.connection import Connection

    return Connection


def connection_row_exists(conn_id: str) -> bool:
    """True when the connection is a row of the metadata database (not an env var or secrets backend)."""
    connection = _connection_model()
    with create_session() as session:
        return session.query(connection.id).filter(connection.conn_id == conn_id).first() is not None


def row_state(row: Any) -> TokenState:
    """The token state in a connection row's extra, as a lock-free :meth:`ConnectionTokenStore.load` reads it."""
    return state_from_extra(_extra_of(row))


def _extra_of(row: Any) -> dict[str, Any]:
    raw = row.get_extra()
    if not raw:
        return {}
    data = json.loads(raw)
    return data if isinstance(data, dict) else {}


class _ConnectionTransaction:
    """The locked row. Reading :attr:`state` raises ``refusal`` when there is one (a token that must not be
    redeemed); saving a new state (a new consent, a migration) is always allowed, and clears it."""

    def __init__(
        self, conn_id: str, session: Session, row: Any, state: TokenState, refusal: Exception | None = None
    ) -> None:
        self._conn_id = conn_id
        self._session = session
        self._row = row
        self._state = state
        self._refusal = refusal

    @property
    def state(self) -> TokenState:
        if self._refusal is not None:
            raise self._refusal
        return self._state

    def save(self, state: TokenState) -> None:
        try:
            extra = extra_with_state(_extra_of(self._row), state)
            if not extra.get(BROKER_SECRET):
                extra[BROKER_SECRET] = new_broker_secret()
            self._row.set_extra(json.dumps(extra))
            record_rotation(self._session, self._conn_id, self._state, state, connection_binding(self._row))
            self._session.commit()
        except Exception as exc:
            self._session.rollback()
            raise ConfluenceTokenStoreError(
                f"Could not save the rotated token state into connection {self._conn_id!r} "
                f"({type(exc).__name__}); the new token was not used. Check the metadata database, then run the "
                "task again within 10 minutes so that Atlassian still accepts the previous refresh token."
            ) from None
        self._state = state
        self._refusal = None


class ConnectionTokenStore:
    """Token state in the connection's extra, locked with ``SELECT ... FOR UPDATE`` on its row.

    On SQLite, which has no row locks, a host file lock is taken as well. A :meth:`load` inside a
    :meth:`transaction` of the same thread reads through the transaction's session (no second connection), and
    checks the rotation journal: what is read there is what gets redeemed.

    Tokens that the Variable store rotated from the refresh token in the extra are never adopted silently:
    before redeeming, a connection whose token the Variable store has rotated away is refused with the command
    that moves the state (:func:`unmigrated_variable_refusal`).
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
            if row is None:
                return TokenState()
            state, refusal = self._redeemable_state(active, row)
            if refusal is not None:
                raise refusal
            return state
        # A lock-free read skips the journal: a stale access token only costs one refused call and a locked retry.
        with create_session() as session:
            row = self._query(session).one_or_none()
            return TokenState() if row is None else state_from_extra(_extra_of(row))

    def _redeemable_state(self, session: Session, row: Any) -> tuple[TokenState, Exception | None]:
        """The row's state, read under the lock before a redeem: a stale copy is replaced by the journal's
        state, and a token the Variable store rotated away comes with the error that forbids redeeming it."""
        state = recover_from_stale_copy(
            read_journal(session, self.conn_id), state_from_extra(_extra_of(row)), self.conn_id, connection_binding(row)
        )
        return state, unmigrated_variable_refusal(session, self.conn_id, state)

    @contextmanager
    def transaction(self) -> Iterator[_ConnectionTransaction]:
        with private_session() as session, row_lock_or_host_lock(session, f"connection:{self.conn_id}"):
            row = self._query(session).with_for_update().one_or_none()
            if row is None:
                raise ConfluenceTokenStoreError(
                    f"Connection {self.conn_id!r} is no longer in the metadata database; nothing was changed."
                )
            tx = _ConnectionTransaction(self.conn_id, session, row, *self._redeemable_state(session, row))
            self._local.session = session
            try:
                yield tx
            finally:
                self._local.session = None


def _unmigrated_variable(session: Session, conn_id: str, state: TokenState) -> tuple[VariableRow, TokenState] | None:
    """The Variable row of the Variable store (its name, or its name before 0.2.0) that rotated further from
    ``state``'s token, and its state (see :func:`unmigrated_variable_state`). Read by its columns, as every
    Variable read before a redeem: a loaded Variable object registers its value with the masker for good."""
    if not state.refresh_token:
        return None
    for key in (variable_key(conn_id), legacy_variable_key(conn_id)):
        row = read_row(session, key)
        data = parse_stored(row.value) if row is not None else None
        if row is None or data is None or not seed_matches(data, state.refresh_token):
            continue
        newer = TokenState.from_stored(data)
        if newer.refresh_token and newer.refresh_token != state.refresh_token:
            return row, newer
    return None


def unmigrated_variable_state(session: Session, conn_id: str, state: TokenState) -> TokenState | None:
    """The state in the Variable ``confluence_oauth_token_state__<conn_id>`` (or ``confluence_oauth__<conn_id>``,
    its name before 0.2.0) when it rotated further from ``state``'s token.

    That Variable was the default store on Airflow 3 before the connection was: its ``seed_fingerprint`` names
    the connection's refresh token it started from. When that is ``state``'s token and the Variable holds
    another one, the connection's token is retired, and only ``airflow-confluence migrate-store`` may move the
    Variable's state into the connection: any Airflow 3 task can write a Variable, so its content is never
    adopted on a normal read.
    """
    found = _unmigrated_variable(session, conn_id, state)
    return found[1] if found else None


def unmigrated_variable_refusal(session: Session, conn_id: str, state: TokenState) -> Exception | None:
    """The error that stops a redeem of a refresh token that the Variable store has already rotated away."""
    found = _unmigrated_variable(session, conn_id, state)
    if found is None:
        return None
    return ConfluenceConfigError(
        f"Variable {found[0].key!r} holds tokens rotated from the refresh token in connection "
        f"{conn_id!r} (the Variable store, Airflow 3's default before this version), so the token in the "
        "connection is retired and redeeming it could revoke the grant. Nothing was changed. Move the "
        f"Variable's state into the connection once, with: airflow-confluence migrate-store {conn_id}"
    )


@dataclass(frozen=True)
class Migration:
    """What ``migrate-store`` found, and did unless it was a dry run.

    :param action: ``moved`` (the Variable's state is now the connection's, and the Variable is deleted),
        ``nothing`` (no Variable), or ``kept`` (the Variable does not descend from the connection's token).
    :param before: the fingerprint of the connection's refresh token before.
    :param after: the fingerprint of the refresh token that the connection holds after (or would hold).
    :param variable: the name of the Variable found (its name before 0.2.0 when only that exists).
    """

    action: str
    before: str | None
    after: str | None
    cloud_id: str | None = None
    rotated_at: float | None = None
    variable: str | None = None


def migrate_variable_state(conn_id: str, *, dry_run: bool = False) -> Migration:
    """Move the state of the Variable store into the connection row, once, under the row's lock.

    The Variable's state is moved only when it descends from the refresh token in the connection (the Variable
    store was seeded from it); the Variable is deleted in the same transaction, and the rotation journal records
    the move like any rotation.

    :raises ConfluenceTokenStoreError: the connection has no row in the metadata database.
    """
    from airflow.models.variable import Variable

    store = ConnectionTokenStore(conn_id)
    with private_session() as session, row_lock_or_host_lock(session, f"connection:{conn_id}"):
        row = store._query(session).with_for_update().one_or_none()
        if row is None:
            raise ConfluenceTokenStoreError(
                f"Connection {conn_id!r} is not in the metadata database (an environment variable or a secrets "
                f"backend holds it): its tokens stay in Variable {variable_key(conn_id)!r}, now locked by its "
                "row, so there is nothing to move."
            )
        state, _refusal = store._redeemable_state(session, row)
        before = fingerprint(state.refresh_token)
        keys = (variable_key(conn_id), legacy_variable_key(conn_id))
        existing = [session.query(Variable).filter(Variable.key == key).one_or_none() for key in keys]
        if not any(existing):
            return Migration("nothing", before, before)
        found = _unmigrated_variable(session, conn_id, state)
        if found is None:
            name = next(row.key for row in existing if row is not None)
            return Migration("kept", before, before, variable=name)
        variable, newer = found
        moved = replace(newer, cloud_id=newer.cloud_id or state.cloud_id)
        result = Migration(
            "moved", before, fingerprint(moved.refresh_token), moved.cloud_id, moved.rotated_at, variable=variable.key
        )
        if dry_run:
            return result
        delete_row(session, variable)
        _ConnectionTransaction(conn_id, session, row, state).save(moved)  # commits the delete with the save
    log.info(
        "Moved the token state of connection %r from Variable %r into the connection (refresh token %s -> %s).",
        conn_id,
        result.variable,
        result.before,
        result.after,
    )
    return result
