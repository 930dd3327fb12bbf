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

import json
import logging
import threading
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
from airflow_provider_confluence.broker import endpoint_url
from airflow_provider_confluence.connection_store import (
    WRITTEN_FINGERPRINT,
    ConnectionTokenStore,
    _ConnectionTransaction,
    adopt_variable_state,
    connection_row_exists,
)
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceTokenStoreError
from airflow_provider_confluence.settings import ConnectionSettings
from airflow_provider_confluence.store_support import (
    VARIABLE_PREFIX,
    fingerprint,
    host_lock,
    private_session,
    row_lock_or_host_lock,
)
from airflow_provider_confluence.tokens import MemoryTokenStore, TokenState, TokenStore

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

__all__ = [
    "BROKER_OPTION", "BROKER_SECTION", "VARIABLE_PREFIX", "WRITTEN_FINGERPRINT", "ConnectionTokenStore",
    "VariableRowTokenStore", "VariableTokenStore", "_ConnectionTransaction", "adopt_variable_state",
    "broker_enabled", "broker_endpoint", "broker_side_store", "choose_token_store", "connection_row_exists",
    "fingerprint", "host_lock", "uses_broker",
]
#: ``[confluence] token_broker`` (``AIRFLOW__CONFLUENCE__TOKEN_BROKER``): the deployment runs the token broker.
BROKER_SECTION, BROKER_OPTION = "confluence", "token_broker"


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
        with private_session() as session, row_lock_or_host_lock(session, f"variable:{self.key}"):
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
