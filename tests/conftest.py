"""Test setup: a private AIRFLOW_HOME (set before Airflow is imported), the metadata DB, connections.

The offline emulator's fixture, ``fake_atlassian``, comes from the provider's own pytest plugin
(``airflow_provider_confluence.testing.pytest_plugin``), registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Sets AIRFLOW_HOME and the rest of the private environment: it must come before anything imports Airflow.
from helpers.airflow_env import AIRFLOW_ENV, AIRFLOW_HOME, airflow_major, airflow_version, put_connection, run_airflow
from helpers.leak_audit import _AUDITED, _issued_count, audit_for_leaks


def pytest_sessionstart(session: pytest.Session) -> None:
    """On Airflow 3.0, log the Task SDK at the configured level, as Airflow 3.1 and later do.

    Airflow 3.0 leaves structlog unconfigured in a process that runs ``dag.test()`` (only the forked task
    process and its supervisor call ``airflow.sdk.log.configure_logging``), so structlog's defaults print every
    debug line of the in-process Task SDK whatever ``[logging] logging_level`` says; 3.1 configures it when
    Airflow is imported. test_debug_logging.py shows what those debug lines hold on each line.
    """
    if airflow_version() >= (3, 1) or airflow_major() < 3:
        return
    import logging

    import structlog

    if not structlog.is_configured():
        level = logging.getLevelName(AIRFLOW_ENV["AIRFLOW__LOGGING__LOGGING_LEVEL"])
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the private AIRFLOW_HOME."""
    run_airflow("db", "migrate")
    return AIRFLOW_HOME


@pytest.fixture
def confluence_conn(fake_atlassian: Any, airflow_db: Path) -> Iterator[str]:
    """A ``confluence_default`` connection row pointing at the emulator, with a fresh grant (``state_store``
    left to ``auto``: the connection itself)."""
    conn_id = "confluence_default"
    put_connection(conn_id, fake_atlassian.connection(conn_id))
    yield conn_id


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    texts = [content for _name, content in report.sections]
    if report.longrepr is not None:
        texts.append(report.longreprtext)
    if texts:
        _AUDITED.append((report.nodeid, "\n".join(texts)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = audit_for_leaks()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("-", "secret-leak audit")
        reporter.write_line(
            f"{len(_AUDITED)} captured outputs, the task logs, XCom values and rendered "
            "template fields scanned for "
            f"{_issued_count()} emulator-issued secrets; {len(leaks)} leak(s)"
        )
        for leak in leaks:
            reporter.write_line(f"  LEAK {leak}", red=True)
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
