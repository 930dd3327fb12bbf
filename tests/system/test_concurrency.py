"""Many OS processes, one connection, real PostgreSQL: every rotation is seen by everyone, none is wasted.

8 processes make at least 20 hook calls each on one connection stored in PostgreSQL while the emulator's
access tokens live one second, so they expire several times during the run. The claims:

* one token request per expiry: every refresh happened while the newest access token was inside its last
  leeway window (or there was none), never while a sibling's fresh token was there to adopt;
* zero ``invalid_grant``, and no refresh ever presented an older refresh token than the newest one;
* the store holds the refresh token the emulator issued last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.processes import fresh_postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.airflow2]

WORKER = Path(__file__).resolve().parents[1] / "helpers" / "airflow_worker.py"
PROCESSES = 8
MIN_CALLS = 20
LIFETIME = 1.0
LEEWAY = LIFETIME / 4  # the TokenManager's leeway for tokens this short
MIN_REFRESHES = 4


@pytest.fixture(scope="module")
def postgres_env():
    """A fresh, migrated Airflow metadata database in PostgreSQL; the env vars that point Airflow at it."""
    from helpers.airflow_env import airflow_major

    with fresh_postgres_database(f"apc_concurrency_af{airflow_major()}", timeout=600) as database_url:
        yield {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url}


def worker(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(WORKER.parent),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_race(env: dict[str, str], fake, conn_id: str, tmp_path: Path) -> list[dict]:
    """Start the processes, release them together, and return what each printed."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(PROCESSES)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "hammer",
                conn_id,
                str(MIN_CALLS),
                str(ready[i]),
                str(go),
                fake.url,
                str(MIN_REFRESHES),
            ],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(WORKER.parent),
        )
        for i in range(PROCESSES)
    ]
    try:
        import time

        deadline = time.monotonic() + 240
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), "a worker died before the start line"
            assert time.monotonic() < deadline, "workers did not get ready"
            time.sleep(0.05)
        go.touch()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def assert_rotation_was_perfect(fake, results: list[dict]) -> None:
    counters = fake.counters
    assert all(r["calls"] >= MIN_CALLS for r in results)
    assert counters["invalid_grants"] == 0
    assert counters["grant_revocations"] == 0
    assert counters["stale_refresh_reuses"] == 0, "a process presented an older refresh token"
    log = fake.refresh_log
    assert len(log) == counters["refreshes"] >= MIN_REFRESHES
    assert all(entry["ok"] and entry["was_latest"] for entry in log)
    # One token request per expiry: nobody refreshed while a fresh token was there to adopt.
    early = [e["latest_access_remaining"] for e in log if (e["latest_access_remaining"] or 0) > LEEWAY + 0.05]
    assert early == [], f"refreshes while the newest token still had {early} s to live"


@pytest.fixture
def race_emulator(fake_atlassian):
    fake_atlassian.add_space("DEMO")
    fake_atlassian.latency = 0.01
    # Real time on both sides: the processes compute expiry from their own clocks.
    fake_atlassian.access_token_lifetime = LIFETIME
    return fake_atlassian


def test_processes_share_rotations_through_the_connection_row(postgres_env, race_emulator, tmp_path):
    fake = race_emulator
    conn_id = "confluence_race"
    worker(postgres_env, "put-connection", conn_id, json.dumps(fake.connection(conn_id)))
    results = run_race(postgres_env, fake, conn_id, tmp_path)
    assert_rotation_was_perfect(fake, results)
    extra = json.loads(worker(postgres_env, "read-extra", conn_id))
    assert extra["refresh_token"] == fake.latest_refresh_token


def test_processes_share_rotations_through_the_variable_on_one_host(postgres_env, race_emulator, tmp_path):
    fake = race_emulator
    conn_id = "confluence_race_variable"
    worker(postgres_env, "put-connection", conn_id, json.dumps(fake.connection(conn_id, state_store="variable")))
    results = run_race(postgres_env, fake, conn_id, tmp_path)
    assert_rotation_was_perfect(fake, results)
    state = json.loads(worker(postgres_env, "read-variable", f"confluence_oauth_token_state__{conn_id}"))
    assert state["refresh_token"] == fake.latest_refresh_token
