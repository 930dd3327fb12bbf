"""pytest plugin: the ``fake_atlassian`` fixture (registered as a ``pytest11`` entry point)."""

from __future__ import annotations

from typing import Iterator

import pytest

from .emulator import FakeAtlassian


@pytest.fixture
def fake_atlassian() -> Iterator[FakeAtlassian]:
    """A started :class:`~airflow_provider_confluence.testing.FakeAtlassian`, stopped after the test."""
    with FakeAtlassian() as fake:
        yield fake
