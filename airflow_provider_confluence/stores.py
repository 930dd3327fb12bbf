"""Where a connection's token state lives, and the lock that guards it (DESIGN.md, "stores").

* ``connection``: the connection's ``extra`` in the metadata database, locked with ``SELECT ... FOR UPDATE``
  on its row for the whole refresh. Needs the ORM and a connection that lives in the database.
* ``variable``: the Variable ``confluence_oauth__<conn_id>``, locked with a host file lock: safe when every
  process that uses the connection runs on one host. Seeded from the connection's refresh token, whose
  fingerprint it remembers, so that a new consent written into the connection wins over older state.
  :class:`VariableRowTokenStore` keeps the same Variable locked with ``SELECT ... FOR UPDATE`` on its row
  instead, for processes that may use the ORM (the broker, for a connection from an env var or secrets backend).
* ``broker``: not a store but a way to reach one: Airflow 3 workers ask the API server's token broker
  (:class:`~airflow_provider_confluence.broker.BrokerTokenSource`), which runs the protocol with
  :func:`broker_side_store`; processes that may use the ORM use that store directly.
* ``memory``: :class:`~airflow_provider_confluence.tokens.MemoryTokenStore`, for tests.

:func:`choose_token_store` turns the connection's ``token_store`` setting into one of them; :func:`uses_broker`
says when a process must ask the broker instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence._compat import (
    AIRFLOW_V_3_0_PLUS,
    create_session,
    get_variable,
    orm_available,
    set_variable,
)
from airflow_provider_confluence.broker import endpoint_url
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceTokenStoreError
from airflow_provider_confluence.settings import ConnectionSettings
from airflow_provider_confluence.tokens import STATE_KEYS, MemoryTokenStore, TokenState, TokenStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "confluence_oauth__"
#: ``[confluence] token_broker`` (``AIRFLOW__CONFLUENCE__TOKEN_BROKER``): the deployment runs the token broker.
BROKER_SECTION, BROKER_OPTION = "confluence", "token_broker"


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


@contextmanager
def _private_session() -> Iterator[Session]:
    """A session of its own (not the thread's scoped one) for a locked transaction.

    Any ``create_session()`` run meanwhile in the same thread would otherwise get the SAME scoped session, and
    commit and close it on exit: releasing the row lock and detaching the row, so that the save that follows
    would write nothing.
    """
    from airflow import settings

    factory = getattr(getattr(settings, "Session", None), "session_factory", None)
    if factory is None:
        with create_session() as session:
            yield session
        return
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


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

    On SQLite, which has no row locks, a host file lock is taken as well. A :meth:`load` inside a
    :meth:`transaction` of the same thread reads through the transaction's session (no second connection).

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
            return self._state(active, row)
        with create_session() as session:
            return self._state(session, self._query(session).one_or_none())

    def _state(self, session: Session, row: Any) -> TokenState:
        if row is None:
            return TokenState()
        return adopt_variable_state(session, self.conn_id, _state_of(_extra_of(row)))

    @contextmanager
    def transaction(self) -> Iterator[_ConnectionTransaction]:
        with _private_session() as session:
            lock = host_lock(f"connection:{self.conn_id}") if _is_sqlite(session) else _no_lock()
            with lock:
                row = self._query(session).with_for_update().one_or_none()
                if row is None:
                    raise ConfluenceTokenStoreError(
                        f"Connection {self.conn_id!r} is no longer in the metadata database; nothing was changed."
                    )
                tx = _ConnectionTransaction(self.conn_id, session, row)
                tx.state = self._state(session, row)
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
        return self.parse(raw)

    def parse(self, raw: str | None) -> TokenState:
        """The state in the Variable's raw value, or the seed when the connection holds a newer consent."""
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

    def serialize(self, state: TokenState) -> str:
        """The Variable's value for ``state``, with the fingerprint of the seed it descends from."""
        data = state.to_dict()
        data["seed_fingerprint"] = fingerprint(self._seed)
        return json.dumps(data)

    @property
    def description(self) -> str:
        return (f"Rotated OAuth token state of connection {self.conn_id!r}, kept by airflow-provider-confluence. "
                "Do not edit.")

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
        with host_lock(f"variable:{self.key}"):
            yield _VariableTransaction(self)


class _VariableRowTransaction:
    def __init__(self, store: VariableRowTokenStore, session: Session, row: Any) -> None:
        self._store = store
        self._session = session
        self._row = row
        self.state = store.parse(row.get_val())

    def save(self, state: TokenState) -> None:
        try:
            self._row.set_val(self._store.serialize(state))
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

    For processes that may use the ORM, with a connection that has no row to lock (env var, secrets backend):
    the token broker in the API server, and the scheduler or CLI when the broker is enabled. The row is created
    (seeded from the connection's refresh token) on first use, so that there is always something to lock.
    """

    def __init__(self, conn_id: str, seed_refresh_token: str | None) -> None:
        super().__init__(conn_id, seed_refresh_token)
        self._local = threading.local()

    def _query(self, session: Session) -> Any:
        from airflow.models.variable import Variable

        return session.query(Variable).filter(Variable.key == self.key)

    def load(self) -> TokenState:
        active = getattr(self._local, "session", None)
        if active is not None:
            row = self._query(active).populate_existing().one_or_none()
            return self.parse(row.get_val() if row is not None else None)
        with create_session() as session:
            row = self._query(session).one_or_none()
            return self.parse(row.get_val() if row is not None else None)

    def _locked_row(self, session: Session) -> Any:
        from sqlalchemy.exc import IntegrityError

        from airflow.models.variable import Variable

        for _ in range(3):
            row = self._query(session).with_for_update().one_or_none()
            if row is not None:
                return row
            seed = Variable(key=self.key, val=self.serialize(TokenState(refresh_token=self._seed)),
                            description=self.description)
            session.add(seed)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()  # a sibling created it meanwhile: lock theirs
                continue
            return seed
        raise ConfluenceTokenStoreError(f"Could not create or lock Variable {self.key!r}; nothing was changed.")

    @contextmanager
    def transaction(self) -> Iterator[_VariableRowTransaction]:  # type: ignore[override]
        with _private_session() as session:
            lock = host_lock(f"variable:{self.key}") if _is_sqlite(session) else _no_lock()
            with lock:
                tx = _VariableRowTransaction(self, session, self._locked_row(session))
                self._local.session = session
                try:
                    yield tx
                finally:
                    self._local.session = None


# -- choosing -----------------------------------------------------------------------------------------


def broker_configured() -> bool:
    """``[confluence] token_broker`` in Airflow's configuration: this deployment runs the token broker."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean(BROKER_SECTION, BROKER_OPTION, fallback=False))


def broker_enabled(settings: ConnectionSettings) -> bool:
    """True when the connection's tokens are kept the broker's way (see :func:`choose_token_store`)."""
    if settings.token_store == "broker":
        return True
    return settings.token_store == "auto" and AIRFLOW_V_3_0_PLUS and broker_configured()


def uses_broker(settings: ConnectionSettings) -> bool:
    """True when this process must ask the API server's broker: the broker applies, and the ORM is blocked."""
    return broker_enabled(settings) and not orm_available()


def broker_side_store(settings: ConnectionSettings) -> TokenStore:
    """The store the broker runs the protocol with: the connection row, else the Variable locked by its row."""
    if connection_row_exists(settings.conn_id):
        return ConnectionTokenStore(settings.conn_id)
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
    """Turn the ``token_store`` setting into a store.

    ``auto`` must pick the SAME store in every process that uses a connection (workers, scheduler, API server,
    CLI, ``dag.test()``): two stores would each hold a different refresh token, and the stale one revokes the
    grant when it is used after Atlassian's 10-minute leeway. So ``auto`` is:

    * Airflow 2: the connection row when the connection is in the metadata database, else the Variable;
    * Airflow 3 with the token broker enabled (``[confluence] token_broker = True``, set for every component
      of the deployment), and ``token_store=broker`` on any version: the broker's own store
      (:func:`broker_side_store`: the connection row, else the Variable locked by its row). Processes that
      may use the ORM (API server, scheduler, CLI, in-process ``dag.test()``) use it directly; task workers,
      whose ORM is blocked, ask the broker (:func:`uses_broker`; the hook gives them a
      :class:`~airflow_provider_confluence.broker.BrokerTokenSource`), which uses that same store. Never a
      reachability probe: a process that could not reach the broker must fail, not pick another store;
    * Airflow 3 otherwise: the Variable, because task workers cannot write connections.

    :raises ConfluenceConfigError: ``connection`` was asked for where it cannot work, or this process must
        ask the broker (:func:`uses_broker`).
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
    if broker_enabled(settings):
        if not orm_available():
            raise ConfluenceConfigError(
                f"Connection {conn_id!r} keeps its tokens through the token broker, and this process cannot use "
                "the metadata database: it must ask the broker (BrokerTokenSource, as ConfluenceOAuthHook does)."
            )
        store = broker_side_store(settings)
        log.info("The token broker is enabled: connection %r keeps its rotated tokens in the %s store (the one "
                 "the broker in the API server uses).", conn_id, store.name)
        return store
    if AIRFLOW_V_3_0_PLUS:
        log.info("Airflow 3: tasks cannot write connections, so every process keeps the rotated tokens of %r in "
                 "Variable %r (safe while they all run on one host).", conn_id, variable)
        return VariableTokenStore(conn_id, settings.refresh_token)
    if connection_row_exists(conn_id):
        return ConnectionTokenStore(conn_id)
    log.info("Connection %r is not in the metadata database (env var or secrets backend): its rotated tokens are "
             "kept in Variable %r.", conn_id, variable)
    return VariableTokenStore(conn_id, settings.refresh_token)
