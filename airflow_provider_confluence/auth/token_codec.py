"""How token state is written down and read back, in every place it is kept or sent.

* A connection's extra: the :class:`~.tokens.TokenState` keys beside the connection's own extras, and the
  fingerprint of the refresh token the store wrote (:func:`state_from_extra`, :func:`extra_with_state`).
* The Variable store's value: the state as JSON, with the fingerprint of the connection's refresh token it
  descends from (:func:`variable_value`, :func:`parse_stored`).
* The rotation journal's value: the latest state (never an access token), the retired fingerprints and the
  binding (:func:`journal_value`, :func:`parse_journal`).
* The token broker's answer: ``{"access_token", "expires_at", "cloud_id"}``, never the refresh token
  (:func:`broker_answer`, :func:`parse_broker_answer`).

The state itself becomes a JSON-able dict with :meth:`TokenState.to_stored` and is read back with
:meth:`TokenState.from_stored`. This module imports nothing from Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from airflow_provider_confluence.auth.fingerprint import fingerprint
from airflow_provider_confluence.auth.tokens import STATE_KEYS, TokenState

__all__ = [
    "SEED_FINGERPRINT",
    "WRITTEN_FINGERPRINT",
    "broker_answer",
    "extra_with_state",
    "journal_value",
    "parse_broker_answer",
    "parse_journal",
    "parse_stored",
    "seed_matches",
    "state_from_extra",
    "variable_value",
]

#: The extra key holding the fingerprint of the refresh token the connection store saved last.
WRITTEN_FINGERPRINT = "refresh_token_fingerprint"
#: The Variable store's key for the fingerprint of the connection's refresh token its state descends from.
SEED_FINGERPRINT = "seed_fingerprint"


def parse_stored(raw: str | None) -> dict[str, Any] | None:
    """The JSON object in a stored value (a Variable's, an extra's); None when it is empty or not an object."""
    try:
        data = json.loads(raw or "")
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- a connection's extra ------------------------------------------------------------------------------


def state_from_extra(extra: Mapping[str, Any]) -> TokenState:
    """The token state in a connection's extra.

    The store writes a fingerprint of each refresh token it saves. A refresh token that does not match it was
    pasted by a person after a new consent: the access token and grant times beside it belong to the old grant,
    so only the new refresh token (and the site's cloud id) are kept.
    """
    state = TokenState.from_stored(extra)
    written = extra.get(WRITTEN_FINGERPRINT)
    if written and written != fingerprint(state.refresh_token):
        return TokenState(refresh_token=state.refresh_token, cloud_id=state.cloud_id)
    return state


def extra_with_state(extra: Mapping[str, Any], state: TokenState) -> dict[str, Any]:
    """``extra`` with its token state replaced by ``state`` (and the fingerprint of its refresh token)."""
    updated = {key: value for key, value in extra.items() if key not in (*STATE_KEYS, WRITTEN_FINGERPRINT)}
    updated.update(state.to_stored())
    updated[WRITTEN_FINGERPRINT] = fingerprint(state.refresh_token)
    return updated


# -- the Variable store ------------------------------------------------------------------------------------


def variable_value(state: TokenState, seed: str | None) -> str:
    """The Variable store's value for ``state``, descended from the connection's refresh token ``seed``."""
    return json.dumps({**state.to_stored(), SEED_FINGERPRINT: fingerprint(seed)})


def seed_matches(data: Mapping[str, Any], seed: str | None) -> bool:
    """True when a Variable's state descends from the refresh token ``seed``."""
    return data.get(SEED_FINGERPRINT) == fingerprint(seed)


# -- the rotation journal --------------------------------------------------------------------------------


def journal_value(latest: TokenState, retired: list[str], binding: str | None) -> str:
    """The journal's value: the latest state without its access token (a recovery refreshes anyway)."""
    kept = replace(latest, access_token=None, expires_at=None).to_stored()
    return json.dumps({"latest": kept, "retired": retired, "binding": binding})


def parse_journal(raw: str | None) -> tuple[TokenState, tuple[str, ...], str | None] | None:
    """The latest state, the retired fingerprints and the binding in a journal's value; None when it is not one."""
    data = parse_stored(raw)
    if data is None or not isinstance(data.get("latest"), dict):
        return None
    retired = tuple(str(item) for item in data.get("retired") or () if isinstance(item, str))
    binding = data.get("binding") if isinstance(data.get("binding"), str) else None
    return TokenState.from_stored(data["latest"]), retired, binding


# -- the token broker's answer -----------------------------------------------------------------------------


def broker_answer(access_token: str, expires_at: float | None, cloud_id: str | None) -> dict[str, Any]:
    """What the broker answers a worker: an access token, its expiry and the cloud id; never a refresh token."""
    return {"access_token": access_token, "expires_at": expires_at, "cloud_id": cloud_id}


def parse_broker_answer(payload: Mapping[str, Any]) -> tuple[str, float, str | None] | None:
    """The access token, expiry and cloud id of a broker's answer; None when the answer is unusable."""
    token, expires_at = payload.get("access_token"), payload.get("expires_at")
    if not isinstance(token, str) or not token or not isinstance(expires_at, (int, float)):
        return None
    cloud_id = payload.get("cloud_id")
    return token, float(expires_at), str(cloud_id) if cloud_id else None
