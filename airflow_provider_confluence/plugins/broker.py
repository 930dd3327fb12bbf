"""``POST /confluence-oauth/token``: the token broker of Airflow 3 task workers, in the API server.

A worker cannot write a connection, so it asks here (:class:`~airflow_provider_confluence.auth.broker.client.
BrokerTokenSource`). The request is a JSON Web Token signed with the connection's own broker key
(:func:`~airflow_provider_confluence.auth.broker.protocol.broker_key`, never the OAuth app's client secret alone,
which connections of one app share), beside a ``gate`` token signed with the deployment's key, both checked by
:class:`~airflow_provider_confluence.auth.broker.protocol.RequestVerifier`: stale or future tokens, bad signatures
and replayed ``jti`` get 401 and ``{"error", "detail"}``. A request whose gate is missing, forged or stale, or
whose fields are malformed, is refused before the connection is looked up. An unknown connection is refused
exactly like a bad signature (401 ``invalid_signature``, not 404): an unauthenticated caller must not learn which connection
ids exist. The server log says which of the two it was.

Then :class:`~airflow_provider_confluence.auth.tokens.TokenManager` runs the rotation protocol with the broker's
store (:func:`~airflow_provider_confluence.auth.stores.choice.row_store`: the connection row under ``SELECT ... FOR UPDATE``, or,
for a connection from an env var or secrets backend, the Variable row locked the same way)
and the answer is ``{"access_token", "expires_at", "cloud_id"}``; never the refresh token.

The ``jti`` of each request is claimed in the provider's single-use table (:mod:`.single_use`), shared by every API-server worker
and host, so a replayed request is refused wherever it lands.

The tokens it rotates are not given to Airflow's secrets maskers (:mod:`.broker_masking`): in this
long-lived process they would pile up for good, and filter none of its log records. No path here puts one in a log,
an error text or a URL.

Under load (:mod:`.broker_load`): one request per connection in this process enters the locked refresh, the others
wait without holding a database connection; a database error anywhere here (a pool timeout, a lost connection)
is answered ``503 store_error`` with a ``Retry-After``, never as an unknown connection (401) or a 500.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import requests
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from airflow_provider_confluence.auth.broker.protocol import (
    GATE_VARIABLE,
    JWT_PATTERN,
    BrokerRefusal,
    RequestVerifier,
    broker_key,
    new_broker_secret,
)
from airflow_provider_confluence.auth.manager import find_cloud_id, token_manager_for
from airflow_provider_confluence.auth.stores.choice import BROKER_OPTION, BROKER_SECTION, keeps_tokens_in_row, row_store
from airflow_provider_confluence.auth.stores.connection import connection_row_exists
from airflow_provider_confluence.auth.token_codec import broker_answer
from airflow_provider_confluence.auth.tokens import TokenManager, TokenState, TokenStore
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.config.deployment import connection_settings
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceReauthorizationRequired,
    ConfluenceTokenStoreError,
)
from airflow_provider_confluence.plugins.broker_load import (
    SingleFlight,
    access_token_in_turn,
    database_trouble,
    database_trouble_for_log,
    get_flights,
    store_error_types,
    store_unavailable,
)
from airflow_provider_confluence.plugins.broker_masking import not_registered
from airflow_provider_confluence.plugins.single_use import SharedNonces
from airflow_provider_confluence.version_compat import (
    create_session,
    get_connection_in_server,
    get_variable,
    mask_secret,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["Confluence OAuth token broker"])
_verifier_lock = threading.Lock()
_MAX_TOKEN = 2048  # characters of a signed token; the provider's are about 400


class TokenRequest(BaseModel):
    """A worker's signed request for an access token of one connection."""

    conn_id: str = Field(min_length=1, max_length=250)
    request: str = Field(max_length=_MAX_TOKEN, pattern=JWT_PATTERN)
    gate: str | None = Field(default=None, max_length=_MAX_TOKEN, pattern=JWT_PATTERN)


class TokenAnswer(BaseModel):
    """A valid access token, its absolute expiry (epoch seconds) and the site's cloud id."""

    access_token: str
    expires_at: float
    cloud_id: str


