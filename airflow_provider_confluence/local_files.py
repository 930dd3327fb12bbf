"""Which of the worker's files a task may upload: ``file_path``, checked against ``[confluence] attachment_roots``.

``file_path`` is a templated argument: whoever sets it (a DAG author, or anyone who may trigger a DAG that
passes a ``dag_run.conf`` value on) could otherwise upload any file the worker can read to a Confluence page,
``/proc/self/environ`` (the worker's environment, with Airflow's secrets) or a key file among them. When the
deployment lists folders in ``[confluence] attachment_roots``, only files under them are uploaded. The check is
made on the file actually opened: symlinks and ``..`` are resolved (on Linux, from the open file descriptor, so a
symlink swapped in after the check changes nothing).

This module imports nothing from Airflow; :mod:`airflow_provider_confluence.deployment` reads the setting.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from airflow_provider_confluence.endpoints import SECTION
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = ["ATTACHMENT_ROOTS_OPTION", "ATTACHMENT_ROOTS_SETTING", "open_for_upload", "parse_roots"]

#: ``[confluence] attachment_roots``: the folders whose files may be uploaded (empty: any file).
ATTACHMENT_ROOTS_OPTION = "attachment_roots"
ATTACHMENT_ROOTS_SETTING = f"[{SECTION}] {ATTACHMENT_ROOTS_OPTION}"
_ENV = f"AIRFLOW__{SECTION.upper()}__{ATTACHMENT_ROOTS_OPTION.upper()}"


def parse_roots(text: str | None) -> tuple[str, ...]:
    """The folders of ``[confluence] attachment_roots`` (comma-separated absolute paths), symlinks resolved.

    :raises ConfluenceConfigError: an entry is not an absolute path.
    """
    roots: list[str] = []
    for raw in (text or "").split(","):
        entry = os.path.expanduser(raw.strip())
        if not entry:
            continue
        if not os.path.isabs(entry):
            raise ConfluenceConfigError(
                f"{ATTACHMENT_ROOTS_SETTING} ({_ENV}) has {entry!r}, which is not an absolute path: nothing was "
                "uploaded. List absolute folders, separated by commas, such as /srv/airflow/reports."
            )
        roots.append(os.path.realpath(entry))
    return tuple(roots)


def _opened_path(handle: BinaryIO, path: str) -> str:
    """The real path of the file ``handle`` has open: the kernel's on Linux, else ``path`` resolved."""
    try:
        return os.readlink(f"/proc/self/fd/{handle.fileno()}")
    except OSError:
        return os.path.realpath(path)


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives, or relative and absolute mixed
        return False


def open_for_upload(file_path: str, attachment_roots: str | None) -> tuple[BinaryIO, str]:
    """Open ``file_path`` for an upload; refuse it when it is no file, or lies outside the roots.

    :param file_path: the path as the task was given it (``~`` is expanded).
    :param attachment_roots: ``[confluence] attachment_roots`` as configured; empty allows any file.
    :returns: the open binary file (the caller closes it) and the file's name.
    :raises ConfluenceConfigError: no such file, a file outside the roots, or a malformed setting; nothing is
        uploaded then.
    """
    roots = parse_roots(attachment_roots)
    path = os.path.expanduser(str(file_path).strip())
    if not os.path.isfile(path):
        raise ConfluenceConfigError(
            f"file_path {path!r} is not a file: nothing was uploaded. Check the path (it is read on the worker that "
            "runs the task), or pass the content as data."
        )
    handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - returned open; closed by the caller
    if roots:
        real = _opened_path(handle, path)
        if not any(_within(real, root) for root in roots):
            handle.close()
            really = "" if real == path else f" (really {real!r})"
            raise ConfluenceConfigError(
                f"file_path {path!r}{really} is outside {ATTACHMENT_ROOTS_SETTING} ({', '.join(roots)}): nothing was "
                "uploaded. Write the file under one of those folders, or ask the administrator of this Airflow "
                f"deployment to add its folder to {ATTACHMENT_ROOTS_SETTING}."
            )
    return handle, os.path.basename(path)
