"""The consent flow inside the Airflow 3 API server: Connect, Atlassian's callback, and the status page.

``router`` is mounted under ``/confluence-oauth`` by :mod:`airflow_provider_confluence.plugins.app`.

Airflow does not authenticate the routes of a plugin's FastAPI app (a mounted app inherits none of the core
API's dependencies), so every route here depends on Airflow's own ``get_user``: the JWT from the
``Authorization: Bearer`` header or the UI's ``_token`` cookie, validated by the auth manager (401 without a
login). Connect and the callback then ask the auth manager whether that user may edit (``PUT``) the
connection, exactly as the core API's connection endpoints do (403 otherwise); the status page lists the
connections the user may read.

The callback changes the connection only after every check passed and the code was exchanged; a refused
state, a declined consent, a failed exchange or a grant without ``offline_access`` leave it untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlsplit

import requests
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.consent_state import ConsentStates, finish_consent, save_grant
from airflow_provider_confluence.auth.status import DATABASE, all_statuses, connection_source
from airflow_provider_confluence.auth.stores.choice import ConnectionTokenStore, fingerprint
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.config.deployment import NotAConfluenceConnection, connection_settings
from airflow_provider_confluence.config.signin import no_consent_needed
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceError
from airflow_provider_confluence.plugins.pages import (
    HEADERS,
    message_page,
    missing_redirect_page,
    status_page,
    success_page,
)
from airflow_provider_confluence.plugins.single_use import SingleUseLedger
from airflow_provider_confluence.version_compat import connection_details, get_connection_in_server, mask_secret

log = logging.getLogger(__name__)

router = APIRouter(tags=["Confluence OAuth"])
UserDep = Annotated[BaseUser, Depends(get_user)]
CALLBACK_SUFFIX = "/confluence-oauth/callback"

#: Current epoch seconds for states and grant times (tests move it forward).
clock: Callable[[], float] = time.time


def consent_states() -> ConsentStates:
    """States signed with a key derived from ``[api] secret_key``, the API server's own secret.

    The core API signs its own short-lived tokens with it (``app.state.secret_key``), and every API server
    of a deployment must share it, so a state issued by one worker is checked by any other.
    """
    from airflow.api_fastapi.auth.tokens import get_signing_key

    return ConsentStates(
        get_signing_key("api", "secret_key"), ledger=SingleUseLedger("consent-state", clock), clock=clock
    )


def _page(html: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def may(user: BaseUser, conn_id: str, method: Literal["GET", "PUT"]) -> bool:
    """Whether the auth manager lets ``user`` do ``method`` (``GET``, ``PUT``) on the connection."""
    from airflow.api_fastapi.app import get_auth_manager

    details = connection_details(conn_id)
    return bool(get_auth_manager().is_authorized_connection(method=method, details=details, user=user))


def _forbidden(user: BaseUser, conn_id: str, root: str) -> HTMLResponse:
    log.warning("User %s may not edit connection %r; consent refused.", user.get_name(), conn_id)
    message = f"Your Airflow user may not edit connection {conn_id!r}, so it cannot connect it to Confluence."
    return _page(
        message_page(
            "Not allowed",
            message,
            hint="Ask an Airflow admin for edit rights on the connection, or to connect it.",
            root=root,
        ),
        403,
    )


def _settings(conn_id: str, root: str) -> ConnectionSettings | HTMLResponse:
    """The connection's checked settings, or the page that says why a consent cannot be saved into it."""
    source = connection_source(conn_id)
    if source is None:
        return _page(message_page("No such connection", f"Airflow has no connection {conn_id!r}.", root=root), 404)
    if source != DATABASE:
        message = (
            f"Connection {conn_id!r} is read from an {source}, which this page cannot write: a consent "
            "saved into the metadata database would be shadowed by it."
        )
        hint = (
            f"Run `airflow-confluence authorize --conn-id {conn_id}` and put the extra it prints into that "
            "backend, or create the connection in Admin -> Connections."
        )
        return _page(message_page("Cannot save a consent here", message, hint=hint, root=root), 409)
    conn = get_connection_in_server(conn_id)
    try:
        settings = connection_settings(conn_id, conn)
    except NotAConfluenceConnection as exc:
        return _page(message_page("Not a Confluence connection", exc.message, root=root), 400)
    except ConfluenceError as exc:
        return _page(message_page("Fix the connection first", exc.message, root=root), 400)
    if not settings.uses_refresh_token:
        message = no_consent_needed(conn_id, settings.auth_type)
        return _page(message_page("No consent needed", message, root=root), 400)
    return settings


