"""The consent app of the plugin under FastAPI's test client, with the test users."""

from __future__ import annotations

from typing import Any

BASE = "http://testserver"


USERS = {"admin": "admin", "alice": "op", "viewer": "viewer"}


def _app() -> Any:
    """The plugin's app, mounted as the API server mounts a plugin's ``fastapi_apps`` entry (``app.mount``)."""
    from fastapi import FastAPI

    from airflow_provider_confluence.plugins.app import create_app

    root = FastAPI()
    root.mount("/confluence-oauth", create_app())
    return root
