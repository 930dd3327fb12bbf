"""Fixtures of the system tests (real Airflow servers and workers)."""

from __future__ import annotations

import pytest

from helpers.processes import free_port


@pytest.fixture(scope="module")
def emulator_port() -> int:
    """A port reserved for the emulator of a module whose Airflow processes start before the test's emulator
    does: they get ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS=127.0.0.1:<port>``."""
    return free_port()


@pytest.fixture
def fake_atlassian_port(emulator_port: int) -> int:
    """Overrides the plugin's fixture: ``fake_atlassian`` listens on the module's :func:`emulator_port`."""
    return emulator_port
