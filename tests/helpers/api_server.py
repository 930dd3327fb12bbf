"""One ``airflow api-server`` process for the system tests that need only the API server (the broker, the consent
flow): started in a session of its own on 127.0.0.1, awaited until the test's own readiness check passes (bounded),
and stopped with every child it forked."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from helpers.processes import stop_group


def answers(method: str, url: str, status: int, **kwargs: object) -> bool:
    """Whether ``url`` answers ``method`` with ``status`` now (False when nothing listens yet)."""
    try:
        return requests.request(method, url, timeout=5, **kwargs).status_code == status  # type: ignore[arg-type]
    except requests.RequestException:
        return False


@contextmanager
def api_server(
    env: Mapping[str, str], home: Path, port: int, ready: Callable[[], bool], timeout: float, waiting_for: str
) -> Iterator[Path]:
    """Run ``airflow api-server --port <port> --workers 1`` with ``env`` in ``home``; yields its output file
    (``<home>/api-server.out``) once ``ready()`` is true.

    :param ready: the readiness check, polled every half second.
    :param timeout: seconds to wait for it; then the test fails with the tail of the server's output.
    :param waiting_for: what ``ready`` waits for, for that failure message.
    """
    log_path = home / "api-server.out"
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(home),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {waiting_for} after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield log_path
    finally:
        stop_group(proc)
