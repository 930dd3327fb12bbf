"""A separate OS process that uses the provider the way a task does; driven by the concurrency tests.

Usage (the metadata DB comes from the environment, like any Airflow process):
    python airflow_worker.py put-connection CONN_ID JSON
    python airflow_worker.py put-connections JSON_OF_CONNECTIONS_BY_ID
    python airflow_worker.py read-extra CONN_ID
    python airflow_worker.py read-variable KEY
    python airflow_worker.py refresh CONN_ID
    python airflow_worker.py hammer CONN_ID MIN_CALLS READY_FILE GO_FILE EMULATOR_URL MIN_REFRESHES
"""

from __future__ import annotations

import json
import os
import sys
import time

import requests

#: Where results go: this process's stdout. Everything else printed (Airflow 3.2 logs to stdout) goes to stderr.
RESULTS = sys.stdout


def emit(text: str) -> None:
    print(text, file=RESULTS, flush=True)


def put_connection(conn_id: str, raw: str) -> None:
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    conn = json.loads(raw)
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        state_keys = (f"confluence_oauth_token_state__{conn_id}", f"confluence_oauth__{conn_id}")  # new, pre-0.2.0
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


def read_extra(conn_id: str) -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one()
        emit(row.get_extra())


def read_variable(key: str) -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == key).one()
        emit(row.get_val())


def put_variable(key: str, value: str) -> None:
    from airflow.models.variable import Variable

    Variable.set(key, value)


def has_variable(key: str) -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        emit(json.dumps(session.query(Variable).filter(Variable.key == key).one_or_none() is not None))


def refresh(conn_id: str) -> None:
    """One run of a task that needs a fresh access token: the stored one is refused once, as after a 401."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    hook = ConfluenceOAuthHook(conn_id)
    hook.token_manager.refresh_rejected(hook.get_access_token())
    emit(json.dumps({"store": hook.token_manager.store.name}))


def hammer(conn_id: str, min_calls: int, ready_file: str, go_file: str, emulator_url: str, min_refreshes: int) -> None:
    """Make at least MIN_CALLS API calls, and go on (up to 20x) until the grant was refreshed MIN_REFRESHES times."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    hook = ConfluenceOAuthHook(conn_id)
    hook.settings  # noqa: B018 - parse the connection before the start line
    open(ready_file, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go_file):  # a start line, so that the processes really overlap
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.005)
    calls = 0
    while calls < min_calls * 20:
        hook.get_space_id("DEMO")
        calls += 1
        if calls >= min_calls:
            state = requests.get(f"{emulator_url}/_emulator/state", timeout=5).json()
            if state["counters"]["refreshes"] >= min_refreshes:
                break
    emit(json.dumps({"calls": calls, "requests": hook.get_conn().request_count}))


if __name__ == "__main__":
    sys.stdout = sys.stderr  # before Airflow is imported: its loggers bind the stream they find
    command, *args = sys.argv[1:]
    if command == "put-connection":
        put_connection(args[0], args[1])
    elif command == "put-connections":  # several in one process: one Airflow import
        for conn_id, conn in json.loads(args[0]).items():
            put_connection(conn_id, json.dumps(conn))
    elif command == "read-extra":
        read_extra(args[0])
    elif command == "read-variable":
        read_variable(args[0])
    elif command == "put-variable":
        put_variable(args[0], args[1])
    elif command == "has-variable":
        has_variable(args[0])
    elif command == "refresh":
        refresh(args[0])
    elif command == "hammer":
        hammer(args[0], int(args[1]), args[2], args[3], args[4], int(args[5]))
    else:
        raise SystemExit(f"unknown command {command}")
