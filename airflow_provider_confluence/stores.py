"""Where a connection's token state lives, and the lock that guards it (DESIGN.md, "stores").

* ``connection``: the connection's ``extra`` in the metadata database, locked with ``SELECT ... FOR UPDATE``
  on its row for the whole refresh. Needs the ORM and a connection that lives in the database.
* ``variable``: the Variable ``confluence_oauth__<conn_id>``, locked with a host file lock: safe when every
  process that uses the connection runs on one host. Seeded from the connection's refresh token, whose
  fingerprint it remembers, so that a new consent written into the connection wins over older state.
* ``memory``: :class:`~airflow_provider_confluence.tokens.MemoryTokenStore`, for tests.

:func:`choose_token_store` turns the connection's ``token_store`` setting into one of them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence._compat import (
    AIRFLOW_V_3_0_PLUS,
    create_session,
    get_variable,
    orm_available,
    set_variable,
)
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceTokenStoreError
from airflow_provider_confluence.settings import ConnectionSettings
from airflow_provider_confluence.tokens import STATE_KEYS, MemoryTokenStore, TokenState, TokenStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "confluence_oauth__"


def fingerprint(secret: str | None) -> str | None:
    """A short, one-way fingerprint of a token, safe to log and store beside it."""
    if not secret:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on this host (``flock`` on a file in the temp folder)."""
    folder = os.path.join(tempfile.gettempdir(), "airflow-provider-confluence")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(name.encode()).hexdigest()[:24] + ".lock")
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- connection ---------------------------------------------------------------------------------------


def _connection_model() -> Any:
    from airflow.models.connection import Connection

    return Connection


def connection_row_exists(conn_id: str) -> bool:
    """True when the connection is a row of the metadata database (not an env var or secrets backend)."""
    connection = _connection_model()
    with create_session() as session:
        return session.query(connection.id).filter(connection.conn_id == conn_id).first() is not None


WRITTEN_FINGERPRINT = "refresh_token_fingerprint"


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


class _ConnectionTransaction:
    def __init__(self, conn_id: str, session: Session, row: Any) -> None:
        self._conn_id = conn_id
        self._session = session
        self._row = row
        self.state = _state_of(_extra_of(row))

    def save(self, state: TokenState) -> None:
        try:
            extra = _extra_of(self._row)
            for key in (*STATE_KEYS, WRITTEN_FINGERPRINT):
                extra.pop(key, None)
            extra.update(state.to_dict())
            extra[WRITTEN_FINGERPRINT] = fingerprint(state.refresh_token)
            self._row.set_extra(json.dumps(extra))
            self._session.commit()
        except Exception as exc:
            self._session.rollback()
            raise ConfluenceTokenStoreError(
                f"Could not save the rotated token state into connection {self._conn_id!r} "
                f"({type(exc).__name__}); the new token was not used. Check the metadata database, then run the "
                "task again within 10 minutes so that Atlassian still accepts the previous refresh token."
            ) from None
        self.state = state


def _extra_of(row: Any) -> dict[str, Any]:
    raw = row.get_extra()
    if not raw:
        return {}
    data = json.loads(raw)
    return data if isinstance(data, dict) else {}


class ConnectionTokenStore:
    """Token state in the connection's extra, locked with ``SELECT ... FOR UPDATE`` on its row.

    On SQLite, which has no row locks, a host file lock is taken as well.
    """

    name = "connection"

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id

    def _query(self, session: Session) -> Any:
        connection = _connection_model()
        return session.query(connection).filter(connection.conn_id == self.conn_id)

    def load(self) -> TokenState:
        with create_session() as session:
            row = self._query(session).one_or_none()
            return _state_of(_extra_of(row)) if row is not None else TokenState()

    @contextmanager
    def transaction(self) -> Iterator[_ConnectionTransaction]:
        with create_session() as session:
            lock = host_lock(f"connection:{self.conn_id}") if _is_sqlite(session) else _no_lock()
            with lock:
                row = self._query(session).with_for_update().one_or_none()
                if row is None:
                    raise ConfluenceTokenStoreError(
                        f"Connection {self.conn_id!r} is no longer in the metadata database; nothing was changed."
                    )
                yield _ConnectionTransaction(self.conn_id, session, row)


def _is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind is not None and bind.dialect.name == "sqlite"


@contextmanager
def _no_lock() -> Iterator[None]:
    yield


# -- variable -----------------------------------------------------------------------------------------


class _VariableTransaction:
    def __init__(self, store: VariableTokenStore) -> None:
        self._store = store
        self.state = store.load()

    def save(self, state: TokenState) -> None:
        self._store.write(state)
        self.state = state


