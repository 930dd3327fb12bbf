"""Test setup: a private AIRFLOW_HOME (set before Airflow is imported), the metadata DB, connections.

The offline emulator's fixture, ``fake_atlassian``, comes from the provider's own pytest plugin
(``airflow_provider_confluence.testing.pytest_plugin``), registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE_DAGS = REPO / "example_dags"
IN_CI = os.environ.get("CI", "").lower() == "true"
# A fixed test key: connections written by one test process are read by the worker processes it starts.
FERNET_KEY = "pK2lQm8v0o2X6cK0aFhV1cYl8l2t9Yb3bq9z4bZr0mA="

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="apc-airflow-home-"))
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
    "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
}
os.environ.update(AIRFLOW_ENV)


def airflow_major() -> int:
    from importlib.metadata import version

    return int(version("apache-airflow").split(".")[0])


def require_shared(relative: str) -> Path:
    """A file of ../shared, or a skip that says why (it is absent on a user's machine)."""
    path = SHARED / relative
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI lays shared/ beside the clone.")
        pytest.skip(f"{path} is not here (shared/ is only beside the project's own checkouts)")
    return path


def run_airflow(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command of this virtualenv and fail with its output when it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode != 0:
        raise AssertionError(f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database in the private AIRFLOW_HOME."""
    run_airflow("db", "migrate")
    return AIRFLOW_HOME


def put_connection(conn_id: str, conn: dict[str, Any]) -> None:
    """Create (or replace) a connection row in the metadata database, and drop its Variable state and journal."""
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        state_keys = (f"confluence_oauth__{conn_id}", f"confluence_oauth_token_journal__{conn_id}")
        session.query(Variable).filter(Variable.key.in_(state_keys)).delete(synchronize_session=False)
        session.add(
            Connection(
                conn_id=conn_id,
                conn_type=conn["conn_type"],
                host=conn["host"],
                login=conn["login"],
                password=conn["password"],
                extra=json.dumps(conn["extra"]),
            )
        )


def read_connection_extra(conn_id: str) -> dict[str, Any]:
    """The connection's extra as stored in the metadata database (decrypted)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one()
        return json.loads(row.get_extra() or "{}")


def read_variable(key: str) -> str | None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == key).one_or_none()
        return None if row is None else row.get_val()


@pytest.fixture
def confluence_conn(fake_atlassian: Any, airflow_db: Path) -> Iterator[str]:
    """A ``confluence_default`` connection row pointing at the emulator, with a fresh grant (``token_store``
    left to ``auto``: the connection itself)."""
    conn_id = "confluence_default"
    put_connection(conn_id, fake_atlassian.connection(conn_id))
    yield conn_id


def scan_for_secrets(text: str, secrets: list[str]) -> list[str]:
    """The planted secrets that appear in ``text`` (an empty list is the only good answer)."""
    return [s for s in secrets if s and s in text]


# -- the secret-leak audit of the whole run ------------------------------------------------------------
# Every secret the emulator mints (client secrets, refresh and access tokens, authorization codes) is a
# canary. Everything a test printed or logged, and every failure text, is kept; at the end of the run it is
# scanned, together with the task log files of this process's AIRFLOW_HOME, and any canary found fails the run.

_AUDITED: list[tuple[str, str]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    texts = [content for _name, content in report.sections]
    if report.longrepr is not None:
        texts.append(report.longreprtext)
    if texts:
        _AUDITED.append((report.nodeid, "\n".join(texts)))


def audit_for_leaks() -> list[str]:
    """Where canaries were found: ``nodeid: n secret(s)`` lines (never the secrets themselves)."""
    from airflow_provider_confluence.testing import find_leaks, issued_secrets

    canaries = issued_secrets()
    places = [(nodeid, find_leaks(text, canaries)) for nodeid, text in _AUDITED]
    logs = AIRFLOW_HOME / "logs"
    if logs.exists():
        places += [(str(p), find_leaks(p.read_text(errors="replace"), canaries)) for p in logs.rglob("*") if p.is_file()]
    places += [(where, find_leaks(text, canaries)) for where, text in _stored_task_outputs()]
    return [f"{where}: {len(found)} emulator-issued secret(s)" for where, found in places if found]


def _stored_task_outputs() -> list[tuple[str, str]]:
    """XCom values and rendered template fields that the in-process DAG runs stored in the session's database."""
    import sqlite3

    database = AIRFLOW_HOME / "airflow.db"
    if not database.exists():
        return []
    found: list[tuple[str, str]] = []
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in (("xcom", "value"), ("rendered_task_instance_fields", "rendered_fields")):
            if table in tables:
                for (value,) in db.execute(f"SELECT {column} FROM {table}"):  # noqa: S608 - fixed names
                    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    found.append((f"{table}.{column}", text))
    return found


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


def _issued_count() -> int:
    from airflow_provider_confluence.testing import issued_secrets

    return len(issued_secrets())
