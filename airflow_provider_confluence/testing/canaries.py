"""Every secret the emulator hands out, remembered so that a test run can prove none of them leaked.

Client secrets, refresh and access tokens and authorization codes are all minted here. A test suite (this
project's, or a user's) can scan captured logs, task log files and exception texts for
:func:`issued_secrets` at the end of a run: any hit is a leak.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterable

_ISSUED: set[str] = set()
_LOCK = threading.Lock()
_CANDIDATE = re.compile(r"[A-Za-z0-9_\-]{20,}")


def new_secret(nbytes: int) -> str:
    """A fresh random secret (URL-safe text), remembered as a canary."""
    value = secrets.token_urlsafe(nbytes)
    with _LOCK:
        _ISSUED.add(value)
    return value


def issued_secrets() -> frozenset[str]:
    """Every secret minted by any emulator in this process so far."""
    with _LOCK:
        return frozenset(_ISSUED)


def find_leaks(text: str, secrets_: Iterable[str] | None = None) -> list[str]:
    """The secrets that appear in ``text`` (an empty list is the only good answer).

    Fast for large texts and many secrets: the token-like runs of the text are looked up in a set, and a run
    longer than a secret (a secret glued to other characters) is searched for each secret.
    """
    known = frozenset(secrets_) if secrets_ is not None else issued_secrets()
    if not known or not text:
        return []
    found: set[str] = set()
    shortest = min(len(s) for s in known)
    for run in _CANDIDATE.findall(text):
        if run in known:
            found.add(run)
        elif len(run) > shortest:
            found.update(s for s in known if s in run)
    return sorted(found)
