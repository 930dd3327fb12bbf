"""`make demo` keeps working: the script runs the example DAGs end to end and reaches its end state."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers.airflow_env import REPO, airflow_major


@pytest.mark.skipif(airflow_major() < 3, reason="make demo runs on the Airflow 3 virtualenv")
def test_the_demo_reaches_its_end_state():
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(REPO / "scripts"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"page: +https://fake-site\.atlassian\.net/wiki/spaces/DEMO/pages/\d+/", out)
    assert "spaces read:   600 in 3 requests" in out
    assert "rotated and written back: yes" in out
    assert "invalid_grant: 0" in out
    assert re.search(r"metrics page: +https://fake-site\.atlassian\.net/wiki/spaces/DEMO/pages/\d+/Daily\+metrics", out)
    assert "labels ['daily-report', 'metrics'], attached metrics-2026-11-29.csv (" in out
    assert re.search(r"report index: +https://fake-site\.atlassian\.net/wiki/spaces/DEMO/pages/\d+/", out)
