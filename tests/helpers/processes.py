"""The plumbing of the tests that start real Airflow processes: ports, process groups, a fresh PostgreSQL database.

Imported by the test modules as ``from helpers.processes import ...`` (the tests directory is on ``sys.path``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from helpers.airflow_env import IN_CI, run_airflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[Any], timeout: float = 20.0, kill_wait: float = 5.0) -> None:
    """Stop a process started in its own session, with every child it forked."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (forked workers): make sure none is left.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=kill_wait)
    except subprocess.TimeoutExpired:
        pass


def stop_groups(procs: list[subprocess.Popen[Any]], timeout: float = 20.0, kill_wait: float = 5.0) -> None:
    """Stop several processes started in sessions of their own, at once: SIGTERM to every group, one shared wait
    of ``timeout`` seconds, then SIGKILL to whatever is left of each group."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        stop_group(proc, timeout=0.0, kill_wait=kill_wait)


def api_server_env(home: Path, port: int) -> dict[str, str]:
    """The environment every module gives its Airflow processes: a private AIRFLOW_HOME and an API server on port.

    One shared JWT secret: the executor signs the workload JWTs with it, the API server checks them with it
    (tokens.get_signing_args / get_sig_validation_args; the executor never generates one).
    """
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def served(server_output: str, method: str, path: str) -> int:
    """How many ``method path`` requests an API server's access log shows (a path without its query string).

    Airflow 3.1 and later log ``method=GET path=/x ...`` (their own access-log middleware); 3.0 leaves it to
    uvicorn: ``"GET /x HTTP/1.1" 200``.
    """
    return server_output.count(f"method={method} path={path} ") + server_output.count(f'"{method} {path} HTTP/')


def libpq_url(sqlalchemy_url: str) -> str:
    """``postgresql://...`` for psycopg2.connect from the ``postgresql+psycopg2://...`` URL Airflow is given."""
    parts = urlsplit(sqlalchemy_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))


@contextmanager
def fresh_postgres_database(prefix: str, env: Mapping[str, str] | None = None, timeout: float = 300) -> Iterator[str]:
    """A fresh, migrated Airflow metadata database ``<prefix>_<pid>``; yields its SQLAlchemy URL, dropped after.

    Skips when CONFLUENCE_TEST_PG_URL is not set (a failure under CI=true). ``airflow db migrate`` runs with env
    (and the database's URL as AIRFLOW__DATABASE__SQL_ALCHEMY_CONN).
    """
    url = os.environ.get("CONFLUENCE_TEST_PG_URL")
    if not url:
        if IN_CI:
            pytest.fail("CONFLUENCE_TEST_PG_URL is not set; `make test` sets it and starts PostgreSQL.")
        pytest.skip("CONFLUENCE_TEST_PG_URL is not set (see CONTRIBUTING.md, The test layers)")
    import psycopg2

    name = f"{prefix}_{os.getpid()}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(("postgresql+psycopg2", urlsplit(url).netloc, f"/{name}", "", ""))
    try:
        run_airflow(
            "db", "migrate", env={**(env or {}), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url}, timeout=timeout
        )
        yield database_url
    finally:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
