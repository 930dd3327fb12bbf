"""Single-use values shared by every API-server worker and host: rows of Airflow's ``revoked_token`` table.

The table (``jti`` primary key, ``exp``) is what Airflow 3 uses to revoke its own tokens; its primary key makes a
second claim of the same value fail atomically, whichever process or host makes it, and Airflow deletes rows
once ``exp`` has passed. The consent flow claims the nonces of used ``state`` values here, and the token broker
the nonces of its signed requests.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from airflow_provider_confluence._compat import create_session

#: ``revoked_token.jti`` holds at most 32 characters.
JTI_LENGTH = 32


class RevokedTokenLedger:
    """Claims values in the ``revoked_token`` table: each one succeeds once, across the whole deployment."""

    def claim(self, jti: str, expires_at: float) -> bool:
        """Record ``jti`` until ``expires_at`` (epoch seconds); False when it was recorded before."""
        from airflow.models.revoked_token import RevokedToken
        from sqlalchemy.exc import IntegrityError

        try:
            with create_session() as session:
                session.add(RevokedToken(jti=jti, exp=datetime.fromtimestamp(expires_at, tz=timezone.utc)))
                session.flush()
        except IntegrityError:
            return False
        return True


class SharedNonces:
    """The token broker's seen nonces (a :class:`~airflow_provider_confluence.broker_protocol.NonceLedger`),
    recorded in the ``revoked_token`` table, so that a request replayed to another API-server worker or host
    is refused too. Each key is stored as a prefixed SHA-256 fingerprint (the column holds 32 characters)."""

    def __init__(self, ledger: RevokedTokenLedger | None = None) -> None:
        self._ledger = ledger or RevokedTokenLedger()

    def add(self, key: str, keep_until: float, now: float) -> bool:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self._ledger.claim(("cb" + digest)[:JTI_LENGTH], keep_until)
