"""``POST /confluence-oauth/token``: the token broker of Airflow 3 task workers, in the API server.

A worker cannot write a connection, so it asks here (:class:`~airflow_provider_confluence.broker.
BrokerTokenSource`). The request is authenticated with an HMAC keyed by the connection's client secret
(:class:`~airflow_provider_confluence.broker_protocol.RequestVerifier`: stale or future timestamps, bad signatures and
replayed nonces get 401 and ``{"error", "detail"}``). An unknown connection is refused exactly like a bad
signature (401 ``invalid_signature``, not 404): an unauthenticated caller must not learn which connection
ids exist. The server log says which of the two it was.

Then :class:`~airflow_provider_confluence.tokens.TokenManager` runs the rotation protocol with the broker's
store (:func:`~airflow_provider_confluence.stores.broker_side_store`: the connection row under ``SELECT ...
FOR UPDATE``, or, for a connection from an env var or secrets backend, the Variable row locked the same way)
and the answer is ``{"access_token", "expires_at", "cloud_id"}``; never the refresh token.

Nonces are remembered per API-server process: with several API-server workers, a replay that reaches another
worker within the 120 s window is not detected (the answer holds only a short-lived access token, and only a
caller that saw the original request over the network could replay it).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

import requests
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from airflow_provider_confluence._compat import get_connection, mask_secret
from airflow_provider_confluence.deployment import connection_settings
from airflow_provider_confluence.broker_protocol import (
    HEX_SHA256_PATTERN,
    NONCE_PATTERN,
    BrokerRefusal,
    RequestVerifier,
    token_fingerprint,
)
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceReauthorizationRequired,
    ConfluenceTokenStoreError,
)
from airflow_provider_confluence.plugins.revoked_tokens import SharedNonces
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook, find_cloud_id, token_manager_for
from airflow_provider_confluence.settings import ConnectionSettings
from airflow_provider_confluence.stores import BROKER_OPTION, BROKER_SECTION, broker_enabled, broker_side_store
from airflow_provider_confluence.tokens import TokenManager, TokenState, TokenStore

log = logging.getLogger(__name__)

router = APIRouter(tags=["Confluence OAuth token broker"])
_verifier_lock = threading.Lock()


class TokenRequest(BaseModel):
    """A worker's signed request for an access token of one connection."""

    conn_id: str = Field(min_length=1, max_length=250)
    timestamp: int
    nonce: str = Field(pattern=NONCE_PATTERN)
    signature: str = Field(pattern=HEX_SHA256_PATTERN)
    rejected_token: str | None = Field(default=None, pattern=HEX_SHA256_PATTERN)


class TokenAnswer(BaseModel):
    """A valid access token, its absolute expiry (epoch seconds) and the site's cloud id."""

    access_token: str
    expires_at: float
    cloud_id: str


def get_verifier(request: Request) -> RequestVerifier:
    """The app's verifier; seen nonces are shared by every API-server worker and host (``revoked_token``)."""
    state = request.app.state
    with _verifier_lock:
        verifier = getattr(state, "confluence_broker_verifier", None)
        if verifier is None:
            verifier = state.confluence_broker_verifier = RequestVerifier(nonces=SharedNonces())
    return verifier


@router.post("/token", response_model=TokenAnswer)
def token(body: TokenRequest, verifier: RequestVerifier = Depends(get_verifier)) -> JSONResponse:
    """Answer a valid access token of the connection to a caller who proves it knows the client secret."""
    conn = None
    try:
        verifier.check_fresh(body.timestamp)
        conn = _confluence_connection(body.conn_id)
        secret = ((conn.password or "").strip() or None) if conn is not None else None
        verifier.verify(conn_id=body.conn_id, timestamp=body.timestamp, nonce=body.nonce, signature=body.signature,
                        rejected_token=body.rejected_token, secret=secret)
    except BrokerRefusal as refusal:
        unknown = refusal.error == "invalid_signature" and conn is None
        log.warning("Refused a token request for connection %r: %s.", body.conn_id,
                    "no such confluence_oauth connection" if unknown else refusal.error)
        return _error(401, refusal.error, refusal.detail)
    try:
        answer = _serve(body.conn_id, conn, body.rejected_token)
    except ConfluenceReauthorizationRequired as exc:
        return _error(403, "reauthorization_required", exc.message)
    except ConfluenceAuthError as exc:
        return _error(502, "auth_error", exc.message, transient=exc.transient)
    except ConfluenceConfigError as exc:
        return _error(422, "config_error", exc.message)
    except ConfluenceTokenStoreError as exc:
        return _error(503, "store_error", exc.message)
    except ConfluenceError as exc:
        return _error(500, "broker_error", exc.message)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _confluence_connection(conn_id: str) -> Any:
    """The connection, or None when there is no ``confluence_oauth`` connection with this id."""
    from airflow.exceptions import AirflowNotFoundException

    try:
        conn = get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return conn if conn.conn_type == ConfluenceOAuthHook.conn_type else None


def _serve(conn_id: str, conn: Any, rejected: str | None) -> dict[str, Any]:
    settings = connection_settings(conn_id, conn)
    mask_secret(settings.client_secret)
    if not broker_enabled(settings):
        raise ConfluenceConfigError(
            f"In the API server, connection {conn_id!r} has token_store={settings.token_store}"
            + (f" and [{BROKER_SECTION}] {BROKER_OPTION} is off" if settings.token_store == "auto" else "")
            + ", so its tokens are not kept the broker's way and the broker does not serve it. Give every "
            f"component (scheduler, API server, workers) the same connection and the same [{BROKER_SECTION}] "
            f"{BROKER_OPTION}, or set token_store=broker on the connection."
        )
    with requests.Session() as http:
        http.headers["User-Agent"] = "airflow-provider-confluence (token broker)"
        store = broker_side_store(settings)
        manager = token_manager_for(settings, store, session=http)
        access_token = _access_token(manager, rejected)
        state = _handed_out(manager)
        cloud_id = settings.cloud_id or state.cloud_id or _discover_cloud_id(store, settings, http, access_token)
    log.debug("Answered an access token of connection %r (store %s).", conn_id, manager.store.name)
    return {"access_token": access_token, "expires_at": state.expires_at, "cloud_id": cloud_id}


def _access_token(manager: TokenManager, rejected: str | None) -> str:
    """The current token; refreshed first when the caller's rejected token is still the current one."""
    if rejected:
        current = manager.store.load()
        if current.access_token and token_fingerprint(current.access_token) == rejected:
            return manager.refresh_rejected(current.access_token)
    return manager.get_access_token()


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
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status,
                        headers={"Cache-Control": "no-store"})
