"""Fixtures of the integration tests (shared helpers live in ``tests/helpers``)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers.quota import EmulatorTime


@pytest.fixture
def emulator_time(fake_atlassian: Any, monkeypatch: pytest.MonkeyPatch) -> EmulatorTime:
    """The triggers' clock and sleep on the emulator's clock (an hour-long quota passes at once)."""
    # Only the emulator's clock jumps an hour, not the provider's: tokens that outlive the jump keep the two
    # from disagreeing about expiry (the token lifecycle is tested elsewhere).
    fake_atlassian.access_token_lifetime = 10 * 3600
    return EmulatorTime(fake_atlassian, monkeypatch)
