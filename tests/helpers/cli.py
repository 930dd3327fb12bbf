"""Running the ``airflow-confluence`` command in a subprocess of the test's environment."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CONSOLE_SCRIPT = Path(sys.executable).with_name("airflow-confluence")


def raw_extra(conn_id: str) -> str:
    """The connection's extra column as stored: Fernet ciphertext, different after any write."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        return session.execute(text("SELECT extra FROM connection WHERE conn_id = :c"), {"c": conn_id}).scalar_one()


class Cli:
    """The console script in a child process; its output is read as it comes, with bounded waits."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is missing: is the provider installed with its scripts?"
        self.proc = subprocess.Popen(
            [str(CONSOLE_SCRIPT), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=tempfile.gettempdir(),
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._err_lines: queue.Queue[str] = queue.Queue()
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, None), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, self._err_lines), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, into: list[str], lines: queue.Queue[str] | None) -> None:
        for line in stream:
            into.append(line)
            if lines is not None:
                lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first match of ``pattern`` in a stderr line that arrives within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._err_lines.get(timeout=remaining)
            except queue.Empty:
                break
            if found := re.search(pattern, line):
                return found
        self.proc.kill()
        raise AssertionError(f"no {pattern!r} within {timeout} s; stderr was:\n{''.join(self.err)}")

    def finish(self, stdin_text: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        """Send ``stdin_text``, close stdin, and wait for the exit code and the whole output."""
        assert self.proc.stdin is not None
        if stdin_text is not None:
            self.proc.stdin.write(stdin_text)
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
        for pump in self._pumps:
            pump.join(timeout=10)
        return code, "".join(self.out), "".join(self.err)
