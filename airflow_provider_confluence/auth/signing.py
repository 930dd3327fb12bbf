"""Signed, expiring, single-use values: JSON Web Tokens (RFC 7519) signed with HS256 by PyJWT.

The consent flow's ``state`` (:mod:`.consent_state`) and the token broker's requests (:mod:`.broker.protocol`)
are such tokens. Every token carries ``aud`` (what it is for: :data:`CONSENT_STATE`, :data:`BROKER_REQUEST` or
:data:`BROKER_GATE`, so that one kind is never accepted as another), ``iat``, ``exp`` and ``jti`` (the single-use
id the caller claims in a ledger). :func:`verify` decodes with ``algorithms=["HS256"]`` pinned (so ``alg: none``
and every other algorithm are refused) and requires every claim.

Why PyJWT, and what stays here: the provider used to sign these values by hand (HMAC plus its own base64
canonicalisation), which once accepted a changed last base64 character. PyJWT is installed by Airflow on every
supported line and checks the signature, the algorithm, the audience and the presence of the claims. Two
things stay here, on purpose:

* the times are compared with the caller's clock (PyJWT reads only the system clock, and the tests and the
  consent page move time forward), with :data:`LEEWAY` seconds of leeway on ``exp``;
* PyJWT decodes base64url leniently: the unused low bits of a signature's last character are ignored, so a
  changed last character can still verify. :func:`verify` refuses any signature whose text is not exactly the
  canonical encoding of its bytes, so a token that is not exactly what was issued never verifies.

The key is never the caller's secret itself: :func:`signing_key` derives 32 bytes from it (an HMAC), which also
gives short secrets a full-length HS256 key. This module imports nothing from Airflow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import jwt

__all__ = [
    "ALGORITHM",
    "BROKER_GATE",
    "BROKER_REQUEST",
    "CLAIMS",
    "CONSENT_STATE",
    "LEEWAY",
    "SignatureRefused",
    "issue",
    "signing_key",
    "verify",
]

ALGORITHM = "HS256"
#: The claims every token carries and :func:`verify` requires.
CLAIMS = ("aud", "iat", "exp", "jti")
#: Seconds a token is still accepted after its ``exp`` (clock skew between hosts).
LEEWAY = 5.0
#: The audiences: what a token is for.
CONSENT_STATE = "airflow-provider-confluence/consent-state"
BROKER_REQUEST = "airflow-provider-confluence/broker-request"
BROKER_GATE = "airflow-provider-confluence/broker-gate"
_KEY_LABEL = b"airflow-provider-confluence/signing-key/v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_HS256_BYTES = 32


class SignatureRefused(Exception):
    """Why a token was refused.

    :param reason: ``malformed`` (not a token of ours, or a claim missing or of the wrong type), ``forged``
        (bad signature, another algorithm or key, or another audience), ``expired`` or ``future`` (its ``iat``
        is further ahead of the clock than allowed). Only ``expired`` and ``future`` tokens had a valid signature.
    :param issued_at: the ``iat`` of an ``expired`` or ``future`` token.
    """

    def __init__(self, reason: str, issued_at: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issued_at = issued_at


def signing_key(secret: str | bytes) -> bytes:
    """The HS256 key derived from ``secret`` (an HMAC-SHA256; never the secret itself)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()


def issue(
    key: bytes, audience: str, claims: Mapping[str, Any], *, now: float, lifetime: float, jti: str | None = None
) -> str:
    """A token for ``audience`` holding ``claims``, issued at ``now`` and valid for ``lifetime`` seconds.

    :param key: from :func:`signing_key`.
    :param jti: its single-use id; a fresh random one by default.
    """
    issued_at = int(now)
    payload = {
        **claims,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + int(lifetime),
        "jti": jti or secrets.token_urlsafe(24),
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _canonical_signature(token: str) -> bool:
    """True when the token has three base64url segments and its signature is the canonical text of 32 bytes."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.match(part) for part in parts):
        return False
    try:
        raw = _unb64(parts[2])
    except (binascii.Error, ValueError):
        return False
    return len(raw) == _HS256_BYTES and base64.urlsafe_b64encode(raw).decode().rstrip("=") == parts[2]


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SignatureRefused("malformed")
    return float(value)


def verify(
    token: str,
    key: bytes,
    audience: str,
    *,
    now: float,
    max_age: float,
    max_future: float,
    require: Iterable[str] = (),
) -> dict[str, Any]:
    """The claims of ``token`` once its signature, algorithm, audience, claims and times were checked.

    :param key: from :func:`signing_key`.
    :param max_age: seconds after its ``iat`` a token stays valid (its ``exp`` may not be later either).
    :param max_future: seconds its ``iat`` may be ahead of ``now`` (clock skew).
    :param require: claims this kind of token needs besides :data:`CLAIMS`.
    :raises SignatureRefused: the token is refused; nothing was consumed.
    """
    if not isinstance(token, str) or not token:
        raise SignatureRefused("malformed")
    if token.count(".") != 2:
        raise SignatureRefused("malformed")
    if not _canonical_signature(token):
        raise SignatureRefused("forged")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": [*CLAIMS, *require], "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidAudienceError):
        raise SignatureRefused("forged") from None
    except jwt.PyJWTError:  # undecodable header or payload, a missing claim
        raise SignatureRefused("malformed") from None
    if claims.get("aud") != audience:  # exactly this audience, not a list that holds it
        raise SignatureRefused("forged")
    issued_at, expires_at = _number(claims, "iat"), _number(claims, "exp")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or expires_at - issued_at > max_age:
        raise SignatureRefused("malformed")
    if now > expires_at + LEEWAY or now - issued_at > max_age:
        raise SignatureRefused("expired", issued_at)
    if issued_at - now > max_future:
        raise SignatureRefused("future", issued_at)
    return claims
