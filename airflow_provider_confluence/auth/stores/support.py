"""What the token stores share: fingerprints, the host file lock, and a database session of their own."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from airflow_provider_confluence.auth.fingerprint import fingerprint
from airflow_provider_confluence.version_compat import create_session, masking_stays_in_process

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "LEGACY_VARIABLE_PREFIX",
    "VARIABLE_PREFIX",
    "fingerprint",
    "host_lock",
    "legacy_variable_key",
    "private_session",
    "row_lock_or_host_lock",
    "variable_key",
    "variable_lock_name",
]

#: The Variable store keeps a connection's state in ``confluence_oauth_token_state__<conn_id>``: the word "token"
#: in the key makes Airflow mask the value (Variables list, CLI, task logs) with its default
#: ``sensitive_var_conn_names``.
VARIABLE_PREFIX = "confluence_oauth_token_state__"
#: The name of that Variable before 0.2.0, which Airflow did not mask. The stores read it once: the first locked
#: transaction moves it to :data:`VARIABLE_PREFIX` and deletes it (:mod:`.variable`).
LEGACY_VARIABLE_PREFIX = "confluence_oauth__"


def variable_key(conn_id: str) -> str:
    """The Variable that holds the token state of ``conn_id`` in the Variable store."""
    return VARIABLE_PREFIX + conn_id


def legacy_variable_key(conn_id: str) -> str:
    """The name :func:`variable_key` had before 0.2.0."""
    return LEGACY_VARIABLE_PREFIX + conn_id


def variable_lock_name(conn_id: str) -> str:
    """The host lock of the Variable store of ``conn_id``: named after the Variable's name before 0.2.0, as it
    was then, so that a process of an older version on the same host takes the same lock during an upgrade."""
    return f"variable:{legacy_variable_key(conn_id)}"


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process on this host (``flock`` on a file in the temp folder)."""
    folder = os.path.join(tempfile.gettempdir(), "airflow-provider-confluence")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha256(name.encode()).hexdigest()[:24] + ".lock")
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def private_session() -> Iterator[Session]:
    """A session of its own (not the thread's scoped one) for a locked transaction.

    Any ``create_session()`` run meanwhile in the same thread would otherwise get the SAME scoped session, and
    commit and close it on exit: releasing the row lock and detaching the row, so that the save that follows
    would write nothing.
    """
    from airflow import settings

    factory = getattr(getattr(settings, "Session", None), "session_factory", None)
    if factory is None:
        with create_session() as session:
            yield session
        return
    with masking_stays_in_process():
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def row_lock_or_host_lock(session: Session, name: str) -> contextlib.AbstractContextManager[None]:
    """The host file lock ``name`` on SQLite (which has no row locks), else nothing: the row lock does the job."""
    bind = session.get_bind()
    if bind is not None and bind.dialect.name == "sqlite":
        return host_lock(name)
    return contextlib.nullcontext()
