"""Requests are money under points-based quotas: each publishing step makes only the requests it needs (counted
over requests-mock; the minimums are derived in docs/benchmarks.md, row P8)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.content.publish import publish, update_page_body
from airflow_provider_confluence.retry import RetryPolicy

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

API = "https://api.example.test"
GW = f"{API}/ex/confluence/cloud-1/wiki"
PAGES = f"{GW}/api/v2/pages"
PAGE_ID = "9001"
BODY = "<p>Week 1</p>"


class Tokens:
    def get_access_token(self) -> str:
        return "at-unit"

    def refresh_rejected(self, rejected_token: str) -> str:
        raise AssertionError("no request is rejected here")

    def access_token_expired(self) -> bool:
        return False


def client() -> ConfluenceClient:
    return ConfluenceClient(
        api_url=API + "/",
        cloud_id="cloud-1",
        tokens=Tokens(),
        site_url="https://acme.atlassian.net",
        timeout=5,
        retry=RetryPolicy(rng=random.Random(1)),
        sleep=lambda _: None,
    )


def page(body: str | None = BODY, version: int = 3) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": PAGE_ID,
        "status": "current",
        "title": "Weekly",
        "spaceId": "42",
        "parentId": "7",
        "version": {"number": version},
        "_links": {"webui": f"/spaces/P8/pages/{PAGE_ID}"},
    }
    if body is not None:
        found["body"] = {"storage": {"representation": "storage", "value": body}}
    return found


def calls(m: rm.Mocker) -> list[str]:
    return [f"{r.method} {r.path.split('/wiki', 1)[1]}" for r in m.request_history]


def labels_answer(*names: str) -> dict[str, Any]:
    return {"results": [{"prefix": "global", "name": n} for n in names], "_links": {}}


def test_creating_a_page_with_labels_does_not_read_the_labels_of_the_page_it_just_made(requests_mock: rm.Mocker):
    requests_mock.get(PAGES, json={"results": [], "_links": {}})
    requests_mock.post(PAGES, json=page(version=1))
    requests_mock.post(
        f"{GW}/rest/api/content/{PAGE_ID}/label", json={**labels_answer("weekly", "report"), "limit": 200}
    )
    requests_mock.get(f"{PAGES}/{PAGE_ID}/labels", json=labels_answer())

    done = publish(client(), space_id="42", title="Weekly", body=BODY, parent_id="7", labels=["weekly", "report"])

    assert done.action == "created"
    assert calls(requests_mock) == [
        "GET /api/v2/pages",
        "POST /api/v2/pages",
        f"POST /rest/api/content/{PAGE_ID}/label",
    ]
    assert requests_mock.request_history[-1].json() == [
        {"prefix": "global", "name": "weekly"},
        {"prefix": "global", "name": "report"},
    ]


def test_a_rerun_with_nothing_changed_reads_the_page_once_with_its_body_and_writes_nothing(requests_mock: rm.Mocker):
    requests_mock.get(PAGES, json={"results": [page()], "_links": {}})
    requests_mock.get(f"{PAGES}/{PAGE_ID}", json=page())
    requests_mock.get(f"{PAGES}/{PAGE_ID}/labels", json=labels_answer("weekly", "report"))

    done = publish(
        client(),
        space_id="42",
        title="Weekly",
        body=BODY,
        parent_id="7",
        labels=["weekly", "report"],
        if_exists="update",
    )

    assert done.action == "unchanged"
    assert calls(requests_mock) == ["GET /api/v2/pages", f"GET /api/v2/pages/{PAGE_ID}/labels"]
    assert requests_mock.request_history[0].qs["body-format"] == ["storage"]  # the lookup brought the body


def test_a_lookup_without_if_exists_update_does_not_ask_for_the_body(requests_mock: rm.Mocker):
    requests_mock.get(PAGES, json={"results": [], "_links": {}})
    requests_mock.post(PAGES, json=page(version=1))

    publish(client(), space_id="42", title="Weekly", body=BODY, if_exists="fail")

    assert "body-format" not in requests_mock.request_history[0].qs


def test_an_update_given_the_page_it_just_read_sends_only_the_new_version(requests_mock: rm.Mocker):
    requests_mock.get(f"{PAGES}/{PAGE_ID}", json=page())
    requests_mock.put(f"{PAGES}/{PAGE_ID}", json=page("<p>Week 2</p>", version=4))

    update_page_body(client(), body="<p>Week 2</p>", page_id=PAGE_ID, read=page())

    assert calls(requests_mock) == [f"PUT /api/v2/pages/{PAGE_ID}"]
    assert requests_mock.last_request is not None and requests_mock.last_request.json()["version"]["number"] == 4


def test_an_append_given_the_page_it_just_read_extends_that_body(requests_mock: rm.Mocker):
    requests_mock.put(f"{PAGES}/{PAGE_ID}", json=page(BODY + "<p>more</p>", version=4))

    update_page_body(client(), body="<p>more</p>", mode="append", page_id=PAGE_ID, read=page())

    assert calls(requests_mock) == [f"PUT /api/v2/pages/{PAGE_ID}"]
    assert requests_mock.last_request is not None
    assert requests_mock.last_request.json()["body"]["value"] == BODY + "<p>more</p>"


def test_a_page_read_without_its_body_is_read_again(requests_mock: rm.Mocker):
    requests_mock.get(f"{PAGES}/{PAGE_ID}", json=page())
    requests_mock.put(f"{PAGES}/{PAGE_ID}", json=page("<p>Week 2</p>", version=4))

    update_page_body(client(), body="<p>Week 2</p>", page_id=PAGE_ID, read=page(body=None))

    assert calls(requests_mock) == [f"GET /api/v2/pages/{PAGE_ID}", f"PUT /api/v2/pages/{PAGE_ID}"]