class VariableTokenStore:
    """Token state as JSON in the Variable ``confluence_oauth__<conn_id>``, locked per host.

    :param conn_id: the connection id.
    :param seed_refresh_token: the refresh token in the connection; when its fingerprint differs from the one
        the Variable was seeded from (a new consent), the connection's token wins.
    """

    name = "variable"

    def __init__(self, conn_id: str, seed_refresh_token: str | None) -> None:
        self.conn_id = conn_id
        self.key = VARIABLE_PREFIX + conn_id
        self._seed = seed_refresh_token

    def load(self) -> TokenState:
        try:
            raw = get_variable(self.key)
        except Exception as exc:
            raise ConfluenceTokenStoreError(
                f"Could not read Variable {self.key!r} ({type(exc).__name__}); nothing was changed."
            ) from None
        data: dict[str, Any] = {}
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = {}
            if not isinstance(data, dict) or not data:
                raise ConfluenceTokenStoreError(
                    f"Variable {self.key!r} does not hold this provider's JSON token state, so it was left "
                    "alone. If the connection holds a refresh token from a new consent, delete the Variable."
                )
        seed = fingerprint(self._seed)
        if seed and data.get("seed_fingerprint") != seed:
            if data:
                log.info("Connection %r holds a new refresh token (fingerprint %s); it replaces the state in "
                         "Variable %r.", self.conn_id, seed, self.key)
            return TokenState(refresh_token=self._seed)
        return TokenState.from_mapping(data)

    def write(self, state: TokenState) -> None:
        """Save ``state`` with the fingerprint of the connection's refresh token it descends from."""
        data = state.to_dict()
        data["seed_fingerprint"] = fingerprint(self._seed)
        try:
            set_variable(
                self.key,
                json.dumps(data),
                description=f"Rotated OAuth token state of connection {self.conn_id!r}, kept by "
                "airflow-provider-confluence. Do not edit.",
            )
        except Exception as exc:
            raise ConfluenceTokenStoreError(
                f"Could not save the rotated token state into Variable {self.key!r} ({type(exc).__name__}); the "
                "new token was not used. Run the task again within 10 minutes so that Atlassian still accepts "
                "the previous refresh token."
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[_VariableTransaction]:
        with host_lock(f"variable:{self.key}"):
            yield _VariableTransaction(self)


# -- choosing -----------------------------------------------------------------------------------------


def choose_token_store(settings: ConnectionSettings) -> TokenStore:
    """Turn the ``token_store`` setting into a store.

    ``auto`` must pick the SAME store in every process that uses a connection (workers, scheduler, CLI,
    ``dag.test()``): two stores would each hold a different refresh token, and the stale one revokes the
    grant when it is used after Atlassian's 10-minute leeway. So ``auto`` is:

    * Airflow 2: the connection row when the connection is in the metadata database, else the Variable;
    * Airflow 3: the Variable, because task workers cannot write connections.

    :raises ConfluenceConfigError: ``connection`` was asked for where it cannot work.
    """
    conn_id = settings.conn_id
    wanted = settings.token_store
    variable = VARIABLE_PREFIX + conn_id
    if wanted == "memory":
        return MemoryTokenStore(TokenState(refresh_token=settings.refresh_token))
    if wanted == "variable":
        return VariableTokenStore(conn_id, settings.refresh_token)
    if wanted == "connection":
        if not orm_available():
            raise ConfluenceConfigError(
                f"Connection {conn_id!r} asks for token_store=connection, but Airflow 3 tasks cannot write "
                "connections (the ORM is blocked in task workers). Set token_store to auto or variable."
            )
        if not connection_row_exists(conn_id):
            raise ConfluenceConfigError(
                f"Connection {conn_id!r} comes from an environment variable or a secrets backend, so it has no row "
                "in the metadata database to write rotated tokens into (a row would be shadowed by the backend). "
                "Set token_store to auto or variable, or create the connection in Admin -> Connections."
            )
        return ConnectionTokenStore(conn_id)
    if AIRFLOW_V_3_0_PLUS:
        log.info("Airflow 3: tasks cannot write connections, so every process keeps the rotated tokens of %r in "
                 "Variable %r (safe while they all run on one host).", conn_id, variable)
        return VariableTokenStore(conn_id, settings.refresh_token)
    if connection_row_exists(conn_id):
        return ConnectionTokenStore(conn_id)
    log.info("Connection %r is not in the metadata database (env var or secrets backend): its rotated tokens are "
             "kept in Variable %r.", conn_id, variable)
    return VariableTokenStore(conn_id, settings.refresh_token)
