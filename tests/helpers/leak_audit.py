"""The secret-leak audit of the whole run.

Every secret the emulator mints (client secrets, refresh and access tokens, authorization codes) is a canary.
Everything a test printed or logged, and every failure text, is kept; at the end of the run it is scanned,
together with the task log files of this process's AIRFLOW_HOME, and any canary found fails the run.
"""

from __future__ import annotations

from helpers.airflow_env import AIRFLOW_HOME

_AUDITED: list[tuple[str, str]] = []


def audit_for_leaks() -> list[str]:
    """Where canaries were found: ``nodeid: n secret(s)`` lines (never the secrets themselves)."""
    from airflow_provider_confluence.testing import find_leaks, issued_secrets

    canaries = issued_secrets()
    places = [(nodeid, find_leaks(text, canaries)) for nodeid, text in _AUDITED]
    logs = AIRFLOW_HOME / "logs"
    if logs.exists():
        places += [
            (str(p), find_leaks(p.read_text(errors="replace"), canaries)) for p in logs.rglob("*") if p.is_file()
        ]
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


def _issued_count() -> int:
    from airflow_provider_confluence.testing import issued_secrets

    return len(issued_secrets())
