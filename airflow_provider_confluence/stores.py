"""Where a connection's token state lives, and the lock that guards it.

``token_store=auto`` (the default) needs no configuration on either major version, and every process of a
deployment reaches the SAME state, so there is one current refresh token:

* **the connection itself**: its ``extra`` in the metadata database, locked with ``SELECT ... FOR UPDATE`` on its
  row for the whole refresh (:class:`~airflow_provider_confluence.connection_store.ConnectionTokenStore`);
* for a connection from an environment variable or a secrets backend, which has no row to write: the Variable
  ``confluence_oauth__<conn_id>``, locked with ``SELECT ... FOR UPDATE`` on the Variable's row
  (:class:`VariableRowTokenStore`).

Processes that may use the ORM (Airflow 2.11 workers; the Airflow 3 API server, scheduler, CLI and in-process
``dag.test()``) use that store directly. Airflow 3 task workers and the triggerer, whose ORM is blocked, ask the
token broker in the API server (:class:`~airflow_provider_confluence.broker.BrokerTokenSource`), which uses the
same store (:func:`uses_broker`).

Chosen explicitly only: ``token_store=variable`` (or, on Airflow 3, ``[confluence] token_broker = False``) keeps
the state in the Variable under a HOST file lock: safe only while every process that uses the connection runs on
one host, and every process that uses it says so in a warning. ``token_store=memory`` is for tests.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence._compat import (
    TASKS_MAY_USE_ORM,
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
    "VariableRowTokenStore", "VariableTokenStore", "_ConnectionTransaction", "broker_configured",
    "broker_endpoint", "choose_token_store", "connection_row_exists", "fingerprint", "host_lock",
    "keeps_tokens_in_row", "row_store", "uses_broker",
]
#: ``[confluence] token_broker`` (``AIRFLOW__CONFLUENCE__TOKEN_BROKER``, default True): Airflow 3 task workers
#: get their tokens from the broker in the API server. False falls back to the host-locked Variable store.
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

    The store of a connection that has no row to lock (env var, secrets backend), in every process that may use
    the ORM: Airflow 2.11 workers, and on Airflow 3 the token broker in the API server, the scheduler, the CLI
    and an in-process ``dag.test()``. The row is created (seeded from the connection's refresh token) on first
    use, so that there is always something to lock.
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
    """``[confluence] token_broker`` in Airflow's configuration (default True)."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean(BROKER_SECTION, BROKER_OPTION, fallback=True))


def keeps_tokens_in_row(settings: ConnectionSettings) -> bool:
    """True when the connection's state lives in a locked row (:func:`row_store`): the rule for ``auto``,
    ``connection`` and ``broker``, unless an Airflow 3 deployment turned the broker off. The broker serves
    exactly these connections."""
    if settings.token_store in ("variable", "memory"):
        return False
    return TASKS_MAY_USE_ORM or broker_configured()


def uses_broker(settings: ConnectionSettings) -> bool:
    """True when this process must ask the API server's broker: the state is in a row, and the ORM is blocked."""
    return keeps_tokens_in_row(settings) and not orm_available()


def row_store(settings: ConnectionSettings) -> TokenStore:
    """The connection's row, or, for a connection from an env var or secrets backend, its Variable's row."""
    if connection_row_exists(settings.conn_id):
        return ConnectionTokenStore(settings.conn_id)
    log.info("Connection %r comes from an environment variable or a secrets backend, which the provider cannot "
             "write: its rotated tokens are kept in Variable %r, locked by its row.",
             settings.conn_id, VARIABLE_PREFIX + settings.conn_id)
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
        ``token_store=connection`` was asked for a connection that has no row.
    """
    conn_id = settings.conn_id
    wanted = settings.token_store
    if wanted == "memory":
        return MemoryTokenStore(TokenState(refresh_token=settings.refresh_token))
    if not keeps_tokens_in_row(settings):
        why = "token_store=variable" if wanted == "variable" else f"[{BROKER_SECTION}] {BROKER_OPTION} = False"
        log.warning(
            "Connection %r keeps its rotated tokens in Variable %r under a host file lock (%s). That is safe only "
            "while every process that uses the connection runs on ONE host: two hosts can redeem the same refresh "
            "token, which revokes the grant. Remove the setting to keep the tokens in the connection.",
            conn_id, VARIABLE_PREFIX + conn_id, why,
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
            "Set token_store to auto, or create the connection in Admin -> Connections."
        )
    return row_store(settings)
