"""The emulator's toolkit endpoints over real HTTP on loopback: page labels, attachments and CQL search.

Labels: v2 ``GET /pages/{id}/labels`` and v1 ``POST /content/{id}/label``. Attachments: v2 ``GET
/pages/{id}/attachments`` and v1 ``PUT``/``POST /content/{id}/child/attachment``. Search: v1 ``GET /search`` with
its ``next`` link relative to ``/wiki``. Every other v1 content or space path still answers 410. Time moves with
``fake.advance``, never with ``sleep``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from airflow_provider_confluence.testing import DEFAULT_SCOPES, FakeAtlassian
from airflow_provider_confluence.testing.cql import BoolOp, Clause, CqlError, Doc, Not, matches, parse
from airflow_provider_confluence.testing.pytest_plugin import fake_atlassian  # noqa: F401  (the fixture)

pytestmark = pytest.mark.airflow2

SCOPE_MISMATCH = {"code": 401, "message": "Unauthorized; scope does not match"}
BAD_REQUEST = "com.atlassian.confluence.api.service.exceptions.BadRequestException: "
OLD_DEFAULT = "offline_access read:space:confluence read:page:confluence write:page:confluence"
XSRF = {"X-Atlassian-Token": "no-check"}


@pytest.fixture
def fake(fake_atlassian: FakeAtlassian) -> Iterator[FakeAtlassian]:  # noqa: F811
    fake_atlassian.add_space("DEMO", "Demo")
    yield fake_atlassian


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def gw(fake: FakeAtlassian, path: str) -> str:
    return f"{fake.api_url}/ex/confluence/{fake.cloud_id}{path}"


def auth(http: requests.Session, fake: FakeAtlassian, scopes: str = DEFAULT_SCOPES) -> dict[str, str]:
    body = {
        "grant_type": "refresh_token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": fake.issue_grant(scopes),
    }
    response = http.post(fake.token_url, json=body, timeout=5)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def add_labels(
    http: requests.Session, fake: FakeAtlassian, headers: dict[str, str], page_id: str, body: Any
) -> requests.Response:
    return http.post(gw(fake, f"/wiki/rest/api/content/{page_id}/label"), headers=headers, json=body, timeout=5)


def upload(
    http: requests.Session,
    fake: FakeAtlassian,
    headers: dict[str, str],
    page_id: str,
    name: str,
    data: bytes,
    media_type: str | None = "application/octet-stream",
    method: str = "PUT",
    xsrf: bool = True,
    **fields: str,
) -> requests.Response:
    file = (name, data, media_type) if media_type else (name, data)
    return http.request(
        method,
        gw(fake, f"/wiki/rest/api/content/{page_id}/child/attachment"),
        headers={**headers, **(XSRF if xsrf else {})},
        files={"file": file},
        data=fields,
        timeout=5,
    )


def search(
    http: requests.Session, fake: FakeAtlassian, headers: dict[str, str], cql: str, **params: Any
) -> requests.Response:
    return http.get(gw(fake, "/wiki/rest/api/search"), headers=headers, params={"cql": cql, **params}, timeout=5)


def version_of(http: requests.Session, fake: FakeAtlassian, headers: dict[str, str], page_id: str) -> int:
    return int(
        http.get(gw(fake, f"/wiki/api/v2/pages/{page_id}"), headers=headers, timeout=5).json()["version"]["number"]
    )


def follow_v2(http: requests.Session, fake: FakeAtlassian, headers: dict[str, str], path: str) -> tuple[list, set]:
    """Every result of a v2 list, and the set of cursors seen (asserted never to repeat)."""
    url: str | None = gw(fake, path)
    results: list[Any] = []
    cursors: set[str] = set()
    while url:
        response = http.get(url, headers=headers, timeout=5)
        assert response.status_code == 200, response.text
        body = response.json()
        results += body["results"]
        assert body["_links"]["base"] == fake.site_url + "/wiki"
        next_link = body["_links"].get("next")
        if next_link:
            assert next_link.startswith("/wiki/api/v2/") and 'rel="next"' in response.headers["Link"]
            cursor = dict(parse_qsl(urlsplit(next_link).query))["cursor"]
            assert cursor not in cursors
            cursors.add(cursor)
        url = gw(fake, next_link) if next_link else None
    return results, cursors


# --------------------------------------------------------------------------- labels
def test_labels_are_added_lower_cased_once_and_listed_in_order(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report", labels=["Daily"])
    added = add_labels(http, fake, headers, page["id"], [{"prefix": "global", "name": "Weekly"}, {"name": "daily"}])
    assert added.status_code == 200
    body = added.json()
    assert [(r["prefix"], r["name"], r["label"]) for r in body["results"]] == [
        ("global", "daily", "daily"),
        ("global", "weekly", "weekly"),
    ]
    assert (body["start"], body["limit"], body["size"]) == (0, 200, 2)
    single = add_labels(http, fake, headers, page["id"], {"prefix": "global", "name": "KPI"})
    assert [r["name"] for r in single.json()["results"]] == ["daily", "weekly", "kpi"]
    again = add_labels(http, fake, headers, page["id"], [{"prefix": "global", "name": "WEEKLY"}])
    assert again.json()["size"] == 3
    assert fake.page_labels(page["id"]) == ["daily", "weekly", "kpi"]
    listed = http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels"), headers=headers, timeout=5).json()
    assert [(r["name"], r["prefix"]) for r in listed["results"]] == [
        ("daily", "global"),
        ("weekly", "global"),
        ("kpi", "global"),
    ]
    other = fake.add_page("DEMO", "Other", labels=["kpi"])
    other_ids = {
        r["name"]: r["id"]
        for r in http.get(gw(fake, f"/wiki/api/v2/pages/{other['id']}/labels"), headers=headers, timeout=5).json()[
            "results"
        ]
    }
    assert other_ids["kpi"] == {r["name"]: r["id"] for r in listed["results"]}["kpi"]  # labels are site-wide
    assert version_of(http, fake, headers, page["id"]) == 1  # labels never make a page version


@pytest.mark.parametrize("name", ["two words", "tab\there", *"!#&()*,.:;<>?@[]^", "x" * 256, "", "  "])
def test_an_invalid_label_name_is_a_v1_400_and_nothing_is_added(
    fake: FakeAtlassian, http: requests.Session, name: str
) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report")
    refused = add_labels(
        http,
        fake,
        headers,
        page["id"],
        [{"prefix": "global", "name": "fine"}, {"prefix": "global", "name": f"a{name}" if name else ""}],
    )
    assert refused.status_code == 400
    assert refused.json()["statusCode"] == 400 and refused.json()["message"].startswith(BAD_REQUEST)
    assert fake.page_labels(page["id"]) == []
    with pytest.raises(ValueError, match="label refused"):
        fake.add_page("DEMO", "Seeded", labels=[f"a{name}" if name else ""])


def test_a_label_name_of_255_characters_is_accepted(fake: FakeAtlassian, http: requests.Session) -> None:
    page = fake.add_page("DEMO", "Report")
    added = add_labels(http, fake, auth(http, fake), page["id"], [{"name": "Y" * 255}])
    assert added.status_code == 200 and fake.page_labels(page["id"]) == ["y" * 255]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'["daily"]',
        b'[{"prefix": "system", "name": "x"}]',
        b'{"prefix": "global"}',
        b'[{"name": 7}]',
    ],
)
def test_a_malformed_label_body_is_a_v1_400(fake: FakeAtlassian, http: requests.Session, body: bytes) -> None:
    page = fake.add_page("DEMO", "Report")
    headers = {**auth(http, fake), "Content-Type": "application/json"}
    refused = http.post(gw(fake, f"/wiki/rest/api/content/{page['id']}/label"), headers=headers, data=body, timeout=5)
    assert refused.status_code == 400 and refused.json()["message"].startswith(BAD_REQUEST)


def test_labels_of_an_unknown_or_trashed_page_are_404(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake, DEFAULT_SCOPES + " delete:page:confluence")
    page = fake.add_page("DEMO", "Doomed")
    assert http.delete(gw(fake, f"/wiki/api/v2/pages/{page['id']}"), headers=headers, timeout=5).status_code == 204
    for page_id in ("999999", page["id"], "abc"):
        missing = add_labels(http, fake, headers, page_id, [{"name": "x"}])
        assert missing.status_code == 404 and missing.json()["statusCode"] == 404
        assert f"ContentId{{id={page_id}}}" in missing.json()["message"]
    listed = http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels"), headers=headers, timeout=5)
    assert listed.status_code == 404 and listed.json()["errors"][0]["status"] == 404


def test_v2_labels_paginate_filter_and_sort(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    names = [f"l{index:02d}" for index in range(60)]
    page = fake.add_page("DEMO", "Many", labels=names)
    results, cursors = follow_v2(http, fake, headers, f"/wiki/api/v2/pages/{page['id']}/labels?limit=25")
    assert [r["name"] for r in results] == names and len(cursors) == 2
    default = http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels"), headers=headers, timeout=5).json()
    assert len(default["results"]) == 25  # the v2 default page size
    by_name = http.get(
        gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels?sort=-name&limit=3"), headers=headers, timeout=5
    ).json()
    assert [r["name"] for r in by_name["results"]] == ["l59", "l58", "l57"]
    mine = http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels?prefix=my"), headers=headers, timeout=5)
    assert mine.status_code == 200 and mine.json()["results"] == []
    for query in ("prefix=nope", "sort=title", "cursor=bm90LWEtY3Vyc29y", "limit=0"):
        bad = http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels?{query}"), headers=headers, timeout=5)
        assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "INVALID_REQUEST_PARAMETER"


# --------------------------------------------------------------------------- attachments
def test_upload_creates_then_versions_an_attachment_and_keeps_the_bytes(
    fake: FakeAtlassian, http: requests.Session
) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report")
    data = os.urandom(4096) + b"\r\n--boundary\r\n\r\n\n\r" + bytes(range(256))
    first = upload(http, fake, headers, page["id"], "chart.png", data, "image/png", comment="first run")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["size"] == 1 and body["_links"] == {"base": fake.site_url + "/wiki", "context": "/wiki"}
    att = body["results"][0]
    assert att["id"].startswith("att") and att["type"] == "attachment" and att["status"] == "current"
    assert att["title"] == "chart.png" and att["version"]["number"] == 1
    assert att["extensions"]["mediaType"] == "image/png" and att["extensions"]["fileSize"] == len(data)
    assert att["extensions"]["comment"] == "first run"
    assert att["_links"]["download"].startswith(f"/download/attachments/{page['id']}/chart.png?version=1")
    assert att["_links"]["webui"].startswith(f"/pages/viewpageattachments.action?pageId={page['id']}")
    assert fake.attachment_data(page["id"], "chart.png") == data

    again = upload(http, fake, headers, page["id"], "chart.png", b"v2 bytes", "image/png", minorEdit="true")
    second = again.json()["results"][0]
    assert (second["id"], second["version"]["number"], second["version"]["minorEdit"]) == (att["id"], 2, True)
    assert fake.attachment_data(page["id"], "chart.png") == b"v2 bytes"
    other = upload(http, fake, headers, page["id"], "data.csv", b"a,b\n1,2\n", None).json()["results"][0]
    assert other["id"] != att["id"] and other["extensions"]["mediaType"] == "text/csv"  # guessed from the name
    assert [(a["title"], a["version"]["number"]) for a in fake.attachments(page["id"])] == [
        ("chart.png", 2),
        ("data.csv", 1),
    ]
    assert version_of(http, fake, headers, page["id"]) == 1  # attachments never make a page version
    with pytest.raises(KeyError):
        fake.attachment_data(page["id"], "nope.txt")


def test_one_upload_may_carry_several_files_each_with_its_comment(fake: FakeAtlassian, http: requests.Session) -> None:
    page = fake.add_page("DEMO", "Report")
    parts = [
        ("file", ("résumé report.pdf", b"%PDF", "application/pdf")),
        ("file", ("empty.txt", b"")),
        ("comment", (None, "the pdf")),
        ("comment", (None, "the text")),
    ]
    response = http.put(
        gw(fake, f"/wiki/rest/api/content/{page['id']}/child/attachment"),
        headers={**auth(http, fake), **XSRF},
        files=parts,
        timeout=5,
    )
    assert response.status_code == 200 and response.json()["size"] == 2
    stored = [(r["title"], r["extensions"]["comment"], r["extensions"]["fileSize"]) for r in response.json()["results"]]
    assert stored == [("résumé report.pdf", "the pdf", 4), ("empty.txt", "the text", 0)]
    assert fake.attachment_data(page["id"], "résumé report.pdf") == b"%PDF"


def test_upload_without_the_xsrf_header_is_403(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report")
    refused = upload(http, fake, headers, page["id"], "a.txt", b"x", xsrf=False)
    assert (refused.status_code, refused.text) == (403, "XSRF check failed")
    wrong = upload(http, fake, {**headers, "X-Atlassian-Token": "nocheck"}, page["id"], "a.txt", b"x", xsrf=False)
    assert wrong.status_code == 403 and fake.attachments(page["id"]) == []


def test_upload_errors_are_v1_answers(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = {**auth(http, fake), **XSRF}
    page = fake.add_page("DEMO", "Report")
    url = gw(fake, f"/wiki/rest/api/content/{page['id']}/child/attachment")
    no_file = http.put(url, headers=headers, files={"comment": (None, "only a comment")}, timeout=5)
    assert no_file.status_code == 400 and no_file.json()["message"].startswith(BAD_REQUEST)
    not_multipart = http.put(url, headers=headers, json={"file": "x"}, timeout=5)
    assert not_multipart.status_code == 400 and not_multipart.json()["statusCode"] == 400
    no_name = http.put(url, headers=headers, files={"file": (None, b"bytes")}, timeout=5)
    assert no_name.status_code == 400
    bad_minor = upload(http, fake, headers, page["id"], "a.txt", b"x", minorEdit="maybe")
    assert bad_minor.status_code == 400
    unknown = upload(http, fake, headers, "999999", "a.txt", b"x")
    assert unknown.status_code == 404 and unknown.json()["statusCode"] == 404
    assert fake.attachments(page["id"]) == []


def test_post_only_creates_and_refuses_a_known_file_name(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report")
    created = upload(http, fake, headers, page["id"], "report.pdf", b"%PDF-1", "application/pdf", method="POST")
    assert created.status_code == 200 and created.json()["results"][0]["version"]["number"] == 1
    refused = upload(http, fake, headers, page["id"], "report.pdf", b"%PDF-2", "application/pdf", method="POST")
    assert refused.status_code == 400
    assert refused.json()["message"] == (
        BAD_REQUEST + "Cannot add a new attachment with same file name as an existing attachment: report.pdf"
    )
    assert fake.attachment_data(page["id"], "report.pdf") == b"%PDF-1"


def test_v2_attachments_filter_and_paginate(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report")
    for index in range(55):
        upload(http, fake, headers, page["id"], f"f{index:02d}.txt", b"x" * index, "text/plain")
    upload(http, fake, headers, page["id"], "chart.png", b"png", "image/png")
    base = f"/wiki/api/v2/pages/{page['id']}/attachments"
    first = http.get(gw(fake, base), headers=headers, timeout=5).json()
    assert len(first["results"]) == 50 and "next" in first["_links"]  # the attachments default page size
    results, cursors = follow_v2(http, fake, headers, base + "?limit=20")
    assert [r["title"] for r in results] == [f"f{index:02d}.txt" for index in range(55)] + ["chart.png"]
    assert len(cursors) == 2
    att = results[3]
    assert att["pageId"] == page["id"] and att["fileSize"] == 3 and att["mediaType"] == "text/plain"
    assert att["downloadLink"] == att["_links"]["download"] and att["version"]["number"] == 1
    by_name = http.get(gw(fake, base), params={"filename": "chart.png"}, headers=headers, timeout=5).json()
    assert [r["title"] for r in by_name["results"]] == ["chart.png"]
    by_type = http.get(gw(fake, base), params={"mediaType": "image/png"}, headers=headers, timeout=5).json()
    assert [r["title"] for r in by_type["results"]] == ["chart.png"]
    newest = http.get(gw(fake, base), params={"sort": "-created-date", "limit": 1}, headers=headers, timeout=5)
    assert newest.json()["results"][0]["title"] == "chart.png"
    missing = http.get(gw(fake, "/wiki/api/v2/pages/999999/attachments"), headers=headers, timeout=5)
    assert missing.status_code == 404 and missing.json()["errors"][0]["status"] == 404


# --------------------------------------------------------------------------- CQL search
@pytest.fixture
def site(fake: FakeAtlassian, http: requests.Session) -> dict[str, Any]:
    """Two spaces, a small tree, labels, an attachment and a trashed page; time moves between writes."""
    headers = auth(http, fake, DEFAULT_SCOPES + " delete:page:confluence")
    fake.add_space("OPS", "Operations")
    ids: dict[str, str] = {}
    for title, space, body, labels, parent in [
        ("Daily report", "DEMO", "<p>Revenue grew by 5%</p>", ["report", "daily"], None),
        ("Weekly report", "DEMO", "<p>Churn is flat</p>", ["report"], None),
        ("Child of daily", "DEMO", "<p>Details of revenue</p>", [], "Daily report"),
        ("Grandchild", "DEMO", "<p>deep</p>", ["deep"], "Child of daily"),
        ("Runbook", "OPS", "<p>Restart the scheduler</p>", ["ops"], None),
        ("Trashed report", "DEMO", "<p>Revenue gone</p>", ["report"], None),
    ]:
        fake.advance(60)
        page = fake.add_page(space, title, body, ids[parent] if parent else None, labels=labels)
        ids[title] = page["id"]
    fake.advance(60)
    assert upload(http, fake, headers, ids["Daily report"], "revenue.png", b"png", "image/png").status_code == 200
    gone = http.delete(gw(fake, f"/wiki/api/v2/pages/{ids['Trashed report']}"), headers=headers, timeout=5)
    assert gone.status_code == 204
    fake.advance(60)
    update = {
        "id": ids["Weekly report"],
        "status": "current",
        "title": "Weekly report",
        "body": {"representation": "storage", "value": "<p>Churn is down</p>"},
        "version": {"number": 2},
    }
    assert (
        http.put(
            gw(fake, f"/wiki/api/v2/pages/{ids['Weekly report']}"), headers=headers, json=update, timeout=5
        ).status_code
        == 200
    )
    return {"headers": headers, "ids": ids}


@pytest.mark.parametrize(
    ("cql", "expected"),
    [
        ("type = page AND label = report", ["Daily report", "Weekly report"]),
        ("type=page and space = OPS", ["Operations Home", "Runbook"]),
        ("type = page AND space in (DEMO, OPS) AND label IN ('deep', \"ops\")", ["Grandchild", "Runbook"]),
        ("title ~ REPORT", ["Daily report", "Weekly report"]),
        ('title = "weekly report"', ["Weekly report"]),
        ("type = page AND text ~ revenue", ["Daily report", "Child of daily"]),
        ("text ~ 'churn is down'", ["Weekly report"]),
        ("type = attachment", ["revenue.png"]),
        ("type = attachment AND title ~ revenue", ["revenue.png"]),
        ("type = page AND label = report AND NOT title ~ weekly", ["Daily report"]),
        ("type = page AND (label = ops OR label = deep)", ["Grandchild", "Runbook"]),
        ("type = page AND label = daily OR label = ops", ["Daily report", "Runbook"]),
        ("type = page AND label != report AND space = DEMO", ["Demo Home", "Child of daily", "Grandchild"]),
        ("type = page AND label not in (report, deep) AND space = DEMO", ["Demo Home", "Child of daily"]),
        ("parent = {Daily report}", ["Child of daily", "revenue.png"]),
        ("type = page AND ancestor = {Daily report}", ["Child of daily", "Grandchild"]),
        ("id = {Runbook}", ["Runbook"]),
        ("id in ({Runbook}, {Grandchild})", ["Grandchild", "Runbook"]),
        ("type = page AND label = report ORDER BY title DESC", ["Weekly report", "Daily report"]),
        (
            "type = page AND space = DEMO AND label = report ORDER BY lastmodified desc",
            ["Weekly report", "Daily report"],
        ),
        (
            "type = page AND space = DEMO ORDER BY created DESC",
            ["Grandchild", "Child of daily", "Weekly report", "Daily report", "Demo Home"],
        ),
        ("type = page AND title ~ Trashed", []),
        ("type = blogpost", []),
    ],
)
def test_cql_search_finds_what_the_query_says(
    fake: FakeAtlassian, http: requests.Session, site: dict[str, Any], cql: str, expected: list[str]
) -> None:
    for title, page_id in site["ids"].items():
        cql = cql.replace("{" + title + "}", page_id)
    response = search(http, fake, site["headers"], cql)
    assert response.status_code == 200, response.text
    titles = [r["title"] for r in response.json()["results"]]
    expected = [f"{t} Home" if t == "DEMO" else t for t in expected]
    if "ORDER BY" in cql.upper():
        assert titles == expected
    else:
        assert sorted(titles) == sorted(expected)


def test_search_results_have_the_v1_shape(fake: FakeAtlassian, http: requests.Session, site: dict[str, Any]) -> None:
    body = search(http, fake, site["headers"], "title ~ daily AND type = page ORDER BY title", limit=10).json()
    assert (body["start"], body["limit"], body["size"], body["totalSize"]) == (0, 10, 2, 2)
    assert body["cqlQuery"] == "title ~ daily AND type = page ORDER BY title"
    assert body["_links"]["base"] == fake.site_url + "/wiki" and body["_links"]["context"] == "/wiki"
    assert "next" not in body["_links"]
    child, daily = body["results"]
    assert daily["content"]["id"] == site["ids"]["Daily report"] and daily["content"]["type"] == "page"
    assert daily["content"]["status"] == "current" and daily["title"] == "Daily report"
    assert daily["url"] == daily["content"]["_links"]["webui"] and daily["url"].startswith("/spaces/DEMO/pages/")
    assert daily["entityType"] == "content" and daily["excerpt"] == "Revenue grew by 5%"
    assert daily["resultGlobalContainer"] == {"title": "Demo", "displayUrl": "/spaces/DEMO"}
    assert daily["lastModified"].endswith("Z") and child["title"] == "Child of daily"
    attachment = search(http, fake, site["headers"], "type = attachment").json()["results"][0]
    assert attachment["content"]["id"].startswith("att") and attachment["content"]["type"] == "attachment"
    weekly = search(http, fake, site["headers"], "title = 'Weekly report'").json()["results"][0]
    assert weekly["lastModified"] > daily["lastModified"]  # the update moved it


def test_search_pages_through_next_links_relative_to_wiki(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    made = [fake.add_page("DEMO", f"Page {index:02d}", labels=["bulk"])["id"] for index in range(30)]
    url: str | None = gw(fake, "/wiki/rest/api/search?cql=label%3Dbulk&limit=7&excerpt=none")
    seen: list[str] = []
    cursors: set[str] = set()
    pages = 0
    while url:
        response = http.get(url, headers=headers, timeout=5)
        assert response.status_code == 200, response.text
        body, pages = response.json(), pages + 1
        assert body["limit"] == 7 and body["totalSize"] == 30 and body["start"] == len(seen)
        assert ("prev" in body["_links"]) == (pages > 1)
        seen += [r["content"]["id"] for r in body["results"]]
        next_link = body["_links"].get("next")
        if next_link:
            assert next_link.startswith("/rest/api/search?")  # relative to _links.context, not the site root
            query = parse_qsl(urlsplit(next_link).query)
            assert query[0] == ("cql", "label=bulk") and ("excerpt", "none") in query
            cursor = dict(query)["cursor"]
            assert cursor not in cursors
            cursors.add(cursor)
            url = gw(fake, body["_links"]["context"] + next_link)
        else:
            url = None
    assert seen == made and pages == 5 and len(cursors) == 4
    wrong_join = http.get(gw(fake, next_link_of(http, fake, headers)), headers=headers, timeout=5)
    assert wrong_join.status_code == 404  # joined onto the site root, the link misses /wiki


def next_link_of(http: requests.Session, fake: FakeAtlassian, headers: dict[str, str]) -> str:
    return str(search(http, fake, headers, "label = bulk", limit=7).json()["_links"]["next"])


def test_search_limits_and_cursors(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    for index in range(30):
        fake.add_page("DEMO", f"Page {index:02d}")
    assert search(http, fake, headers, "type = page").json()["limit"] == 25
    capped = search(http, fake, headers, "type = page", limit=1000).json()
    assert capped["limit"] == 250 and capped["size"] == 31
    started = search(http, fake, headers, "type = page", start=28, limit=25).json()
    assert started["start"] == 28 and started["size"] == 3
    cursor = dict(parse_qsl(urlsplit(next_link_of_query(http, fake, headers, "type = page")).query))["cursor"]
    foreign = search(http, fake, headers, "type = attachment", cursor=cursor)
    assert foreign.status_code == 400 and foreign.json()["message"].startswith(BAD_REQUEST)
    tampered = search(http, fake, headers, "type = page", cursor=cursor[:-2] + "xx")
    assert tampered.status_code == 400
    for bad in ({"limit": "ten"}, {"start": "-1"}):
        assert search(http, fake, headers, "type = page", **bad).status_code == 400
    missing = http.get(gw(fake, "/wiki/rest/api/search"), headers=headers, timeout=5)
    assert missing.status_code == 400 and missing.json()["message"].startswith(BAD_REQUEST)


def next_link_of_query(http: requests.Session, fake: FakeAtlassian, headers: dict[str, str], cql: str) -> str:
    return str(search(http, fake, headers, cql, limit=5).json()["_links"]["next"])


@pytest.mark.parametrize(
    "cql",
    [
        " ",
        "type = page AND",
        "type = foo",
        "title = ",
        "space ~ DEMO",
        "text = revenue",
        "label ~ report",
        "creator = currentUser()",
        "type = page ORDER BY id",
        "type = page ORDER title",
        "(type = page",
        "type == page",
        "title ~ 'x' extra",
        "lastmodified > now('-1d')",
        "type = page AND OR label = x",
        "ORDER BY title",
        "label in report",
        "label in ()",
        'title ~ "unterminated',
    ],
)
def test_cql_outside_the_subset_is_the_v1_parse_error(fake: FakeAtlassian, http: requests.Session, cql: str) -> None:
    refused = search(http, fake, auth(http, fake), cql)
    assert refused.status_code == 400
    assert refused.json()["message"] == f"{BAD_REQUEST}Could not parse cql : {cql}"
    assert refused.json()["statusCode"] == 400


def test_the_cql_parser_binds_and_before_or_and_reads_quotes() -> None:
    query = parse("label = a OR NOT label = b AND title ~ 'it\\'s' ORDER BY created DESC, title")
    assert query.order == (("created", True), ("title", False))
    assert query.where == BoolOp(
        "or",
        (
            Clause("label", "=", ("a",)),
            BoolOp("and", (Not(Clause("label", "=", ("b",))), Clause("title", "~", ("it's",)))),
        ),
    )
    doc = Doc("page", "1", "DEMO", "It's here", "Résumé of Q3", {"c"})
    assert matches(query.where, doc) and not matches(parse("label = b").where, doc)
    assert matches(parse("text ~ résumé").where, doc) and matches(parse("text ~ RÉSUM*").where, doc)
    with pytest.raises(CqlError):
        parse("label = a OR")


# --------------------------------------------------------------------------- routing, scopes, knobs
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/wiki/rest/api/space"),
        ("POST", "/wiki/rest/api/content"),
        ("GET", "/wiki/rest/api/content/{id}"),
        ("GET", "/wiki/rest/api/content/{id}/label"),
        ("DELETE", "/wiki/rest/api/content/{id}/label"),
        ("GET", "/wiki/rest/api/content/{id}/child/attachment"),
        ("PUT", "/wiki/rest/api/content/{id}"),
        ("GET", "/wiki/rest/api/space/DEMO/content"),
    ],
)
def test_the_rest_of_v1_is_still_gone(fake: FakeAtlassian, http: requests.Session, method: str, path: str) -> None:
    page = fake.add_page("DEMO", "Report")
    response = http.request(method, gw(fake, path.replace("{id}", page["id"])), headers=auth(http, fake), timeout=5)
    assert response.status_code == 410 and "GoneException" in response.json()["message"]


def test_an_unknown_v1_path_is_a_v1_404(fake: FakeAtlassian, http: requests.Session) -> None:
    response = http.get(gw(fake, "/wiki/rest/api/search/user"), headers=auth(http, fake), timeout=5)
    assert response.status_code == 404 and response.json()["statusCode"] == 404


def test_each_route_checks_its_scopes(fake: FakeAtlassian, http: requests.Session) -> None:
    page = fake.add_page("DEMO", "Report")
    labels_path = f"/wiki/api/v2/pages/{page['id']}/labels"

    def calls(headers: dict[str, str]) -> dict[str, int]:
        return {
            "add labels": add_labels(http, fake, headers, page["id"], [{"name": "x"}]).status_code,
            "upload": upload(http, fake, headers, page["id"], "a.txt", b"a").status_code,
            "search": search(http, fake, headers, "type = page").status_code,
            "attachments": http.get(
                gw(fake, f"/wiki/api/v2/pages/{page['id']}/attachments"), headers=headers, timeout=5
            ).status_code,
            "labels": http.get(gw(fake, labels_path), headers=headers, timeout=5).status_code,
        }

    assert calls(auth(http, fake)) == dict.fromkeys(("add labels", "upload", "search", "attachments", "labels"), 200)
    old = calls(auth(http, fake, OLD_DEFAULT))
    assert old == {"add labels": 401, "upload": 401, "search": 401, "attachments": 401, "labels": 200}
    refused = add_labels(http, fake, auth(http, fake, OLD_DEFAULT), page["id"], [{"name": "x"}])
    assert refused.json() == SCOPE_MISMATCH
    half = calls(auth(http, fake, "offline_access read:label:confluence write:attachment:confluence"))
    assert half["add labels"] == 401 and half["upload"] == 401  # each needs two granular scopes
    classic = calls(auth(http, fake, "offline_access write:confluence-content write:confluence-file"))
    assert classic["add labels"] == 200 and classic["upload"] == 200 and classic["labels"] == 401
    granular_search = calls(auth(http, fake, "offline_access read:content-details:confluence"))
    assert granular_search["search"] == 200 and granular_search["upload"] == 401


def test_default_scopes_cover_the_toolkit_but_not_delete(fake: FakeAtlassian) -> None:
    scopes = DEFAULT_SCOPES.split()
    assert {
        "read:label:confluence",
        "write:label:confluence",
        "read:attachment:confluence",
        "read:content-details:confluence",
        "write:attachment:confluence",
        "search:confluence",
    } <= set(scopes)
    assert "delete:page:confluence" not in scopes and "offline_access" in scopes
    assert fake.connection()["extra"]["scopes"] == DEFAULT_SCOPES


def test_an_expired_token_on_a_v1_route_is_403(fake: FakeAtlassian, http: requests.Session) -> None:
    page = fake.add_page("DEMO", "Report")
    headers = auth(http, fake)
    fake.advance(3601)
    for response in (
        add_labels(http, fake, headers, page["id"], [{"name": "x"}]),
        search(http, fake, headers, "type = page"),
    ):
        assert response.status_code == 403 and response.json()["statusCode"] == 403
    assert http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}/labels"), headers=headers, timeout=5).status_code == 404


def test_counters_and_failure_knobs_cover_the_new_routes(fake: FakeAtlassian, http: requests.Session) -> None:
    headers = auth(http, fake)
    page = fake.add_page("DEMO", "Report")
    fake.reset_counters()
    fake.fail_next(500, route="POST /wiki/rest/api/content/{id}/label")
    assert add_labels(http, fake, headers, page["id"], [{"name": "x"}]).status_code == 500
    assert fake.page_labels(page["id"]) == []
    assert add_labels(http, fake, headers, page["id"], [{"name": "x"}]).status_code == 200
    fake.fail_next(503, route="PUT /wiki/rest/api/content/{id}/child/attachment", landed=True)
    assert upload(http, fake, headers, page["id"], "lost.txt", b"landed").status_code == 503
    assert fake.attachment_data(page["id"], "lost.txt") == b"landed"  # the answer was lost, the upload was not
    fake.throttle(1, retry_after="3")
    throttled = search(http, fake, headers, "type = page")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert search(http, fake, headers, "type = page").status_code == 200
    for path in (f"/wiki/api/v2/pages/{page['id']}/labels", f"/wiki/api/v2/pages/{page['id']}/attachments"):
        assert http.get(gw(fake, path), headers=headers, timeout=5).status_code == 200
    fake.rate_limit(1, burst=1)
    statuses = [search(http, fake, headers, "type = page").status_code for _ in range(2)]
    assert statuses == [200, 429]
    by_route = fake.counters["api_calls_by_route"]
    assert by_route == {
        "POST /wiki/rest/api/content/{id}/label": 2,
        "PUT /wiki/rest/api/content/{id}/child/attachment": 1,
        "GET /wiki/rest/api/search": 4,
        "GET /wiki/api/v2/pages/{id}/labels": 1,
        "GET /wiki/api/v2/pages/{id}/attachments": 1,
    }
    assert fake.counters["throttled"] == 2 and fake.counters["injected_failures"] == 2
    recorded = [r for r in fake.requests if r["route"] == "POST /wiki/rest/api/content/{id}/label"]
    assert recorded[-1]["json"] == [{"name": "x"}] and json.dumps(fake.requests).count("landed") == 0