def get_verifier(request: Request) -> RequestVerifier:
    """The app's verifier; seen nonces are shared by every API-server worker and host (:mod:`.single_use`)."""
    state = request.app.state
    with _verifier_lock:
        verifier = getattr(state, "confluence_broker_verifier", None)
        if verifier is None:
            verifier = state.confluence_broker_verifier = RequestVerifier(nonces=SharedNonces())
    return verifier


class DeploymentGate:
    """The deployment's broker key: the Variable :data:`GATE_VARIABLE`, created by the first API server that
    needs it, kept in memory, and read again (at most every :attr:`REREAD_EVERY` seconds) when a request does not
    match it, so that a stream of forged requests costs no lookup.

    :param clock: monotonic seconds.
    """

    REREAD_EVERY = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._key: str | None = None
        self._next_read = 0.0
        self._lock = threading.Lock()

    def key(self) -> str:
        """The key, read (or created) on first use."""
        with self._lock:
            if self._key is None:
                self._key = self._read_or_create()
                self._next_read = self._clock() + self.REREAD_EVERY
            return self._key

    def reread(self) -> bool:
        """Read the key again unless that was done less than :attr:`REREAD_EVERY` s ago; True if it changed."""
        with self._lock:
            now = self._clock()
            if self._key is not None and now < self._next_read:
                return False
            self._next_read = now + self.REREAD_EVERY
            key, self._key = self._key, self._read_or_create()
            return key != self._key

    @staticmethod
    def _read_or_create() -> str:
        from airflow.models.variable import Variable
        from sqlalchemy.exc import IntegrityError

        existing = get_variable(GATE_VARIABLE)  # as the workers read it: secrets backends, then the database
        if existing:
            return existing
        try:
            with create_session() as session:
                session.add(
                    Variable(
                        key=GATE_VARIABLE,
                        val=new_broker_secret(),
                        description=(
                            "The Confluence token broker's key for this Airflow deployment (airflow-provider-confluence): "
                            "tasks read it to sign their token requests. Deleting it makes the API server create a new one."
                        ),
                    )
                )
        except IntegrityError:  # another API server created it meanwhile
            pass
        created = get_variable(GATE_VARIABLE)
        if not created:
            raise ConfluenceTokenStoreError(f"Could not create the Variable {GATE_VARIABLE!r}.")
        log.info("Created the Variable %r: the token broker's key of this deployment.", GATE_VARIABLE)
        return created


def get_gate(request: Request) -> DeploymentGate:
    """The app's deployment gate."""
    state = request.app.state
    with _verifier_lock:
        gate = getattr(state, "confluence_broker_gate", None)
        if gate is None:
            gate = state.confluence_broker_gate = DeploymentGate()
    return gate


def get_single_flight(request: Request) -> SingleFlight:
    """The app's in-process gate of the locked refresh, one turn per connection id."""
    with _verifier_lock:
        return get_flights(request.app.state)


def _check_gate(verifier: RequestVerifier, gate: DeploymentGate, fields: dict[str, Any]) -> None:
    try:
        verifier.check_gate(fields, gate_key=gate.key())
    except BrokerRefusal as refusal:
        if refusal.error != "invalid_gate" or not gate.reread():
            raise
        verifier.check_gate(fields, gate_key=gate.key())


@router.post("/token", response_model=TokenAnswer)
def token(
    body: TokenRequest,
    verifier: RequestVerifier = Depends(get_verifier),
    gate: DeploymentGate = Depends(get_gate),
    flights: SingleFlight = Depends(get_single_flight),
) -> JSONResponse:
    """Answer a valid access token of the connection to a caller who proves it knows the connection's key."""
    try:
        return _answer(body, verifier, gate, flights)
    except ConfluenceTokenStoreError as exc:
        log.warning("Token request for connection %r: %s", body.conn_id, exc.message)
        return store_unavailable(exc.message)
    except store_error_types() as exc:
        log.warning(
            "Token request for connection %r: the metadata database failed (%s); answered 503.",
            body.conn_id,
            database_trouble_for_log(exc),
        )
        return store_unavailable(database_trouble(exc))


