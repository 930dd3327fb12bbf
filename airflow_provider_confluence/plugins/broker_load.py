"""The token broker under load: one refresh per connection at a time in each API-server process, and a busy or
failing metadata database answered as ``503 store_error``.

At each expiry every task of a connection asks at once. Without a gate, each request would open a transaction
and wait on the connection row's ``SELECT ... FOR UPDATE`` while holding one of the API server's pooled
database connections (``[database] sql_alchemy_pool_size``), so that the pool runs dry and the one request that
holds the lock may itself wait for a connection. :class:`SingleFlight` lets one request per connection id in
this process into the locked refresh; the others wait here, holding no database connection, and then read the
token it stored. The row lock still orders API-server processes and hosts.

A database error in the broker (SQLAlchemy's ``TimeoutError`` of the pool, ``OperationalError``, any
``DBAPIError``) says nothing about the request: it is answered ``503 {"error": "store_error"}`` with a
``Retry-After`` (:func:`store_unavailable`), which the worker waits out within its budget. The error's text
(SQL, parameters, the database's address) stays in the server's log.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse

from airflow_provider_confluence.auth.broker.protocol import token_fingerprint
from airflow_provider_confluence.exceptions import ConfluenceTokenStoreError

if TYPE_CHECKING:
    from airflow_provider_confluence.auth.tokens import TokenManager

#: Seconds a worker is told to wait (``Retry-After``) before it asks again after a ``store_error``.
STORE_RETRY_AFTER = 1
#: Seconds a request waits for the request of its connection that is refreshing in this process.
FLIGHT_WAIT = 60.0


def store_error_types() -> tuple[type[BaseException], ...]:
    """The errors that mean "the metadata database could not be used", not "this request is wrong"."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError,)


def database_trouble(exc: BaseException) -> str:
    """What the broker answers about a database error: its type only, never its text (SQL, parameters, URL)."""
    return (
        f"The API server could not use its metadata database ({type(exc).__name__}): it is busy (its connection "
        f"pool ran dry under load) or unreachable. Nothing was changed; ask again in {STORE_RETRY_AFTER} s."
    )


def database_trouble_for_log(exc: BaseException) -> str:
    """A database error for the server's log: the driver's first line, never SQLAlchemy's ``[SQL: ...]`` and
    ``[parameters: ...]`` (which may hold a connection's encrypted extras, or its plain ones without a Fernet key)."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0][:300]
    kind = type(exc).__name__ if cause is exc else f"{type(exc).__name__} from {type(cause).__name__}"
    return f"{kind}: {first}"


def store_unavailable(detail: str) -> JSONResponse:
    """``503 {"error": "store_error", "detail", "retry_after"}`` with ``Retry-After``: the worker waits."""
    return JSONResponse(
        {"error": "store_error", "detail": detail, "retry_after": STORE_RETRY_AFTER},
        status_code=503,
        headers={"Cache-Control": "no-store", "Retry-After": str(STORE_RETRY_AFTER)},
    )


class SingleFlight:
    """One leader per key (a connection id) at a time, in this process; keys do not wait for each other.

    The first caller of :meth:`turn` for a key leads; callers that come while its block runs follow: they wait
    until it is done, without holding anything, and then all read what it stored at once (not one by one).

    :param wait: seconds a follower waits before giving up with :class:`ConfluenceTokenStoreError` (answered
        503, so the worker asks again), rather than queueing behind a refresh that hangs.
    """

    def __init__(self, wait: float = FLIGHT_WAIT) -> None:
        self._wait = wait
        self._guard = threading.Lock()
        self._flights: dict[str, threading.Event] = {}
        self._waiting: dict[str, int] = {}

    def waiting(self, key: str) -> int:
        """How many callers follow the flight of ``key`` now."""
        with self._guard:
            return self._waiting.get(key, 0)

    @contextmanager
    def turn(self, key: str) -> Iterator[bool]:
        """Yield True to the leader, whose block does the work; False to a follower, once the leader is done."""
        with self._guard:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = threading.Event()
            else:
                self._waiting[key] = self._waiting.get(key, 0) + 1
        if leading:
            try:
                yield True
            finally:
                with self._guard:
                    del self._flights[key]
                flight.set()
            return
        try:
            done = flight.wait(self._wait)
        finally:
            with self._guard:
                self._waiting[key] -= 1
        if not done:
            raise ConfluenceTokenStoreError(
                f"Another request for connection {key!r} has been refreshing its token in this API server for "
                f"more than {self._wait:.0f} s (a slow token endpoint or a locked connection row); ask again."
            )
        yield False


def get_flights(app_state: Any) -> SingleFlight:
    """The app's :class:`SingleFlight`, created on first use (callers hold the app's setup lock)."""
    flights = getattr(app_state, "confluence_broker_flights", None)
    if flights is None:
        flights = app_state.confluence_broker_flights = SingleFlight()
    return flights


def access_token_in_turn(manager: TokenManager, rejected: str | None, flights: SingleFlight, conn_id: str) -> str:
    """The current token; refreshed first when it expires, or when the caller's rejected token is the current one.

    A valid token is read without the gate or the lock. A refresh is led by one request per connection in this
    process; the requests that come meanwhile wait for it (holding no database connection), then read the
    token it stored. Only the leader waits on the row's lock.
    """
    while True:
        if rejected and _current_if_rejected(manager, rejected) is None:
            rejected = None  # a newer token is already stored
        if not rejected:
            token = manager.current_access_token()
            if token:
                return token
        with flights.turn(conn_id) as leading:
            if leading:
                current = _current_if_rejected(manager, rejected) if rejected else None
                return manager.refresh_rejected(current) if current else manager.get_access_token()
        # Followed a refresh: read what it stored (or lead the next one, if it failed).


def _current_if_rejected(manager: TokenManager, rejected: str) -> str | None:
    """The stored access token when it is the one the caller names as rejected, else None."""
    current = manager.store.load()
    if current.access_token and token_fingerprint(current.access_token) == rejected:
        return current.access_token
    return None
