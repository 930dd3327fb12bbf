"""A task-like OS process that uses the hook once, and may die by SIGKILL at a chosen point of a rotation.

Usage (the metadata DB comes from the environment, like any Airflow process):
    python fault_worker.py run CONN_ID SPACE_KEY

Environment:
    FAULT_KILL_AT   after_response: the token endpoint answered (the grant rotated), nothing was saved yet;
                    during_save:    the new extra is written into the open DB transaction, never committed;
                    after_save:     the rotated state is committed, the token was never used;
                    unset:          no fault.
    FAULT_MARKER    a file that receives the point's name just before the process kills itself, so that the
                    test knows the process died exactly there and not anywhere else.
    FORCE_REFRESH   "1": refresh even if the stored access token is valid (as after a 401).

The provider gets no test hook: this wrapper monkeypatches ``oauth.refresh`` or the connection store's save.
Prints one JSON line: {"space_id": ...} on success, or {"error": CLASS, "message": ..., "conn_id": ...} (exit 3).
Never prints a token.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def die(point: str) -> None:
    marker = os.environ.get("FAULT_MARKER")
    if marker:
        with open(marker, "w") as handle:
            handle.write(point)
    os.kill(os.getpid(), signal.SIGKILL)


def stored_extra(session, conn_id: str) -> str:
    """The extra column as this session's transaction sees it (ciphertext)."""
    from sqlalchemy import text

    query = text("SELECT extra FROM connection WHERE conn_id = :conn_id")
    return session.execute(query, {"conn_id": conn_id}).scalar()


def install_fault(point: str) -> None:
    from airflow_provider_confluence.auth import oauth
    from airflow_provider_confluence.auth.stores import choice as stores

    if point == "after_response":
        real_refresh = oauth.refresh

        def refresh_then_die(*args, **kwargs):
            real_refresh(*args, **kwargs)  # Atlassian answered: the old refresh token is superseded now
            die(point)

        oauth.refresh = refresh_then_die
    elif point == "during_save":
        real_save = stores._ConnectionTransaction.save

        def save_dying_before_commit(self, state):
            session = self._session
            before = stored_extra(session, self._conn_id)

            def flush_then_die():
                session.flush()  # the UPDATE of the extra is in the open transaction ...
                written = stored_extra(session, self._conn_id) != before
                die(point if written else f"{point} (nothing was written)")  # ... which is never committed

            session.commit = flush_then_die
            real_save(self, state)

        stores._ConnectionTransaction.save = save_dying_before_commit
    elif point == "after_save":
        real_save = stores._ConnectionTransaction.save

        def save_then_die(self, state):
            real_save(self, state)  # committed
            die(point)

        stores._ConnectionTransaction.save = save_then_die
    elif point:
        raise SystemExit(f"unknown FAULT_KILL_AT {point!r}")


def run(conn_id: str, space_key: str) -> int:
    from airflow_provider_confluence.exceptions import ConfluenceError
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    install_fault(os.environ.get("FAULT_KILL_AT", ""))
    hook = ConfluenceOAuthHook(conn_id)
    try:
        if os.environ.get("FORCE_REFRESH") == "1":
            hook.token_manager.refresh_rejected(hook.get_access_token())
        space_id = hook.get_space_id(space_key)
    except ConfluenceError as exc:
        print(
            json.dumps({"error": type(exc).__name__, "message": exc.message, "conn_id": getattr(exc, "conn_id", None)})
        )
        return 3
    print(json.dumps({"space_id": space_id, "store": hook.token_manager.store.name}))
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command != "run":
        raise SystemExit(f"unknown command {command}")
    sys.exit(run(args[0], args[1]))