def _answer(body: TokenRequest, verifier: RequestVerifier, gate: DeploymentGate, flights: SingleFlight) -> JSONResponse:
    settings = None
    fields = body.model_dump()
    try:
        _check_gate(verifier, gate, fields)  # before any lookup: a request from outside the deployment costs none
        settings = _confluence_settings(body.conn_id)
        verified = verifier.verify(fields, secret=broker_key(settings) if settings else None)
    except BrokerRefusal as refusal:
        unknown = refusal.error == "invalid_signature" and settings is None
        log.warning(
            "Refused a token request for connection %r: %s.",
            body.conn_id,
            "no such confluence_oauth connection" if unknown else refusal.error,
        )
        return _error(401, refusal.error, refusal.detail)
    try:
        answer = _serve(settings, verified.rejected_token, flights)  # type: ignore[arg-type]  # verify() refused None
    except ConfluenceReauthorizationRequired as exc:
        return _error(403, "reauthorization_required", exc.message)
    except ConfluenceAuthError as exc:
        return _error(502, "auth_error", exc.message, transient=exc.transient)
    except ConfluenceConfigError as exc:
        return _error(422, "config_error", exc.message)
    except ConfluenceError as exc:
        return _error(500, "broker_error", exc.message)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _confluence_settings(conn_id: str) -> ConnectionSettings | None:
    """The settings of the ``confluence_oauth`` connection with this id; None when there is no usable one."""
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    try:
        conn = get_connection_in_server(conn_id)  # not Airflow's cached lookup: it masks every extra, for good
    except AirflowNotFoundException:
        # Airflow's lookup logs a failing backend and moves on: a pool timeout there also ends as "not found".
        if connection_row_exists(conn_id):  # raises the database's error, if it still fails
            raise ConfluenceTokenStoreError(
                f"Airflow could not read connection {conn_id!r} from its metadata database just now, though it is "
                "there (the database was busy or unreachable)."
            ) from None
        return None
    try:
        settings = connection_settings(conn_id, conn)
    except ConfluenceConfigError:  # another type of connection, or unusable settings
        return None
    mask_secret(settings.client_secret)
    return settings


def _serve(settings: ConnectionSettings, rejected: str | None, flights: SingleFlight) -> dict[str, Any]:
    conn_id = settings.conn_id
    if not keeps_tokens_in_row(settings):
        raise ConfluenceConfigError(
            f"In the API server, connection {conn_id!r} has state_store={settings.token_store}"
            + (
                ""
                if settings.token_store in ("variable", "memory")
                else f" and [{BROKER_SECTION}] {BROKER_OPTION} = False"
            )
            + ", so its tokens are not kept in the connection and the broker does not serve it. Give every "
            f"component (scheduler, API server, workers) the same connection and the same [{BROKER_SECTION}] "
            f"{BROKER_OPTION}."
        )
    with requests.Session() as http:
        http.headers["User-Agent"] = "airflow-provider-confluence (token broker)"
        store = row_store(settings)
        manager = token_manager_for(settings, store, session=http, on_secret=not_registered)
        access_token = access_token_in_turn(manager, rejected, flights, conn_id)
        state = _handed_out(manager)
        cloud_id = settings.cloud_id or state.cloud_id
        if not cloud_id:
            with flights.turn(conn_id) as leading:
                if leading:
                    cloud_id = _discover_cloud_id(store, settings, http, access_token)
            cloud_id = cloud_id or store.load().cloud_id or _discover_cloud_id(store, settings, http, access_token)
    log.debug("Answered an access token of connection %r (store %s).", conn_id, manager.store.name)
    return broker_answer(access_token, state.expires_at, cloud_id)


def _discover_cloud_id(store: TokenStore, settings: ConnectionSettings, http: requests.Session, token: str) -> str:
    """Find the cloud id once per connection: under the store's lock, unless a concurrent request found it."""
    with store.transaction() as tx:
        if tx.state.cloud_id:
            return tx.state.cloud_id
        cloud_id = find_cloud_id(settings, http, token)
        tx.save(replace(tx.state, cloud_id=cloud_id))
    return cloud_id


def _handed_out(manager: TokenManager) -> TokenState:
    # The state behind the token just handed out (TokenManager has no public accessor for it yet).
    state: TokenState = manager._cached
    return state


def _error(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": error, "detail": detail, **extra}, status_code=status, headers={"Cache-Control": "no-store"}
    )
