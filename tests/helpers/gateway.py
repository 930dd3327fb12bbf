"""A connection whose API gateway is the emulator, for tests of the token macro."""

from __future__ import annotations

from typing import Any

import requests


def put_gateway_connection(fake: Any) -> None:
    """The HTTP connection of the example: the emulator's gateway for its site."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == "confluence_gateway").delete()
        session.add(
            Connection(
                conn_id="confluence_gateway", conn_type="http", host=f"{fake.api_url}/ex/confluence/{fake.cloud_id}"
            )
        )


def gateway_call(fake: Any, method: str, path: str, scopes: str, **kwargs: Any) -> requests.Response:
    """One request to the emulator's gateway (``path`` under ``/ex/confluence/<cloud id>``) with a token of
    ``scopes``."""
    token = fake.issue_access_token(scopes)
    return requests.request(
        method,
        f"{fake.api_url}/ex/confluence/{fake.cloud_id}{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **kwargs,
    )
