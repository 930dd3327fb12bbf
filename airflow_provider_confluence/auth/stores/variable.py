"""The Variable token stores: ``confluence_oauth_token_state__<conn_id>`` under a host file lock, or its row's lock.

:class:`VariableRowTokenStore` keeps the state of a connection from an environment variable or a secrets
backend (which has no row to write) in a Variable locked with ``SELECT ... FOR UPDATE``. :class:`VariableTokenStore`
(``state_store=variable``, or ``[confluence] token_broker = False`` on Airflow 3) locks a HOST file: safe only
while every process that uses the connection runs on one host.

Before 0.2.0 the Variable was named ``confluence_oauth__<conn_id>``, which Airflow does not mask. The first locked
transaction of either store moves an old-named Variable to the new name and deletes the old one: in the same
database transaction for the row store; under the host lock, writing the new one before deleting the old one, for
the host-locked store. Once the new name exists, the old one is never read again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.auth.stores.support import (
    fingerprint,
    host_lock,
    legacy_variable_key,
    private_session,
    row_lock_or_host_lock,
    variable_key,
    variable_lock_name,
)
from airflow_provider_confluence.auth.stores.variable_rows import VariableRow, delete_row, read_row, write_value
from airflow_provider_confluence.auth.token_codec import parse_stored, seed_matches, variable_value
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.exceptions import ConfluenceTokenStoreError
from airflow_provider_confluence.version_compat import create_session, delete_variable, get_variable, set_variable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


class _VariableTransaction:
    def __init__(self, store: VariableTokenStore) -> None:
        self._store = store
        store.move_legacy_variable()
        self.state = store.load()

    def save(self, state: TokenState) -> None:
        self._store.write(state)
        self.state = state


class VariableTokenStore:
    """Token state as JSON in the Variable ``confluence_oauth_token_state__<conn_id>``, locked per host.

    :param conn_id: the connection id.
    :param seed_refresh_token: the refresh token in the connection; when its fingerprint differs from the one
        the Variable was seeded from (a new consent), the connection's token wins.
    """

    name = "variable"

    def __init__(self, conn_id: str, seed_refresh_token: str | None) -> None:
        self.conn_id = conn_id
        self.key = variable_key(conn_id)
        self.legacy_key = legacy_variable_key(conn_id)
        self.lock_name = variable_lock_name(conn_id)
        self._seed = seed_refresh_token

    def _read(self, key: str) -> str | None:
        try:
            return get_variable(key)
        except Exception as exc:
            raise ConfluenceTokenStoreError(
                f"Could not read Variable {key!r} ({type(exc).__name__}); nothing was changed."
            ) from None

    def load(self) -> TokenState:
        raw = self._read(self.key)
        if raw is None:
            raw = self._read(self.legacy_key)  # not moved yet: the next transaction moves it
        return self.parse(raw)

    def move_legacy_variable(self) -> None:
        """Move the Variable's pre-0.2.0 name to its new name, under the host lock (the caller holds it).

        The new Variable is written before the old one is deleted, so the state is never lost; when the new name
        already exists, the old Variable is left alone and never read again.
        """
        legacy = self._read(self.legacy_key)
        if legacy is None:
            return
        if self._read(self.key) is not None:
            log.warning(
                "Variables %r and %r both exist: the token state is read from %r only. Delete %r.",
                self.key,
                self.legacy_key,
                self.key,
                self.legacy_key,
            )
            return
        try:
            set_variable(self.key, legacy, description=self.description)
        except Exception as exc:
            raise ConfluenceTokenStoreError(
                f"Could not copy Variable {self.legacy_key!r} to its new name {self.key!r} ({type(exc).__name__}); "
                "nothing was changed."
            ) from None
        try:
            deleted = delete_variable(self.legacy_key)
        except Exception:
            deleted = False
        if deleted:
            log.info(
                "Moved the token state of connection %r from Variable %r to %r (a name Airflow masks).",
                self.conn_id,
                self.legacy_key,
                self.key,
            )
        else:
            log.warning(
                "Copied the token state of connection %r from Variable %r to %r (a name Airflow masks), "
                "but could not delete %r: delete it, it is no longer read.",
                self.conn_id,
                self.legacy_key,
                self.key,
                self.legacy_key,
            )

    def parse(self, raw: str | None) -> TokenState:
        """The state in the Variable's raw value, or the seed when the connection holds a newer consent."""
        data: dict[str, Any] = {}
        if raw:
            data = parse_stored(raw) or {}
            if not data:
                raise ConfluenceTokenStoreError(
                    f"Variable {self.key!r} does not hold this provider's JSON token state, so it was left "
                    "alone. If the connection holds a refresh token from a new consent, delete the Variable."
                )
        seed = fingerprint(self._seed)
        if seed and not seed_matches(data, self._seed):
            if data:
                log.info(
                    "Connection %r holds a new refresh token (fingerprint %s); it replaces the state in Variable %r.",
                    self.conn_id,
                    seed,
                    self.key,
                )
            return TokenState(refresh_token=self._seed)
        return TokenState.from_stored(data)

    def serialize(self, state: TokenState) -> str:
        """The Variable's value for ``state``, with the fingerprint of the seed it descends from."""
        return variable_value(state, self._seed)

    @property
    def description(self) -> str:
        return (
            f"Rotated OAuth token state of connection {self.conn_id!r}, kept by airflow-provider-confluence. "
            "Do not edit."
        )

    def write(self, state: TokenState) -> None:
        """Save ``state`` with the fingerprint of the connection's refresh token it descends from."""
        try:
            set_variable(self.key, self.serialize(state), description=self.description)
        except Exception as exc:
            raise ConfluenceTokenStoreError(
                f"Could not save the rotated token state into Variable {self.key!r} ({type(exc).__name__}); the "
                "new token was not used. Run the task again within 10 minutes so that Atlassian still accepts "
                "the previous refresh token."
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[_VariableTransaction]:
        with host_lock(self.lock_name):
            yield _VariableTransaction(self)


class _VariableRowTransaction:
    def __init__(self, store: VariableRowTokenStore, session: Session, row: VariableRow) -> None:
        self._store = store
        self._session = session
        self._row = row
        self.state = store.parse(row.value)

    def save(self, state: TokenState) -> None:
        try:
            write_value(self._session, self._row, self._store.serialize(state))
            self._session.commit()
        except Exception as exc:
            self._session.rollback()
            raise ConfluenceTokenStoreError(
                f"Could not save the rotated token state into Variable {self._store.key!r} ({type(exc).__name__}); "
                "the new token was not used. Check the metadata database, then run the task again within 10 "
                "minutes so that Atlassian still accepts the previous refresh token."
            ) from None
        self.state = state


class VariableRowTokenStore(VariableTokenStore):
    """The same Variable and JSON, locked with ``SELECT ... FOR UPDATE`` on the Variable's row (no host lock).

    The store of a connection that has no row to lock (env var, secrets backend), in every process that may use
    the ORM: Airflow 2.11 workers, and on Airflow 3 the token broker in the API server, the scheduler, the CLI
    and an in-process ``dag.test()``. The row is created (seeded from the connection's refresh token) on first
    use, so that there is always something to lock.
    """

    def __init__(self, conn_id: str, seed_refresh_token: str | None) -> None:
        super().__init__(conn_id, seed_refresh_token)
        self._local = threading.local()

    # The rows are read by their columns, never loaded as Variable objects: Airflow would register each new value
    # with the secrets masker of this process for good (variable_rows.py), on every rotation in the API server.

    def load(self) -> TokenState:
        active = getattr(self._local, "session", None)
        if active is not None:
            row = read_row(active, self.key)
            return self.parse(row.value if row is not None else None)
        with create_session() as session:
            row = read_row(session, self.key)
            if row is None:  # not moved yet: the next transaction moves it
                row = read_row(session, self.legacy_key)
            return self.parse(row.value if row is not None else None)

    def _locked_row(self, session: Session) -> VariableRow:
        """The Variable's row, locked: created from the pre-0.2.0 Variable (deleted in this same transaction) when
        only that exists, else seeded from the connection's refresh token. Locks the old name first, always."""
        from airflow.models.variable import Variable
        from sqlalchemy.exc import IntegrityError

        for _ in range(3):
            legacy = read_row(session, self.legacy_key, for_update=True)
            row = read_row(session, self.key, for_update=True)
            if row is not None:
                if legacy is not None:
                    log.warning(
                        "Variables %r and %r both exist: the token state is read from %r only. Delete %r.",
                        self.key,
                        self.legacy_key,
                        self.key,
                        self.legacy_key,
                    )
                return row
            value = legacy.value if legacy is not None else self.serialize(TokenState(refresh_token=self._seed))
            created = Variable(key=self.key, val=value, description=self.description)
            session.add(created)
            if legacy is not None:
                delete_row(session, legacy)  # committed with the new row, or not at all: never two live copies
            try:
                session.flush()
            except IntegrityError:
                session.rollback()  # a sibling created it meanwhile: lock theirs
                continue
            if legacy is not None:
                log.info(
                    "Moving the token state of connection %r from Variable %r to %r (a name Airflow masks).",
                    self.conn_id,
                    self.legacy_key,
                    self.key,
                )
            return VariableRow(id=int(created.id), key=self.key, value=value)
        raise ConfluenceTokenStoreError(f"Could not create or lock Variable {self.key!r}; nothing was changed.")

    @contextmanager
    def transaction(self) -> Iterator[_VariableRowTransaction]:  # type: ignore[override]
        with private_session() as session, row_lock_or_host_lock(session, self.lock_name):
            tx = _VariableRowTransaction(self, session, self._locked_row(session))
            self._local.session = session
            try:
                yield tx
            finally:
                self._local.session = None
