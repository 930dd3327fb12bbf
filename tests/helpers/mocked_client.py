"""A :class:`ConfluenceClient` for unit tests over requests-mock: fixed tokens, no sleeping, a seeded jitter."""

from __future__ import annotations

import random

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.retry import RetryPolicy

API = "https://api.example.test"
GW = f"{API}/ex/confluence/cloud-1"
SITE = "https://acme.atlassian.net"
V2 = f"{GW}/wiki/api/v2"


class StaticTokens:
    """A token source that always has a token (the second one after a rejection)."""

    def __init__(self, name: str = "TREE") -> None:
        self.name = name

    def get_access_token(self) -> str:
        return f"at-{self.name}-token"

    def refresh_rejected(self, rejected_token: str) -> str:
        return f"at-{self.name}-token-2"

    def access_token_expired(self) -> bool:
        return False


def mocked_client(name: str = "TREE") -> ConfluenceClient:
    """A client of the gateway :data:`GW` for the site :data:`SITE` (mock its URLs with requests-mock)."""
    return ConfluenceClient(
        api_url=API,
        cloud_id="cloud-1",
        tokens=StaticTokens(name),
        site_url=SITE,
        retry=RetryPolicy(rng=random.Random(7)),
        sleep=lambda _: None,
    )
