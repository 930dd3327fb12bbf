"""End to end over loopback: every toolkit method of ``ConfluenceClient`` against the emulator (no mocks).

Labels (v2 read across cursor pages, v1 add), attachments (v2 list, v1 multipart upload with its XSRF header;
never re-sent after a failure that landed; re-sent after a 429 with the file rewound), CQL search (v1 next links
joined onto ``{gateway}/wiki``; ``max_results``; a bad query; a missing scope), and the summaries of real answers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.content.summaries import attachment_summary, search_result_summary
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError, ConfluenceScopeError
from airflow_provider_confluence.testing import FakeAtlassian
from helpers.loopback_client import loopback_client, sent

pytestmark = pytest.mark.airflow2

UPLOAD = "PUT /wiki/rest/api/content/{id}/child/attachment"
SEARCH = "GET /wiki/rest/api/search"
LABELS_V2 = "GET /wiki/api/v2/pages/{id}/labels"
LABELS_V1 = "POST /wiki/rest/api/content/{id}/label"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def fake(fake_atlassian: FakeAtlassian) -> Iterator[FakeAtlassian]:
    fake_atlassian.add_space("DEMO", "Demo")
    yield fake_atlassian


@pytest.fixture
def client(fake: FakeAtlassian) -> ConfluenceClient:
    return loopback_client(fake)


class TestLabels:
    def test_reads_every_label_across_cursor_pages(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        names = [f"label-{n:03d}" for n in range(260)]
        page = fake.add_page("DEMO", "Many labels", labels=names)
        assert client.get_page_labels(page["id"]) == names
        assert len(sent(fake, LABELS_V2)) == 2

    def test_adds_only_missing_labels(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", labels=["kpi"])
        assert client.add_page_labels(page["id"], ["KPI", "Daily-Report", "daily-report"]) == ["kpi", "daily-report"]
        assert fake.page_labels(page["id"]) == ["kpi", "daily-report"]
        assert [r["json"] for r in sent(fake, LABELS_V1)] == [[{"prefix": "global", "name": "daily-report"}]]
        assert client.add_page_labels(page["id"], ["kpi"]) == ["kpi", "daily-report"]
        assert len(sent(fake, LABELS_V1)) == 1

    def test_a_bad_name_sends_nothing(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report")
        fake.reset_counters()
        with pytest.raises(ConfluenceConfigError):
            client.add_page_labels(page["id"], ["fine", "not fine"])
        assert fake.requests == [] and fake.page_labels(page["id"]) == []

    def test_a_grant_without_label_scopes_is_told_which_to_add(self, fake: FakeAtlassian) -> None:
        page = fake.add_page("DEMO", "Report")
        client = loopback_client(fake, "offline_access read:page:confluence write:page:confluence")
        with pytest.raises(ConfluenceScopeError, match="write:label:confluence"):
            client.add_page_labels(page["id"], ["kpi"])


class TestAttachments:
    def test_upload_then_list(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Charts")
        made = client.upload_attachment(page["id"], filename="chart.png", data=PNG, comment="first")
        assert made["title"] == "chart.png" and made["version"]["number"] == 1
        assert made["_links"]["base"] == f"{fake.site_url}/wiki"
        assert fake.attachment_data(page["id"], "chart.png") == PNG
        client.upload_attachment(page["id"], filename="data.csv", data=io.BytesIO(b"a,b\n1,2\n"))
        listed = list(client.list_attachments(page["id"]))
        assert [(a["title"], a["mediaType"]) for a in listed] == [("chart.png", "image/png"), ("data.csv", "text/csv")]
        assert [a["title"] for a in client.list_attachments(page["id"], filename="data.csv")] == ["data.csv"]
        upload = sent(fake, UPLOAD)[0]
        assert upload["content_type"].startswith("multipart/form-data")

    def test_the_same_name_makes_a_new_version(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Charts")
        client.upload_attachment(page["id"], filename="chart.png", data=b"v1")
        second = client.upload_attachment(page["id"], filename="chart.png", data=b"v2")
        assert second["version"]["number"] == 2
        assert [a["version"]["number"] for a in fake.attachments(page["id"])] == [2]
        assert fake.attachment_data(page["id"], "chart.png") == b"v2"

    def test_not_resent_after_a_failure_that_landed(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Charts")
        fake.fail_next(502, route=UPLOAD, landed=True)
        with pytest.raises(ConfluenceApiError) as caught:
            client.upload_attachment(page["id"], filename="chart.png", data=PNG)
        assert caught.value.status_code == 502 and "not re-sent" in caught.value.detail
        assert len(sent(fake, UPLOAD)) == 1
        assert [a["version"]["number"] for a in fake.attachments(page["id"])] == [1]  # it landed, once

    def test_a_429_is_resent_with_the_file_rewound(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Charts")
        fake.throttle(times=1, retry_after="1")
        client.upload_attachment(page["id"], filename="chart.png", data=io.BytesIO(PNG))
        assert len(sent(fake, UPLOAD)) == 2
        assert fake.attachment_data(page["id"], "chart.png") == PNG
        assert [a["version"]["number"] for a in fake.attachments(page["id"])] == [1]

    def test_summaries_of_real_answers(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Charts")
        made = attachment_summary(client.upload_attachment(page["id"], filename="chart.png", data=PNG))
        listed = attachment_summary(next(client.list_attachments(page["id"])), fake.site_url)
        for summary in (made, listed):
            assert summary["page_id"] == page["id"] and summary["media_type"] == "image/png"
            assert summary["file_size"] == len(PNG) and summary["version"] == 1
            assert summary["download_url"].startswith(f"{fake.site_url}/wiki/")
        assert made["id"] == listed["id"]


class TestSearch:
    def test_follows_v1_next_links(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        ids = [fake.add_page("DEMO", f"Report {n}", labels=["report"])["id"] for n in range(7)]
        fake.add_page("DEMO", "Other")
        results = list(client.search("label = report AND type = page", limit=3))
        assert sorted(r["content"]["id"] for r in results) == sorted(ids)
        calls = sent(fake, SEARCH)
        assert len(calls) == 3 and all("cursor" in c["query"] for c in calls[1:])

    def test_max_results(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        for n in range(7):
            fake.add_page("DEMO", f"Report {n}", labels=["report"])
        assert len(list(client.search("label = report", max_results=4, limit=3))) == 4
        assert [c["query"]["limit"] for c in sent(fake, SEARCH)] == [["3"], ["3"]]

    def test_a_bad_query_is_a_400(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        with pytest.raises(ConfluenceApiError) as caught:
            list(client.search("label = = report"))
        assert caught.value.status_code == 400 and "Could not parse cql" in caught.value.detail

    def test_a_grant_without_search_scope(self, fake: FakeAtlassian) -> None:
        client = loopback_client(fake, "offline_access read:page:confluence")
        with pytest.raises(ConfluenceScopeError, match="search:confluence"):
            list(client.search("type = page"))

    def test_summaries_link_to_the_site(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Quarterly numbers", "<p>Revenue grew</p>", labels=["finance"])
        (result,) = client.search('label = "finance"')
        summary = search_result_summary(result, fake.site_url)
        assert summary["id"] == page["id"] and summary["type"] == "page" and summary["title"] == "Quarterly numbers"
        assert summary["space"] == "Demo" and summary["url"].startswith(f"{fake.site_url}/wiki/")
