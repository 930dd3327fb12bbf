"""Single-use values shared by every API-server worker and host, on every Airflow line.

A value is claimed by inserting it into the table ``confluence_oauth_single_use`` (``key`` primary key,
``expires_at``) of the metadata database: the primary key makes a second claim of the same value fail
atomically, whichever process or host makes it. The consent flow claims the nonces of used ``state`` values
here, and the token broker the nonces of its signed requests.

The provider owns this table and creates it on first use (``CREATE TABLE`` only when it is missing), because
Airflow's own ``revoked_token`` table exists only from Airflow 3.2. Expired rows are deleted now and then by the
claims themselves. ``airflow db reset`` leaves the table alone; dropping it is harmless (it is created again).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_confluence.version_compat import create_session

TABLE = "confluence_oauth_single_use"
#: How often (seconds) a claim also deletes the rows whose time has passed.
PRUNE_EVERY = 60.0

_table: Any = None
_created: set[str] = set()
_lock = threading.Lock()
_next_prune = 0.0


def _single_use_table() -> Any:
    global _table
    if _table is None:
        from sqlalchemy import Column, Float, MetaData, String, Table

        _table = Table(
            TABLE,
            MetaData(),
            Column("key", String(64), primary_key=True),
            Column("expires_at", Float, nullable=False, index=True),
        )
    return _table


def _ensure_table(session: Any) -> Any:
    table = _single_use_table()
    bind = session.get_bind()
    url = str(bind.url)
    if url not in _created:
        with _lock:
            if url not in _created:
                table.create(bind, checkfirst=True)
                _created.add(url)
    return table


class SingleUseLedger:
    """Claims values: each one succeeds once across the whole deployment, until its time has passed.

    :param namespace: what the values are (``consent-state``, ``broker-nonce``); equal values of two namespaces
        are different claims.
    :param clock: current epoch seconds.
    """

    def __init__(self, namespace: str, clock: Callable[[], float] = time.time) -> None:
        self._namespace = namespace
        self._clock = clock

    def claim(self, value: str, expires_at: float) -> bool:
        """Record ``value`` until ``expires_at`` (epoch seconds); False when it was recorded before.

        The value is stored as its SHA-256, so the table never holds a nonce that a request could reuse.
        """
        from sqlalchemy.exc import IntegrityError

        global _next_prune
        key = hashlib.sha256(f"{self._namespace}\n{value}".encode()).hexdigest()
        now = self._clock()
        try:
            with create_session() as session:
                table = _ensure_table(session)
                if now >= _next_prune:
                    _next_prune = now + PRUNE_EVERY
                    session.execute(table.delete().where(table.c.expires_at < now))
                session.execute(table.insert().values(key=key, expires_at=float(expires_at)))
                session.flush()
        except IntegrityError:
            return False
        return True


class SharedNonces:
    """The token broker's seen nonces (a :class:`~airflow_provider_confluence.auth.broker.protocol.NonceLedger`),
    claimed in the single-use table, so that a request replayed to another API-server worker or host is refused."""

    def __init__(self, ledger: SingleUseLedger | None = None) -> None:
        self._ledger = ledger or SingleUseLedger("broker-nonce")

    def add(self, key: str, keep_until: float, now: float) -> bool:
        return self._ledger.claim(key, keep_until)
