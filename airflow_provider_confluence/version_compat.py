"""Every difference between Airflow 2.11 and 3.x, in one place.

Nothing else in the provider branches on the Airflow version. Built on
``airflow.providers.common.compat.sdk``, which resolves each name to the Task SDK on Airflow 3 and to the
core module on Airflow 2 (``Asset`` and ``AssetAlias`` are ``Dataset`` and ``DatasetAlias`` there).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset, AssetAlias, BaseHook, BaseOperator, BaseOperatorLink, conf
from airflow.providers.common.compat.sdk import mask_secret as _sdk_mask_secret
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Airflow 2 task workers may use the metadata database; Airflow 3 blocks the ORM in task workers and triggers.
TASKS_MAY_USE_ORM = not AIRFLOW_V_3_0_PLUS
#: Airflow 3's API server mounts a plugin's FastAPI apps and lists its external views; Airflow 2 has neither.
PLUGINS_SERVE_FASTAPI_APPS = AIRFLOW_V_3_0_PLUS

__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "PLUGINS_SERVE_FASTAPI_APPS",
    "TASKS_MAY_USE_ORM",
    "Asset",
    "AssetAlias",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "conf",
    "connection_details",
    "create_session",
    "delete_variable",
    "ensure_alias_registered",
    "get_connection",
    "get_connection_in_server",
    "get_variable",
    "mask_secret",
    "masking_stays_in_process",
    "orm_available",
    "set_variable",
]


def mask_secret(secret: str, name: str | None = None) -> None:
    """Hide ``secret`` in every log this process writes.

    Airflow 3 has two secrets maskers: the Task SDK's (task logs) and the core one, which the API server's
    own logs use (its HTTP access log, for example, which prints query strings such as a consent callback's
    ``code``). A secret is registered with both where both exist.

    Under ``dag.test()`` the task's supervisor runs in this process, so its masker is the one the value is
    registered with here; sending it as a ``MaskSecret`` message would add nothing but a debug line of Airflow's
    in-process channel that prints the value in clear (``InProcessSupervisorComms.send``, Airflow 3.0 to 3.3).
    """
    if _supervisor_in_this_process():
        _mask_without_sending(secret, name)
        return
    _sdk_mask_secret(secret, name)
    if AIRFLOW_V_3_0_PLUS and not _in_task_sdk_process():
        try:
            from airflow._shared.secrets_masker import mask_secret as core_mask_secret
        except ImportError:
            return
        core_mask_secret(secret, name)


def _supervisor_in_this_process() -> bool:
    """True inside a task that ``dag.test()`` runs in-process: its supervisor channel is a method call."""
    comms = getattr(sys.modules.get("airflow.sdk.execution_time.task_runner"), "SUPERVISOR_COMMS", None)
    in_process = getattr(sys.modules.get("airflow.sdk.execution_time.supervisor"), "InProcessSupervisorComms", None)
    return in_process is not None and isinstance(comms, in_process)


def _mask_without_sending(secret: str, name: str | None) -> None:
    """Register ``secret`` with the Task SDK's masker as the in-process supervisor itself would: no channel."""
    with masking_stays_in_process():
        _sdk_mask_secret(secret, name)


@contextmanager
def masking_stays_in_process() -> Iterator[None]:
    """While open, values masked in this process are not sent over an in-process supervisor channel.

    Under ``dag.test()`` (the supervisor runs in this process) Airflow's own models mask what they load (a
    connection's password and extra, a sensitive Variable's value: ``on_db_load``) through the same channel,
    whose debug line would print the rotated tokens the stores read back; without the channel they are
    registered with this process's masker directly, as the in-process supervisor itself does. Elsewhere (a
    forked task, whose supervisor omits a ``MaskSecret``'s body from its log; the API server; Airflow 2) this
    does nothing.
    """
    if not _supervisor_in_this_process():
        yield
        return
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms

    with set_supervisor_comms(None):
        yield


def _in_task_sdk_process() -> bool:
    """True inside an Airflow 3 task (or ``dag.test()``) that talks to a supervisor."""
    return hasattr(sys.modules.get("airflow.sdk.execution_time.task_runner"), "SUPERVISOR_COMMS")


def orm_available() -> bool:
    """True when this process may use the metadata database through the ORM.

    Airflow 3 replaces ``settings.Session`` with a blocker in forked task workers ("Direct database access
    via the ORM is not allowed"); Airflow 2 workers, the scheduler, the API server, the CLI and the
    in-process ``dag.test()`` may use it.
    """
    from airflow import settings

    session_class = getattr(settings, "Session", None)
    if session_class is None:
        return False
    return getattr(session_class, "__name__", "") != "BlockedDBSession"


@contextmanager
def create_session() -> Iterator[Session]:
    """A metadata-database session that commits on success and rolls back on error."""
    from airflow.utils.session import create_session as airflow_create_session

    with masking_stays_in_process(), airflow_create_session() as session:
        yield session


