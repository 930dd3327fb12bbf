"""An OS process of rows 4 and 6 of ``make bench``, started by ``bench/run.py`` (many at once).

    python bench/worker.py put-connection CONN_ID CONN_JSON
    python bench/worker.py warm CONN_ID SPACE_KEY               one call: first token, cloud id, saved
    python bench/worker.py spawn provider N SPEC_JSON           row 4, this provider (connection store)
    python bench/worker.py spawn naive N SPEC_JSON              row 4, requests-oauthlib auto-refresh
    python bench/worker.py spawn create N SPEC_JSON             row 6, ConfluenceCreatePageOperator tasks

``spawn`` imports what the workers need once, then forks N worker processes, as Airflow's executors fork task
processes from a parent that has imported Airflow (32 cold interpreters would take minutes on 2 cores). Nothing
touches the database before the fork. The metadata database comes from the environment, like any Airflow
process. Each worker writes ``<dir>/ready-<id>`` once set up, then for each phase waits for ``<dir>/go-<phase>``,
makes its calls and writes ``<dir>/done-<phase>-<id>``; its result goes to ``<dir>/result-<id>.json``. The
parent prints the list of results as one line of JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

START_LINE_TIMEOUT = 300.0


class HttpStatusError(Exception):
    """A call of the naive client answered with a non-200 status (named ``HTTP <status>`` in the results)."""


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + START_LINE_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"never told to go ({path.name})")
        time.sleep(0.005)


def put_connection(conn_id: str, raw: str) -> None:
    from airflow.models.connection import Connection
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    conn = json.loads(raw)
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.query(Variable).filter(Variable.key == f"confluence_oauth_token_state__{conn_id}").delete()
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
    print(json.dumps({"conn_id": conn_id}))


def warm(conn_id: str, space_key: str) -> None:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    hook = ConfluenceOAuthHook(conn_id)
    print(json.dumps({"space_id": hook.get_space_id(space_key)}))


def phased(spec: dict[str, Any], setup: Callable[[], Callable[[], None]]) -> dict[str, Any]:
    """Set up, then make ``spec["calls"][k]`` calls in phase k; a call that raises is counted and goes on."""
    folder, ident = Path(spec["dir"]), spec["id"]
    call = setup()
    (folder / f"ready-{ident}").touch()
    calls = failures = 0
    errors: dict[str, int] = {}
    for phase, count in enumerate(spec["calls"], start=1):
        wait_for(folder / f"go-{phase}")
        for _ in range(count):
            calls += 1
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - every failure is counted, as a failed task would be
                failures += 1
                kind = str(exc) if isinstance(exc, HttpStatusError) else type(exc).__name__
                errors[kind] = errors.get(kind, 0) + 1
        (folder / f"done-{phase}-{ident}").touch()
    return {"calls": calls, "failures": failures, "errors": errors}


def provider(spec: dict[str, Any]) -> dict[str, Any]:
    def setup() -> Callable[[], None]:
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        hook = ConfluenceOAuthHook(spec["conn_id"])
        hook.settings  # noqa: B018 - read the connection before the start line, as a started task has
        return lambda: hook.get_space_id("DEMO") and None

    return phased(spec, setup)


def naive(spec: dict[str, Any]) -> dict[str, Any]:
    """What a naive hook does: requests-oauthlib's auto-refresh, the token saved to a shared file, no lock.

    The token is read from the file when the process starts (as a task reads its connection). After a failed
    call the process reads the file again and starts a new session, as a retried task would.
    """
    from requests_oauthlib import OAuth2Session

    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the emulator is plain http on loopback
    path = Path(spec["token_file"])
    url = f"{spec['gateway']}/wiki/api/v2/spaces?keys=DEMO"

    def save(token: dict[str, Any]) -> None:
        path.write_text(json.dumps(token))  # no lock, no re-read: last writer wins

    def session() -> OAuth2Session:
        return OAuth2Session(
            spec["client_id"],
            token=json.loads(path.read_text()),
            auto_refresh_url=spec["grant_url"],
            auto_refresh_kwargs={"client_id": spec["client_id"], "client_secret": spec["client_secret"]},
            token_updater=save,
        )

    def setup() -> Callable[[], None]:
        current = [session()]

        def call() -> None:
            try:
                response = current[0].get(url, timeout=30)
                if response.status_code != 200:
                    raise HttpStatusError(f"HTTP {response.status_code}")
            except Exception:
                try:
                    current[0] = session()
                except ValueError:  # the file was being rewritten by a sibling
                    pass
                raise

        return call

    return phased(spec, setup)


def create(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ConfluenceCreatePageOperator tasks one after the other, as a worker slot does."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator

    folder, ident = Path(spec["dir"]), spec["id"]
    # A worker that already runs tasks: Airflow's provider registry loaded, the connection and the token state
    # read once (no HTTP request). Each task below still builds its own hook, as a task does.
    ConfluenceOAuthHook(spec["conn_id"]).token_manager.store.load()
    (folder / f"ready-{ident}").touch()
    wait_for(folder / "go-1")
    ok = failed = 0
    errors: dict[str, int] = {}
    for title in spec["titles"]:
        task = ConfluenceCreatePageOperator(
            task_id=f"create_{title.split()[-1]}",
            space_id=spec["space_id"],
            title=title,
            body=f"<p>{title}</p>",
            if_exists="fail",
            confluence_conn_id=spec["conn_id"],
        )
        try:
            task.execute(context={})
            ok += 1
        except Exception as exc:  # noqa: BLE001 - a failed task is what we count
            failed += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    (folder / f"done-1-{ident}").touch()
    return {"ok": ok, "failed": failed, "errors": errors}


MODES: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "provider": (provider, "airflow_provider_confluence.hooks.confluence"),
    "naive": (naive, "requests_oauthlib"),
    "create": (create, "airflow_provider_confluence.operators.confluence"),
}


def spawn(mode: str, count: int, spec: dict[str, Any]) -> None:
    """Import once, fork ``count`` workers, wait for them, print their results."""
    import importlib
    import traceback

    run, preload = MODES[mode]
    importlib.import_module(preload)
    if mode != "naive":
        import airflow.models.connection  # noqa: F401 - the ORM models, imported but not connected
        import airflow.models.variable  # noqa: F401
    folder = Path(spec["dir"])
    children = []
    sys.stdout.flush()
    sys.stderr.flush()
    for ident in range(count):
        pid = os.fork()
        if pid == 0:  # the worker
            os.dup2(2, 1)  # its logs go to the log file: the parent's stdout carries only the results
            code = 0
            try:
                mine = {key: value for key, value in spec.items() if key != "per_worker"}
                mine.update(spec["per_worker"][ident] if "per_worker" in spec else {})
                result = run({**mine, "id": ident})
                (folder / f"result-{ident}.json").write_text(json.dumps(result))
            except BaseException:  # noqa: BLE001 - report and exit non-zero
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    if failed:
        raise SystemExit(f"{failed} of {count} workers failed")
    print(json.dumps([json.loads((folder / f"result-{i}.json").read_text()) for i in range(count)]))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "put-connection":
        put_connection(args[0], args[1])
    elif command == "warm":
        warm(args[0], args[1])
    elif command == "spawn":
        spawn(args[0], int(args[1]), json.loads(args[2]))
    else:
        raise SystemExit(f"unknown command {command}")
