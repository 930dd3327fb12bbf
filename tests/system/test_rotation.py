"""Rotation across runs: each new process starts from the token the previous one saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.airflow_env import read_connection_extra

pytestmark = pytest.mark.airflow2

WORKER = Path(__file__).resolve().parents[1] / "helpers" / "airflow_worker.py"


def run_in_new_process(conn_id: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(WORKER), "refresh", conn_id],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(WORKER.parent),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_second_run_in_a_new_process_uses_the_rotated_token(fake_atlassian, confluence_conn):
    planted = fake_atlassian.latest_refresh_token
    assert run_in_new_process(confluence_conn) == {"store": "connection"}
    after_first = read_connection_extra(confluence_conn)["refresh_token"]
    assert after_first == fake_atlassian.latest_refresh_token != planted
    run_in_new_process(confluence_conn)
    after_second = read_connection_extra(confluence_conn)["refresh_token"]
    assert after_second == fake_atlassian.latest_refresh_token not in (planted, after_first)
    # The first run refreshes the empty state, then once more; the second run once: every time the latest token.
    assert [entry["was_latest"] for entry in fake_atlassian.refresh_log] == [True, True, True]
    assert fake_atlassian.counters["stale_refresh_reuses"] == 0
