"""Fixtures of the integration tests (shared helpers live in ``tests/helpers``)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.quota import EmulatorTime

#: the scopes of every operator: comments, deletes and folders besides the emulator's default ones
WIDE_SCOPES = (
    f"{DEFAULT_SCOPES} read:comment:confluence write:comment:confluence delete:page:confluence "
    "read:folder:confluence write:folder:confluence read:hierarchical-content:confluence"
)


@pytest.fixture
def wide_conn(fake_atlassian: Any, airflow_db: Any) -> str:
    """``confluence_default`` with a grant of :data:`WIDE_SCOPES`."""
    put_connection("confluence_default", fake_atlassian.connection("confluence_default", scopes=WIDE_SCOPES))
    return "confluence_default"


@pytest.fixture
def emulator_time(fake_atlassian: Any, monkeypatch: pytest.MonkeyPatch) -> EmulatorTime:
    """The triggers' clock and sleep on the emulator's clock (an hour-long quota passes at once)."""
    # Only the emulator's clock jumps an hour, not the provider's: tokens that outlive the jump keep the two
    # from disagreeing about expiry (the token lifecycle is tested elsewhere).
    fake_atlassian.access_token_lifetime = 10 * 3600
    return EmulatorTime(fake_atlassian, monkeypatch)
