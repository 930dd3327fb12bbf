"""Errors from real answers over loopback: a 404 and a 409 carry the method, the absolute URL and the trace id.

The emulator answers every request with a fresh ``Atl-Traceid`` header, as Atlassian does, and records it with
the request: the test compares the error's trace id with the one that was sent.
"""

from __future__ import annotations

import json
import pickle

import pytest
import requests

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.exceptions import ConfluenceConflict, ConfluenceError, ConfluenceNotFound
from airflow_provider_confluence.testing import FakeAtlassian
from helpers.loopback_client import loopback_client, sent

pytestmark = pytest.mark.airflow2

GET_PAGE = "GET /wiki/api/v2/pages/{id}"
PUT_PAGE = "PUT /wiki/api/v2/pages/{id}"


@pytest.fixture
def client(fake_atlassian: FakeAtlassian) -> ConfluenceClient:
    fake_atlassian.add_space("DEMO", "Demo")
    return loopback_client(fake_atlassian)


def test_every_answer_has_a_new_trace_id(fake_atlassian: FakeAtlassian) -> None:
    first = requests.get(f"{fake_atlassian.url}/nowhere", timeout=10)
    second = requests.get(f"{fake_atlassian.url}/nowhere", timeout=10)
    ids = [first.headers.get("Atl-Traceid"), second.headers.get("Atl-Traceid")]
    assert all(ids) and ids[0] != ids[1]
    assert [r["trace_id"] for r in fake_atlassian.requests] == ids


def test_a_real_404_carries_method_absolute_url_and_trace_id(
    fake_atlassian: FakeAtlassian, client: ConfluenceClient
) -> None:
    with pytest.raises(ConfluenceNotFound) as caught:
        client.get_page("424242")
    [answered] = sent(fake_atlassian, GET_PAGE)
    error = caught.value
    assert (error.status_code, error.method) == (404, "GET")
    assert error.url.startswith(
        f"{fake_atlassian.api_url}/ex/confluence/{fake_atlassian.cloud_id}/wiki/api/v2/pages/424242"
    )
    assert error.trace_id == answered["trace_id"] and error.headers["Atl-Traceid"] == answered["trace_id"]
    assert f"(Atl-Traceid {answered['trace_id']})" in str(error)
    for rebuilt in (
        pickle.loads(pickle.dumps(error)),
        ConfluenceError.from_event(json.loads(json.dumps(error.to_event()))),
    ):
        assert type(rebuilt) is ConfluenceNotFound and rebuilt.trace_id == error.trace_id and str(rebuilt) == str(error)


def test_a_real_409_carries_method_absolute_url_and_trace_id(
    fake_atlassian: FakeAtlassian, client: ConfluenceClient
) -> None:
    page = fake_atlassian.add_page("DEMO", "Report", "<p>old</p>")
    with pytest.raises(ConfluenceConflict) as caught:  # version 1 is the current one: the next must be 2
        client.update_page(page_id=page["id"], title="Report", body="<p>new</p>", version=1)
    [answered] = sent(fake_atlassian, PUT_PAGE)
    error = caught.value
    assert (error.status_code, error.method, answered["status"]) == (409, "PUT", 409)
    assert error.url.startswith(fake_atlassian.api_url) and error.url.endswith(f"/wiki/api/v2/pages/{page['id']}")
    assert error.trace_id == answered["trace_id"] and f"(Atl-Traceid {answered['trace_id']})" in str(error)
