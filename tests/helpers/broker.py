"""The token broker of the plugin, served on loopback for a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from helpers.processes import free_port


@contextmanager
def running_broker() -> Iterator[str]:
    """The plugin's app behind uvicorn on loopback, in a thread, for as long as the block runs; its base URL."""
    import uvicorn
    from fastapi import FastAPI

    from airflow_provider_confluence.plugins.app import create_app

    root = FastAPI()
    root.mount("/confluence-oauth", create_app())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def broker_app_client(*, raise_server_exceptions: bool = True) -> Iterator[Any]:
    """A TestClient of an app that mounts the plugin's app where the API server does.

    :param raise_server_exceptions: False to see what a caller gets when the route fails (a 500), not the error.
    """
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_confluence.plugins.app import create_app

    root = FastAPI()
    root.mount("/confluence-oauth", create_app())
    with TestClient(root, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


def key_of(conn_id: str) -> str:
    """The broker key of the connection as Airflow reads it now (its broker_secret, else the derived key)."""
    from airflow_provider_confluence.auth.broker.protocol import broker_key
    from airflow_provider_confluence.config.deployment import connection_settings
    from airflow_provider_confluence.version_compat import get_connection_in_server

    # As the broker reads it (Airflow's cached lookup would register the connection's tokens with the masker).
    key = broker_key(connection_settings(conn_id, get_connection_in_server(conn_id)))
    assert key
    return key


def gate_key() -> str:
    """The deployment's broker key, as a task reads it (created here as the API server would, if missing)."""
    from airflow_provider_confluence.plugins.broker import DeploymentGate

    return DeploymentGate._read_or_create()


def ask(client: Any, conn_id: str, *, secret: str | None = None, **kw: Any) -> Any:
    """POST a token request for ``conn_id``, signed now with its key (or ``secret``) and the deployment's key."""
    from airflow_provider_confluence.auth.broker.protocol import signed_request

    if "gate_key" not in kw:
        kw["gate_key"] = gate_key()
    body = signed_request(secret or key_of(conn_id), conn_id, timestamp=int(time.time()), **kw)
    return client.post("/confluence-oauth/token", json=body)
