"""Which of the worker's files a task may read or write, checked against ``[confluence] attachment_roots``.

``file_path`` (uploads) and ``output_path`` (downloads, exports) are templated arguments: whoever sets them (a DAG
author, or anyone who may trigger a DAG that passes a ``dag_run.conf`` value on) could otherwise upload any file
the worker can read to a Confluence page (``/proc/self/environ``, with Airflow's secrets, or a key file), or
overwrite any file it may write (a DAG file: code that runs next). When the deployment lists folders in
``[confluence] attachment_roots``, only files under them are read or written. The check is made on the file
actually opened: symlinks and ``..`` are resolved (on Linux, from the open file descriptor, so a symlink swapped
in after the check changes nothing), and a file to write is truncated only after that check.

This module imports nothing from Airflow; :mod:`airflow_provider_confluence.config.deployment` reads the setting.
"""

from __future__ import annotations

import os
from typing import IO, Any, BinaryIO

from airflow_provider_confluence.config.endpoints import SECTION
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = [
    "ATTACHMENT_ROOTS_OPTION",
    "ATTACHMENT_ROOTS_SETTING",
    "check_read_directory",
    "check_write_path",
    "open_for_upload",
    "open_for_write",
    "parse_roots",
]

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


def _opened_path(fd: int, path: str) -> str:
    """The real path of the file descriptor ``fd`` has open: the kernel's on Linux, else ``path`` resolved."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _outside(name: str, path: str, real: str, roots: tuple[str, ...], nothing: str) -> ConfluenceConfigError:
    really = "" if real == path else f" (really {real!r})"
    return ConfluenceConfigError(
        f"{name} {path!r}{really} is outside {ATTACHMENT_ROOTS_SETTING} ({', '.join(roots)}): nothing was {nothing}. "
        "Use a file under one of those folders, or ask the administrator of this Airflow deployment to add its "
        f"folder to {ATTACHMENT_ROOTS_SETTING}."
    )


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
        real = _opened_path(handle.fileno(), path)
        if not any(_within(real, root) for root in roots):
            handle.close()
            raise _outside("file_path", path, real, roots, "uploaded")
    return handle, os.path.basename(path)


def check_read_directory(directory: str, attachment_roots: str | None) -> str:
    """The real path of ``directory`` (symlinks and ``..`` resolved), whose files a task is about to read and
    publish (a mirror of Markdown files), checked before any request: it is a directory and, when the roots are
    set, lies under one of them. Its reader follows no symbolic link below it.

    :raises ConfluenceConfigError: no such directory, or one outside the roots; nothing is read then.
    """
    roots = parse_roots(attachment_roots)
    path = os.path.expanduser(str(directory).strip())
    if not os.path.isdir(path):
        raise ConfluenceConfigError(
            f"directory {path!r} is not a directory: nothing was read. Check the path (it is read on the worker that "
            "runs the task)."
        )
    real = os.path.realpath(path)
    if roots and not any(_within(real, root) for root in roots):
        raise _outside("directory", path, real, roots, "read")
    return real


def check_write_path(output_path: str, attachment_roots: str | None, *, nothing: str) -> str:
    """Where ``output_path`` will be written, checked before any request: its folder exists and, when the roots
    are set, its real path (symlinks and ``..`` resolved) lies under one of them.

    :param nothing: what was not done, for messages (``downloaded``, ``exported``).
    :raises ConfluenceConfigError: no such folder, or a path outside the roots.
    """
    roots = parse_roots(attachment_roots)
    path = os.path.expanduser(str(output_path).strip())
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfluenceConfigError(
            f"output_path {path!r} is in a directory that does not exist: nothing was {nothing}. Create the "
            "directory first (it is on the worker that runs the task)."
        )
    real = os.path.realpath(path)
    if roots and not any(_within(real, root) for root in roots):
        raise _outside("output_path", path, real, roots, nothing)
    return path


def open_for_write(path: str, attachment_roots: str | None, *, nothing: str, text: bool = False) -> IO[Any]:
    """Open ``path`` (from :func:`check_write_path`) to replace its content; with roots, the file actually opened
    is checked again before it is truncated, so a symlink swapped in after the first check writes nothing.

    :param text: open for UTF-8 text instead of bytes.
    :raises ConfluenceConfigError: the file opened lies outside the roots (nothing is written).
    """
    roots = parse_roots(attachment_roots)
    if not roots:
        return open(path, "w", encoding="utf-8") if text else open(path, "wb")  # noqa: SIM115 - closed by the caller
    real = os.path.realpath(path)  # no symlink left in it now; O_NOFOLLOW refuses one swapped in at the end
    fd = os.open(real, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
    opened = _opened_path(fd, real)
    if not any(_within(opened, root) for root in roots):
        os.close(fd)
        raise _outside("output_path", path, opened, roots, nothing)
    os.ftruncate(fd, 0)
    return os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")
