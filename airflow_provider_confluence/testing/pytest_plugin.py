"""pytest plugin: the ``fake_atlassian`` fixture (registered as a ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_ENV

from .emulator import FakeAtlassian


@pytest.fixture
def fake_atlassian_port() -> int:
    """The port ``fake_atlassian`` listens on; 0 (the default) picks a free one.

    Override it in a module whose Airflow processes start before the test (an API server, a scheduler) with a
    port reserved for the emulator, and give those processes ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS`` =
    ``127.0.0.1:<that port>``.
    """
    return 0


@pytest.fixture
def fake_atlassian(fake_atlassian_port: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAtlassian]:
    """A started :class:`~airflow_provider_confluence.testing.FakeAtlassian`, stopped after the test.

    While it runs, ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS`` names the emulator's address (and nothing
    else), so that the provider may send credentials to it: in this process and in the processes it starts.
    """
    with FakeAtlassian(port=fake_atlassian_port) as fake:
        monkeypatch.setenv(ALLOWED_HOSTS_ENV, fake.allowed_endpoint_hosts)
        yield fake
