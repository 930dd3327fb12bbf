"""A ``ConfluenceClient`` on the emulator with one fixed access token (the token manager is tested elsewhere)."""

from __future__ import annotations

from typing import Any

from airflow_provider_confluence.client.confluence import ConfluenceClient


class StaticTokens:
    """One access token of an emulator grant; a 401 is a test failure."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_access_token(self) -> str:
        return self._token

    def refresh_rejected(self, rejected_token: str) -> str:
        raise AssertionError("no 401 expected here")

    def access_token_expired(self) -> bool:
        return False


def loopback_client(fake: Any, scopes: str | None = None) -> ConfluenceClient:
    """A client of ``fake`` holding a token of a new grant (with ``scopes``, else the default ones); no sleeps."""
    token = fake.issue_access_token() if scopes is None else fake.issue_access_token(scopes)
    return ConfluenceClient(
        api_url=fake.api_url,
        cloud_id=fake.cloud_id,
        tokens=StaticTokens(token),
        site_url=fake.site_url,
        sleep=lambda seconds: None,
    )


def sent(fake: Any, route: str) -> list[dict[str, Any]]:
    """The requests the emulator recorded for ``route``."""
    return [r for r in fake.requests if r["route"] == route]
