"""The test run's private Airflow environment, and helpers to read and write its metadata database.

Imported by ``conftest.py`` before Airflow is, so AIRFLOW_HOME and the rest are set first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
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


def airflow_version() -> tuple[int, int]:
    """The installed Airflow's major and minor version."""
    from importlib.metadata import version

    major, minor = version("apache-airflow").split(".")[:2]
    return int(major), int(minor)


def run_airflow(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
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


def put_connection(conn_id: str, conn: dict[str, Any]) -> None:
    """Create (or replace) a connection row in the metadata database, and drop its Variable state and journal."""
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        state_keys = (
            f"confluence_oauth_token_state__{conn_id}",
            f"confluence_oauth_token_journal__{conn_id}",
            f"confluence_oauth__{conn_id}",
        )  # the Variable store's name before 0.2.0
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


def scan_for_secrets(text: str, secrets: list[str]) -> list[str]:
    """The planted secrets that appear in ``text`` (an empty list is the only good answer)."""
    return [s for s in secrets if s and s in text]
