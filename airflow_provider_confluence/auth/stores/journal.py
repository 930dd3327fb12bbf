"""The rotation journal: a guard against a stale copy of a connection written back over its rotated tokens.

Airflow saves a connection as a whole. An edit form opened before a rotation (or a consent), a connection
restored from a backup, or an export re-imported, writes back a refresh token that Atlassian has already
rotated away; redeeming it after the 10-minute reuse interval revokes the whole grant. So every save of the
connection store also records, in the same database transaction, the state it saved and the fingerprints of the
refresh tokens it retired, in the Variable ``confluence_oauth_token_journal__<conn_id>`` (encrypted like every
Variable, and masked by Airflow because its name contains "token"; it keeps no access token). Before redeeming,
the store reads the journal: a connection holding a retired token, or none at all while the journal holds one,
continues from the journal's state instead. A token the journal has never seen
(a new consent pasted by a person) always wins.

The journal's state is bound to what it was redeemed for: the client ID, the token URL, the API URL and the site
(:func:`connection_binding`). A connection whose binding changed (another app, or endpoints a connection editor
pointed elsewhere) never inherits it: it starts from its own fields, and a person authorizes it again. A journal
written before the binding existed binds to nothing, so it is used again only after the connection's next save.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.auth.stores.support import fingerprint
from airflow_provider_confluence.auth.stores.variable_rows import VariableRow, read_row, write_value
from airflow_provider_confluence.auth.token_codec import journal_value, parse_journal
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.config.connection import (
    DEFAULT_API_URL,
    DEFAULT_TOKEN_URL,
    extra_value,
    parse_extra,
    parse_site_url,
)
from airflow_provider_confluence.exceptions import ConfluenceConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: The word "token" in the key makes Airflow mask the value (Variables list, CLI, task logs).
JOURNAL_PREFIX = "confluence_oauth_token_journal__"
#: How many retired refresh-token fingerprints are remembered (a few days of hourly rotations).
KEEP_RETIRED = 128


@dataclass(frozen=True)
class Journal:
    """The last state saved, the fingerprints of the refresh tokens retired before it (oldest first), and the
    :func:`connection_binding` of the connection it was saved for."""

    latest: TokenState
    retired: tuple[str, ...]
    binding: str | None = None


def connection_binding(row: Any) -> str | None:
    """A fingerprint of what the journal's state belongs to: the connection row's client ID, token URL (the
    ``grant_url`` extra, or its old name ``token_url``: the same value binds the same), API URL and site
    (defaults filled in, as the settings read them); None when the row's fields cannot be read.

    :param row: the connection row (``login``, ``host``, the decrypted extra).
    """
    try:
        extra = parse_extra("", row.get_extra())
        site = parse_site_url("", row.host)
    except ConfluenceConfigError:
        return None
    token_url = extra_value(extra, "grant_url") or DEFAULT_TOKEN_URL  # or its old name, token_url
    api_url = (str(extra.get("api_url") or "").strip() or DEFAULT_API_URL).rstrip("/")
    return fingerprint("\0".join(((row.login or "").strip(), token_url, api_url, site.lower())))


def journal_key(conn_id: str) -> str:
    """The Variable that holds the journal of ``conn_id``."""
    return JOURNAL_PREFIX + conn_id


def _row(session: Session, conn_id: str, *, for_update: bool = False) -> VariableRow | None:
    # By its columns: a loaded Variable object would register the journal with Airflow's masker (variable_rows.py).
    return read_row(session, journal_key(conn_id), for_update=for_update)


def read_journal(session: Session, conn_id: str) -> Journal | None:
    """The journal of ``conn_id``, None when there is none (or it is not this provider's JSON)."""
    return _parse(_row(session, conn_id))


def _parse(row: VariableRow | None) -> Journal | None:
    parsed = parse_journal(row.value) if row is not None else None
    return Journal(*parsed) if parsed is not None else None


def record_rotation(
    session: Session, conn_id: str, previous: TokenState, saved: TokenState, binding: str | None
) -> None:
    """Record ``saved`` as the latest state, retiring ``previous``'s refresh token when it was replaced.

    ``binding`` (:func:`connection_binding` of the row) is remembered: the journal only ever speaks for that
    app, those endpoints and that site, so a connection made for another app, or pointed at other endpoints, is
    never given these tokens.

    Runs in the caller's transaction, so the journal and the connection are committed together or not at all.
    """
    from airflow.models.variable import Variable

    row = _row(session, conn_id, for_update=True)
    journal = _parse(row)
    retired = list(journal.retired) if journal else []
    for token in (journal.latest.refresh_token if journal else None, previous.refresh_token):
        if token and token != saved.refresh_token and fingerprint(token) not in retired:
            retired.append(str(fingerprint(token)))
    kept = fingerprint(saved.refresh_token)
    retired = [item for item in retired if item != kept][-KEEP_RETIRED:]
    value = journal_value(saved, retired, binding)  # without the access token: a recovery refreshes
    if row is None:
        description = (
            f"Rotation journal of connection {conn_id!r}, kept by airflow-provider-confluence: it "
            "protects the grant from a stale copy of the connection. Do not edit."
        )
        session.add(Variable(key=journal_key(conn_id), val=value, description=description))
    else:
        write_value(session, row, value)


def recover_from_stale_copy(
    journal: Journal | None, state: TokenState, conn_id: str, binding: str | None
) -> TokenState:
    """``state`` (read from the connection), or the journal's state when ``state`` is a stale copy.

    :param binding: :func:`connection_binding` of the connection row now.
    """
    latest = journal.latest if journal else None
    if latest is None or not latest.refresh_token or state.refresh_token == latest.refresh_token:
        return state
    if binding is None or journal.binding != binding:  # type: ignore[union-attr]
        return state  # another OAuth app, token URL, API URL or site since: never hand the tokens over
    held = fingerprint(state.refresh_token)
    if held is not None and held not in journal.retired:  # type: ignore[union-attr]
        return state  # a token the journal never saw: a new consent, which wins
    log.warning(
        "Connection %r holds %s, but its tokens were rotated since (latest fingerprint %s): the connection was "
        "saved from a stale copy (an edit form opened before the rotation, a backup or an import). Continuing "
        "from the latest rotated state instead, so that the grant is not revoked; the next save repairs the "
        "connection.",
        conn_id,
        f"a retired refresh token (fingerprint {held})" if held else "no refresh token",
        fingerprint(latest.refresh_token),
    )
    return replace(latest, cloud_id=latest.cloud_id or state.cloud_id)