def get_connection(conn_id: str) -> Any:
    """Look a connection up the way this process can.

    In a task, through the Task SDK. Elsewhere on Airflow 3 (scripts, the CLI, the API server), the Task SDK
    only consults environment variables and external backends, so the core lookup, which includes the
    metadata database, is used wherever the ORM is available.
    """
    if AIRFLOW_V_3_0_PLUS and not _in_task_sdk_process() and orm_available():
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id)
    return BaseHook.get_connection(conn_id)


def get_connection_in_server(conn_id: str) -> Any:
    """Look a connection up as :func:`get_connection` does, for a long-lived server process (the token broker).

    Airflow 3's ``Connection.get_connection_from_secrets`` asks each secrets backend in turn and then saves the
    connection's URI in its secret cache; building that URI reads ``extra_dejson``, which registers every extra
    with a sensitive name with the core secrets masker, for the life of the process. The broker looks its
    connection up on every request, and the tokens in that extra change at every rotation: in the API server
    three more values per rotation, never forgotten. So the backends are asked here in the same order, and the
    URI is not built (nothing is cached: the broker wants the row as it is now). Only the password is still
    registered, by Airflow's model, which is one value per connection. Elsewhere this is :func:`get_connection`.

    :raises AirflowNotFoundException: no backend has the connection (a backend that fails is skipped, as
        Airflow's lookup does; one that denies access raises).
    """
    if not AIRFLOW_V_3_0_PLUS or _in_task_sdk_process() or not orm_available():
        return get_connection(conn_id)
    from airflow.configuration import ensure_secrets_loaded
    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    for backend in ensure_secrets_loaded():
        try:
            conn = backend.get_connection(conn_id=conn_id)
        except Exception as exc:
            if type(exc).__name__ == "AirflowSecretsBackendAccessDenied":  # authoritative, as in Airflow's lookup
                raise
            log.debug("Secrets backend %s could not look connection %r up.", type(backend).__name__, conn_id)
            continue
        if conn:
            return conn
    raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")


def connection_details(conn_id: str) -> Any:
    """The auth manager's ``ConnectionDetails`` of ``conn_id``, with its team where Airflow has teams.

    ``team_name`` came with Airflow 3.1 (``[core] multi_team``); 3.0's ``ConnectionDetails`` takes only
    ``conn_id`` (a ``team_name`` argument raised ``TypeError``).
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails
    from airflow.configuration import conf

    if "team_name" not in getattr(ConnectionDetails, "__dataclass_fields__", {}):
        return ConnectionDetails(conn_id=conn_id)
    team_name = None
    if conf.getboolean("core", "multi_team", fallback=False):
        from airflow.models.connection import Connection

        getter = getattr(Connection, "get_team_name", None)
        team_name = getter(conn_id) if getter else None
    return ConnectionDetails(conn_id=conn_id, team_name=team_name)


def get_variable(key: str) -> str | None:
    """Read a Variable's raw value, through the Task SDK in a task and through the ORM elsewhere."""
    if _in_task_sdk_process():
        from airflow.sdk import Variable as SdkVariable

        value: Any = SdkVariable.get(key, default=None)
    else:
        from airflow.models.variable import Variable

        value = Variable.get(key, default_var=None)
    return None if value is None else str(value)


def set_variable(key: str, value: str, description: str) -> None:
    """Write a Variable, through the Task SDK in a task and through the ORM elsewhere."""
    if _in_task_sdk_process():
        from airflow.sdk import Variable as SdkVariable

        SdkVariable.set(key, value, description=description)
    else:
        from airflow.models.variable import Variable

        Variable.set(key, value, description=description)


def delete_variable(key: str) -> bool:
    """Delete a Variable, through the Task SDK in a task and through the ORM elsewhere.

    :returns: False when this Airflow's Task SDK cannot delete Variables (it was added after 3.0).
    """
    if _in_task_sdk_process():
        from airflow.sdk import Variable as SdkVariable

        delete = getattr(SdkVariable, "delete", None)
        if delete is None:
            return False
        delete(key)
        return True
    from airflow.models.variable import Variable

    Variable.delete(key)
    return True


def ensure_alias_registered(name: str) -> None:
    """Give the asset alias ``name`` its metadata-database row if it has none (Airflow 2 only).

    Airflow 3 creates a missing alias row when it records an event. Airflow 2.10 and 2.11 do not: a task whose
    alias was never written by the DAG processor (``dag.test()`` or ``airflow dags test`` on a fresh database)
    fails after it ran with ``FlushError: Can't flush None value found in collection DatasetModel.aliases``.
    Two tasks racing to add the row are harmless: the loser's unique-index error is ignored.
    """
    if not TASKS_MAY_USE_ORM or not orm_available():
        return
    from airflow.models.dataset import DatasetAliasModel  # type: ignore[import-not-found]  # Airflow 2 only
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    try:
        with create_session() as session:
            found = session.scalar(select(DatasetAliasModel.id).where(DatasetAliasModel.name == name).limit(1))
            if found is None:
                session.add(DatasetAliasModel(name=name))
    except IntegrityError:  # another task added it between the read and the write
        pass
