"""The rotation journal: a stale copy of the connection written back over rotated tokens never revokes the grant.

Airflow saves a connection as a whole, so an edit form opened before a rotation (or a backup, or an import)
writes back a refresh token Atlassian has already rotated away. Redeemed after the 10-minute reuse interval, it
revokes the whole grant (the emulator's ``grant_revocations``). These tests write such stale copies into the
connection row, the way Airflow's form does, and check that the hook continues from the newest state instead.
"""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_confluence.auth.fingerprint import fingerprint
from airflow_provider_confluence.auth.stores.journal import KEEP_RETIRED, journal_key
from airflow_provider_confluence.exceptions import ConfluenceReauthorizationRequired
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from helpers.airflow_env import read_connection_extra, read_variable

pytestmark = pytest.mark.airflow2

EXPIRED = 3600 + 601  # past the access token's lifetime and Atlassian's 10-minute reuse interval


def write_back(conn_id: str, extra: dict) -> None:
    """Save the connection with this extra, as Airflow's edit form does with the extra it loaded."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one()
        row.set_extra(json.dumps(extra))


@pytest.fixture(autouse=True)
def one_clock(fake_atlassian, monkeypatch):
    """The hook's token manager reads the emulator's clock, so that moving it expires the stored tokens too."""
    from airflow_provider_confluence.auth import tokens

    monkeypatch.setattr(tokens, "wall_clock", fake_atlassian.now)


def rotate(fake_atlassian, conn_id: str) -> str:
    """Let an hour and ten minutes pass, and use the connection: one rotation, saved."""
    fake_atlassian.advance(EXPIRED)
    return ConfluenceOAuthHook(conn_id).get_access_token()


def assert_grant_intact(fake_atlassian) -> None:
    counters = fake_atlassian.counters
    assert counters["stale_refresh_reuses"] == 0, "a retired refresh token was redeemed"
    assert counters["grant_revocations"] == 0 and counters["invalid_grants"] == 0


def test_an_edit_form_opened_before_a_rotation_does_not_revoke_the_grant(fake_atlassian, confluence_conn, caplog):
    rotate(fake_atlassian, confluence_conn)
    stale = read_connection_extra(confluence_conn)  # the form is opened now ...
    rotate(fake_atlassian, confluence_conn)  # ... a task rotates the token meanwhile ...
    write_back(confluence_conn, stale)  # ... and the form is saved
    assert read_connection_extra(confluence_conn)["refresh_token"] == stale["refresh_token"]

    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.stores.journal"):
        token = rotate(fake_atlassian, confluence_conn)
    assert_grant_intact(fake_atlassian)
    assert fake_atlassian.counters["refreshes"] == 3
    repaired = read_connection_extra(confluence_conn)
    assert repaired["refresh_token"] == fake_atlassian.latest_refresh_token
    assert repaired["access_token"] == token
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "stale copy" in warning and fingerprint(stale["refresh_token"]) in warning
    assert stale["refresh_token"] not in warning


def test_a_form_saved_with_no_refresh_token_continues_from_the_journal(fake_atlassian, confluence_conn):
    before_consent = {k: v for k, v in read_connection_extra(confluence_conn).items() if k != "refresh_token"}
    rotate(fake_atlassian, confluence_conn)
    write_back(confluence_conn, before_consent)
    rotate(fake_atlassian, confluence_conn)
    assert_grant_intact(fake_atlassian)
    assert read_connection_extra(confluence_conn)["refresh_token"] == fake_atlassian.latest_refresh_token


def test_a_new_consent_pasted_into_the_connection_wins_over_the_journal(fake_atlassian, confluence_conn):
    rotate(fake_atlassian, confluence_conn)
    old_grant_latest = fake_atlassian.latest_refresh_token
    new_consent = fake_atlassian.issue_grant(label="new-consent")
    extra = read_connection_extra(confluence_conn)
    write_back(confluence_conn, {**extra, "refresh_token": new_consent})
    rotate(fake_atlassian, confluence_conn)
    assert_grant_intact(fake_atlassian)
    assert fake_atlassian.refresh_log[-1]["grant"] == "new-consent" and fake_atlassian.refresh_log[-1]["ok"]
    assert read_connection_extra(confluence_conn)["refresh_token"] not in (new_consent, old_grant_latest)


def test_the_journal_speaks_only_for_the_app_it_was_written_for(fake_atlassian, confluence_conn):
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    rotate(fake_atlassian, confluence_conn)
    extra = {k: v for k, v in read_connection_extra(confluence_conn).items() if k != "refresh_token"}
    with create_session() as session:  # the connection is made again, for another OAuth app, not yet authorized
        row = session.query(Connection).filter(Connection.conn_id == confluence_conn).one()
        row.login = "another-app-client-id"
        row.set_extra(json.dumps(extra))
    fake_atlassian.advance(EXPIRED)
    with pytest.raises(ConfluenceReauthorizationRequired):
        ConfluenceOAuthHook(confluence_conn).get_access_token()


def test_the_journal_is_encrypted_bounded_and_holds_fingerprints_only(fake_atlassian, confluence_conn):
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    tokens = [fake_atlassian.latest_refresh_token]
    for _ in range(3):
        rotate(fake_atlassian, confluence_conn)
        tokens.append(fake_atlassian.latest_refresh_token)
    journal = json.loads(read_variable(journal_key(confluence_conn)))
    assert journal["latest"]["refresh_token"] == tokens[-1]
    assert "access_token" not in journal["latest"]  # a recovery refreshes; no live access token lies around
    assert journal["retired"] == [fingerprint(token) for token in tokens[:-1]]
    assert not any(token in json.dumps(journal["retired"]) for token in tokens)
    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == journal_key(confluence_conn)).one()
        assert row.is_encrypted and tokens[-1] not in row._val
    assert KEEP_RETIRED >= 24  # a day of hourly rotations at least
    assert "token" in journal_key(confluence_conn)  # Airflow masks the values of Variables named so


def test_a_variable_row_that_went_away_fails_the_write_and_changes_nothing(airflow_db):
    """Read by its columns, written by an UPDATE: a row another process deleted meanwhile is an error (as the ORM's
    StaleDataError was), never a silent write of nothing."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from airflow_provider_confluence.auth.stores.variable_rows import delete_row, read_row, write_value
    from airflow_provider_confluence.exceptions import ConfluenceTokenStoreError

    key = "confluence_oauth_token_state__gone_conn"
    with create_session() as session:
        session.add(Variable(key=key, val='{"v": 1}'))
    with create_session() as session:
        row = read_row(session, key)
        assert row is not None and row.value == '{"v": 1}'
        session.query(Variable).filter(Variable.key == key).delete()
        with pytest.raises(ConfluenceTokenStoreError, match="nothing was changed"):
            write_value(session, row, '{"v": 2}')
        with pytest.raises(ConfluenceTokenStoreError, match="nothing was changed"):
            delete_row(session, row)
        session.rollback()
    with create_session() as session:
        row = read_row(session, key)
        assert row is not None and row.value == '{"v": 1}'  # the delete above was rolled back with the rest
        write_value(session, row, '{"v": 3}')
    with create_session() as session:
        assert read_row(session, key).value == '{"v": 3}'
        session.query(Variable).filter(Variable.key == key).delete()
