"""One-way fingerprints of secrets: safe to log, to store beside a token, and to send in its place.

This module imports nothing from Airflow.
"""

from __future__ import annotations

import hashlib

__all__ = ["FULL", "SHORT", "fingerprint"]

#: The hex digits of a fingerprint that is logged or stored (the token stores, the journal, the CLI).
SHORT = 16
#: The hex digits of a fingerprint that names a token to the broker: the whole SHA-256.
FULL = 64


def fingerprint(secret: str | None, *, length: int = SHORT) -> str | None:
    """The first ``length`` hex digits of the SHA-256 of ``secret``; None when there is no secret.

    :param length: :data:`SHORT` (default) for what is logged or stored, :data:`FULL` on the broker's wire.
    """
    if not secret:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:length]