@router.get("/connect/{conn_id}", name="confluence_oauth_connect")
def connect(conn_id: str, request: Request, user: UserDep) -> Response:
    """Send the browser to Atlassian's consent screen for this connection, with a fresh signed state."""
    if not may(user, conn_id, "PUT"):
        return _forbidden(user, conn_id, "../")
    settings = _settings(conn_id, "../")
    if isinstance(settings, Response):
        return settings
    callback_url = str(request.url_for("confluence_oauth_callback"))
    if not settings.redirect_uri or not urlsplit(settings.redirect_uri).path.endswith(CALLBACK_SUFFIX):
        return _page(missing_redirect_page(conn_id, callback_url, settings.redirect_uri), 400)
    states = consent_states()
    state = states.issue(conn_id=conn_id, user=user.get_id(), binding=states.binding(settings))
    url = oauth.authorization_url(
        auth_url=settings.auth_url,
        client_id=settings.client_id,
        scope=settings.scope,
        redirect_uri=settings.redirect_uri,
        state=state,
    )
    log.info("User %s starts the Atlassian consent for connection %r.", user.get_name(), conn_id)
    return RedirectResponse(
        url, status_code=302, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


@router.get("/callback", name="confluence_oauth_callback")
def callback(
    user: UserDep,
    state: str = "",
    code: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    """Atlassian's redirect after the consent screen: check the state, exchange the code, save the grant."""
    if code:
        mask_secret(code)  # before anything is logged, the API server's access log included
    states = consent_states()
    try:
        issued = states.verify(state, user=user.get_id())
    except ConfluenceAuthError as exc:
        log.warning("Refused a consent callback of user %s (%s).", user.get_name(), exc.error)
        return _page(message_page("Consent refused", exc.message), exc.status_code or 400)
    conn_id = issued.conn_id
    if not may(user, conn_id, "PUT"):
        return _forbidden(user, conn_id, "")
    settings = _settings(conn_id, "")
    if isinstance(settings, Response):
        return settings
    try:
        states.consume(issued, binding=states.binding(settings))
    except ConfluenceAuthError as exc:
        log.warning("Refused a consent callback for %r (%s).", conn_id, exc.error)
        return _page(message_page("Consent refused", exc.message, conn_id=conn_id), exc.status_code or 400)
    if error or not code:
        said = f"{error}: {error_description}"[:200] if error else "no authorization code"
        declined = error == "access_denied"
        title = "Consent declined" if declined else "Atlassian returned no code"
        message = (
            f"The consent for connection {conn_id!r} was declined on Atlassian's screen ({said}). Nothing was changed."
            if declined
            else f"Atlassian's answer had {said}. Nothing was changed."
        )
        return _page(message_page(title, message, conn_id=conn_id), 400)
    try:
        with requests.Session() as session:
            session.headers["User-Agent"] = "airflow-provider-confluence"
            grant = finish_consent(settings, code, session=session, clock=clock, on_secret=mask_secret)
    except ConfluenceError as exc:
        log.warning("The consent for %r could not be completed: %s", conn_id, exc.message)
        transient = isinstance(exc, ConfluenceAuthError) and exc.transient
        return _page(
            message_page("The consent could not be completed", f"{exc.message} Nothing was changed.", conn_id=conn_id),
            502 if transient else 400,
        )
    try:
        save_grant(ConnectionTokenStore(conn_id), grant)
    except ConfluenceError as exc:
        return _page(message_page("The new grant could not be saved", exc.message, conn_id=conn_id), 500)
    printed = fingerprint(grant.refresh_token)
    log.info(
        "User %s connected %r to %s (refresh token fingerprint %s; scopes %s).",
        user.get_name(),
        conn_id,
        grant.site_url,
        printed,
        grant.scope,
    )
    return _page(success_page(conn_id, grant.site_url, grant.scopes, printed), 200)


@router.get("/status", name="confluence_oauth_status")
def status(user: UserDep) -> HTMLResponse:
    """Every ``confluence_oauth`` connection the user may read, with a Connect button where they may edit."""
    rows = [(item, may(user, item.conn_id, "PUT")) for item in all_statuses() if may(user, item.conn_id, "GET")]
    return _page(status_page(rows, now=clock()), 200)
