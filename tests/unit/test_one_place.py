"""Each concept in one place: the page spec, the connection type, the settings loader, the fingerprint and the
codec of stored token state (no sockets)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_provider_confluence.auth import token_codec
from airflow_provider_confluence.auth.broker.protocol import token_fingerprint
from airflow_provider_confluence.auth.fingerprint import FULL, fingerprint
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.config.deployment import NotAConfluenceConnection, connection_settings
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.get_provider_info import CONN_TYPE, get_provider_info

pytestmark = pytest.mark.airflow2

STATE = TokenState(
    refresh_token="rt-2",
    access_token="at-2",
    expires_at=2000.0,
    scope="s",
    cloud_id="c",
    grant_issued_at=10.0,
    rotated_at=1000.0,
)


# -- the page spec -------------------------------------------------------------------------------------------


def test_build_converts_the_body_and_normalises_the_labels():
    spec = PageSpec.build(
        title="T",
        body="*hi*",
        representation="markdown",
        labels=["KPI", "kpi", "Daily"],
        parent_id=" 12 ",
        space_key=" ",
    )
    assert (spec.representation, spec.body.strip()) == ("storage", "<p><em>hi</em></p>")
    assert spec.labels == ("kpi", "daily")
    assert (spec.parent_id, spec.space_key) == ("12", None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"representation": "html"}, "representation='html' is not one of"),
        ({"status": "gone"}, "status='gone' is not one of"),
        ({"if_exists": "merge"}, "if_exists='merge' is not one of"),
        ({"mode": "prepend"}, "mode='prepend' is not one of"),
        ({"mode": "append", "representation": "wiki"}, "mode='append' works on storage format only"),
        ({"parent_id": "1", "parent_title": "P"}, "not both"),
        ({"labels": ["two words"]}, "contains a space"),
    ],
)
def test_build_refuses_bad_input(kwargs, message):
    with pytest.raises(ConfluenceConfigError, match=message):
        PageSpec.build(body="<p>x</p>", **kwargs)


def test_a_changed_copy_is_checked_again_but_not_converted_again():
    spec = PageSpec.build(body="**x**", representation="markdown")
    assert spec.with_changes(space_id="7").body == spec.body == "<p><strong>x</strong></p>\n"
    with pytest.raises(ConfluenceConfigError, match="status"):
        spec.with_changes(status="gone")


def test_of_takes_a_spec_or_keywords_never_both():
    spec = PageSpec.build(body="<p>x</p>")
    assert PageSpec.of(spec, {}) is spec
    assert PageSpec.of(None, {"body": "<p>y</p>"}).body == "<p>y</p>"
    with pytest.raises(TypeError, match="not both"):
        PageSpec.of(spec, {"title": "T"})
    with pytest.raises(TypeError, match="PageSpec"):
        PageSpec.of({"body": "x"}, {})  # type: ignore[arg-type]


# -- one connection type, one settings loader -----------------------------------------------------------------


def test_the_connection_type_is_spelled_once():
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    declared = [kind["connection-type"] for kind in get_provider_info()["connection-types"]]
    assert declared == [CONN_TYPE] and ConfluenceOAuthHook.conn_type == CONN_TYPE == "confluence_oauth"


def _conn(conn_type: str) -> SimpleNamespace:
    return SimpleNamespace(
        conn_type=conn_type,
        host="https://example.atlassian.net",
        login="cid",
        password="sec",
        extra=json.dumps({"refresh_token": "rt"}),
    )


def test_the_settings_loader_refuses_another_type_unless_told_not_to():
    with pytest.raises(NotAConfluenceConnection, match="'http' connection, not confluence_oauth") as refused:
        connection_settings("web", _conn("http"))
    assert isinstance(refused.value, ConfluenceConfigError)
    assert connection_settings("web", _conn("http"), any_type=True).refresh_token == "rt"
    assert connection_settings("c", _conn(CONN_TYPE)).client_id == "cid"


# -- one fingerprint ----------------------------------------------------------------------------------------------


def test_one_fingerprint_short_for_storage_full_on_the_broker_wire():
    short, full = fingerprint("token"), token_fingerprint("token")
    assert short is not None and full is not None
    assert (len(short), len(full)) == (16, FULL) and full.startswith(short)
    assert fingerprint("") is None and fingerprint(None) is None


# -- one codec for stored token state -------------------------------------------------------------------------


def test_the_state_round_trips_through_every_place_it_is_kept():
    assert TokenState.from_stored(STATE.to_stored()) == STATE
    extra = token_codec.extra_with_state({"scopes": "x", "access_token": "old"}, STATE)
    assert extra["scopes"] == "x" and extra[token_codec.WRITTEN_FINGERPRINT] == fingerprint("rt-2")
    assert token_codec.state_from_extra(extra) == STATE
    data = token_codec.parse_stored(token_codec.variable_value(STATE, "seed"))
    assert data is not None and token_codec.seed_matches(data, "seed") and not token_codec.seed_matches(data, "x")
    assert TokenState.from_stored(data) == STATE
    journal = token_codec.parse_journal(token_codec.journal_value(STATE, ["f1"], "b"))
    assert journal is not None
    latest, retired, binding = journal
    assert (latest.access_token, latest.expires_at, latest.refresh_token, retired, binding) == (
        None,
        None,
        "rt-2",
        ("f1",),
        "b",
    )


def test_a_pasted_refresh_token_drops_the_old_grants_state():
    extra = {**token_codec.extra_with_state({}, STATE), "refresh_token": "pasted"}
    assert token_codec.state_from_extra(extra) == TokenState(refresh_token="pasted", cloud_id="c")


def test_the_broker_answer_carries_no_refresh_token_and_is_read_back():
    answer = token_codec.broker_answer("at", 5.0, "cloud")
    assert set(answer) == {"access_token", "expires_at", "cloud_id"}
    assert token_codec.parse_broker_answer(answer) == ("at", 5.0, "cloud")
    assert token_codec.parse_broker_answer({"access_token": "at", "expires_at": "soon"}) is None
    assert token_codec.parse_stored("[1]") is None and token_codec.parse_stored("not json") is None
