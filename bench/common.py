"""What every row of ``make bench`` shares: the machine, the emulator's port, processes, the metadata database.

``BenchContext`` is what ``run(ctx)`` of a row module (``bench/row_*.py``) receives.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from airflow_provider_confluence.testing import FakeAtlassian
from airflow_provider_confluence.testing.confluence import Space

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PY = sys.executable
MB = 1024 * 1024


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# -- machine -------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    packages = {}
    for name in (
        "apache-airflow",
        "airflow-provider-confluence",
        "atlassian-python-api",
        "requests",
        "requests-oauthlib",
        "apache-airflow-providers-atlassian-jira",
    ):
        try:
            packages[name] = version(name)
        except Exception:  # noqa: BLE001
            packages[name] = None
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory,
        "python": platform.python_version(),
        "os": platform.platform(),
        "airflow": packages["apache-airflow"],
        "packages": packages,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- helpers -------------------------------------------------------------------------------------------------


def access_token(fake: FakeAtlassian) -> str:
    """A token for the clients that do not refresh (the floor loop, atlassian-python-api)."""
    body = {
        "grant_type": "refresh_token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": fake.issue_grant(),
    }
    return str(requests.post(fake.token_url, json=body, timeout=30).json()["access_token"])


def seed_spaces(fake: FakeAtlassian, n: int) -> None:
    """Put ``n`` spaces straight into the emulator's model.

    ``FakeAtlassian.add_spaces`` checks each new key against every existing one (quadratic: minutes for
    100,000), so the bench writes the records directly. They are the same records ``add_space`` makes, without
    home pages, which space listings do not show.
    """
    model = fake._model
    with model.lock:
        now = fake.now()
        for index in range(1, n + 1):
            space = Space(model._next_space, f"B{index}", f"Space B{index}", "global", "current", now, ())
            model._spaces[space.id] = space
            model._next_space += 1


def emulator_port() -> int:
    """The one port every emulator of the run listens on: the provider sends credentials only to the hosts
    named in ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS``, which ``main`` sets to it for every process."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


EMULATOR_PORT = emulator_port()


def client_env(airflow_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(extra or {})
    return env


def run_json(args: list[str], env: dict[str, str], timeout: float) -> Any:
    result = subprocess.run([PY, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=str(BENCH))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- the metadata database of rows 4 and 6 -------------------------------------------------------------------


class MetadataDb:
    """A fresh, migrated Airflow metadata database: PostgreSQL when reachable, else SQLite (host file lock)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.kind = "sqlite"
        self._admin_url: str | None = None
        self._name = f"apc_bench_{os.getpid()}"
        url = os.environ.get("CONFLUENCE_TEST_PG_URL")
        sql_url = f"sqlite:///{home}/airflow.db"
        if url:
            try:
                import psycopg2

                admin = psycopg2.connect(url, connect_timeout=5)
                admin.autocommit = True
                with admin.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{self._name}"')
                    cursor.execute(f'CREATE DATABASE "{self._name}"')
                admin.close()
                parts = urlsplit(url)
                sql_url = urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{self._name}", "", ""))
                self.kind = "postgresql"
                self._admin_url = url
            except Exception as exc:  # noqa: BLE001 - fall back, and say so
                log(f"PostgreSQL at CONFLUENCE_TEST_PG_URL is not usable ({type(exc).__name__}); using SQLite")
        from cryptography.fernet import Fernet

        self.env = client_env(
            home,
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_url,
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            },
        )
        result = subprocess.run(
            [PY, "-m", "airflow", "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=str(home),
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")

    def close(self) -> None:
        if self._admin_url:
            import psycopg2

            admin = psycopg2.connect(self._admin_url)
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self._name,)
                )
                cursor.execute(f'DROP DATABASE IF EXISTS "{self._name}"')
            admin.close()


class Workers:
    """``count`` worker processes (forked by one ``worker.py spawn``), released phase by phase through files."""

    def __init__(self, folder: Path, env: dict[str, str], mode: str, count: int, spec: dict[str, Any]) -> None:
        self.folder = folder
        self.count = count
        self.log = open(folder / "workers.log", "w")  # noqa: SIM115
        command = [PY, "worker.py", "spawn", mode, str(count), json.dumps({**spec, "dir": str(folder)})]
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=str(BENCH), start_new_session=True
        )

    def wait_files(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for _ in self.folder.glob(prefix + "*")) < self.count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"workers stalled at {prefix!r} (exit {self.proc.returncode}); their log:\n"
                    + (self.folder / "workers.log").read_text()[-3000:]
                )
            time.sleep(0.02)

    def go(self, phase: int) -> None:
        (self.folder / f"go-{phase}").touch()

    def results(self, timeout: float) -> list[dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=timeout)
        self.log.close()
        if self.proc.returncode != 0:
            raise RuntimeError("workers failed:\n" + (self.folder / "workers.log").read_text()[-3000:])
        return list(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        """Stop the spawner and the workers it forked (its own process group), if still running."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()


# -- what a row module's run(ctx) gets ------------------------------------------------------------------------


@dataclass
class BenchContext:
    """What ``run(ctx)`` of a row module (``bench/row_*.py``) is given.

    :param home: an ``AIRFLOW_HOME`` folder for client processes (SQLite-free: rows that need a database ask
        :meth:`db`).
    :param work: a scratch folder, deleted at the end of the run.
    :param port: the one loopback port every emulator of the run must listen on (``FakeAtlassian(port=...)``):
        ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS`` names it for every process.
    :param python: the interpreter of ``.venv-bench`` (for subprocesses).
    :param bench: the ``bench/`` folder (the subprocesses' working directory).
    :param quick: a short run was asked for (``--quick``): rows may do fewer repetitions, and say so.
    """

    home: Path
    work: Path
    port: int
    python: str = PY
    bench: Path = BENCH
    quick: bool = False
    log: Callable[[str], None] = field(default=lambda message: log(message))
    _db: MetadataDb | None = None

    def client_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a client process (``AIRFLOW_HOME``, quiet logging, plus ``extra``)."""
        return client_env(self.home, extra)

    def db(self) -> MetadataDb:
        """The run's migrated metadata database (PostgreSQL when reachable), made on first use and shared."""
        if self._db is None:
            self._db = MetadataDb(self.home)
        return self._db

    def run_json(self, args: list[str], env: dict[str, str], timeout: float) -> Any:
        """Run ``python ARGS`` in ``bench/`` and return the JSON of its last line of output."""
        return run_json(args, env, timeout)

    def __getitem__(self, name: str) -> Any:
        """Dictionary-style access (``ctx["port"]``) for row modules that treat the context as a dict."""
        return getattr(self, name)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
