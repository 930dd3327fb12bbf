"""The publishing logic of the toolkit against the emulator over loopback (no mocks).

``update_page_body`` (replace and append, title kept or changed, version message, an unchanged page makes no new
version, a 409 re-reads once), labels (only missing ones are added, checked before anything is written), and
``resolve_parent_id`` (by id, by exact title, missing title).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.content.publish import (
    UPDATE_MODES,
    append_marker,
    publish_page,
    resolve_parent_id,
    update_page_body,
)
from airflow_provider_confluence.exceptions import (
    ConfluenceConfigError,
    ConfluenceConflict,
    ConfluencePageExists,
    ConfluencePageMissing,
)
from airflow_provider_confluence.testing import FakeAtlassian
from helpers.loopback_client import loopback_client, sent

pytestmark = pytest.mark.airflow2

PUT = "PUT /wiki/api/v2/pages/{id}"
POST_PAGE = "POST /wiki/api/v2/pages"
POST_LABEL = "POST /wiki/rest/api/content/{id}/label"


@pytest.fixture
def fake(fake_atlassian: FakeAtlassian) -> Iterator[FakeAtlassian]:
    fake_atlassian.add_space("DEMO", "Demo")
    yield fake_atlassian


@pytest.fixture
def client(fake: FakeAtlassian) -> ConfluenceClient:
    return loopback_client(fake)


@pytest.fixture
def space_id(client: ConfluenceClient) -> str:
    return client.get_space_id("DEMO")


def stored(client: ConfluenceClient, page_id: str) -> tuple[str, str, int]:
    page = client.get_page(page_id, body_format="storage")
    return page["title"], page["body"]["storage"]["value"], page["version"]["number"]


class TestReplace:
    def test_an_unchanged_body_makes_no_new_version(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>same</p>")
        result = update_page_body(client, page_id=page["id"], body="<p>same</p>")
        assert result["version"]["number"] == 1
        assert sent(fake, PUT) == []

    def test_title_none_keeps_the_current_title(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>old</p>")
        update_page_body(client, page_id=page["id"], body="<p>new</p>", message="nightly run")
        assert stored(client, page["id"]) == ("Report", "<p>new</p>", 2)
        put = sent(fake, PUT)[0]["json"]
        assert put["title"] == "Report" and put["version"] == {"number": 2, "message": "nightly run"}

    def test_a_new_title_alone_makes_a_new_version(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>same</p>")
        update_page_body(client, page_id=page["id"], body="<p>same</p>", title="Report (final)")
        assert stored(client, page["id"]) == ("Report (final)", "<p>same</p>", 2)
        update_page_body(client, page_id=page["id"], body="<p>same</p>", title="Report (final)")
        assert len(sent(fake, PUT)) == 1

    def test_a_409_reads_the_page_again_and_retries_once(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>old</p>")
        fake.fail_next(409, route=PUT)
        update_page_body(client, page_id=page["id"], body="<p>new</p>")
        assert stored(client, page["id"])[1:] == ("<p>new</p>", 2)
        assert len(sent(fake, PUT)) == 2
        assert len(sent(fake, "GET /wiki/api/v2/pages/{id}")) == 3  # two reads for the write, one by stored()

    def test_a_second_409_is_raised(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>old</p>")
        fake.fail_next(409, times=2, route=PUT)
        with pytest.raises(ConfluenceConflict):
            update_page_body(client, page_id=page["id"], body="<p>new</p>")
        assert stored(client, page["id"])[1:] == ("<p>old</p>", 1)


class TestAppend:
    def test_a_keyed_append_is_written_once_per_key(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Log", "<p>day 1</p>")
        update_page_body(client, page_id=page["id"], body="<p>ok</p>", mode="append", append_key="run-1")
        assert stored(client, page["id"]) == ("Log", "<p>day 1</p>" + append_marker("run-1") + "<p>ok</p>", 2)
        again = update_page_body(
            client, page_id=page["id"], body="<p>ok</p>", mode="append", append_key="run-1"
        )  # a retried task of the same run
        assert again["version"]["number"] == 2
        assert len(sent(fake, PUT)) == 1
        update_page_body(client, page_id=page["id"], body="<p>ok</p>", mode="append", append_key="run-2")
        assert stored(client, page["id"])[1:] == (
            "<p>day 1</p>" + append_marker("run-1") + "<p>ok</p>" + append_marker("run-2") + "<p>ok</p>",
            3,
        )  # the next run appends the same text again: repeated content is never dropped

    def test_without_a_key_every_call_appends(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Log", "<p>a</p>")
        for _ in range(2):
            update_page_body(client, page_id=page["id"], body="<p>a</p>", mode="append")
        assert stored(client, page["id"])[1:] == ("<p>a</p><p>a</p><p>a</p>", 3)

    def test_the_marker_is_invisible_storage_and_escapes_the_key(self) -> None:
        from airflow_provider_confluence.testing.bodies import check_storage

        marker = append_marker('dag/task/manual__<2026>&"x"]]>')
        check_storage(marker)
        assert marker.startswith('<ac:structured-macro ac:name="anchor">') and "<2026>" not in marker

    def test_append_with_a_new_title_keeps_the_body(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        body = "<p>a</p>" + append_marker("k") + "<p>b</p>"
        page = fake.add_page("DEMO", "Log", body)
        update_page_body(client, page_id=page["id"], body="<p>b</p>", mode="append", append_key="k", title="Log 2026")
        assert stored(client, page["id"]) == ("Log 2026", body, 2)

    def test_markdown_is_converted_before_it_is_appended(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Log", "<p>a</p>")
        update_page_body(client, page_id=page["id"], body="**b** <i>", mode="append", representation="markdown")
        assert stored(client, page["id"])[1] == "<p>a</p><p><strong>b</strong> &lt;i&gt;</p>\n"

    def test_append_after_a_409_appends_to_the_newer_body(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Log", "<p>a</p>")
        fake.fail_next(409, route=PUT)
        update_page_body(client, page_id=page["id"], body="<p>b</p>", mode="append")
        assert stored(client, page["id"])[1] == "<p>a</p><p>b</p>"

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"mode": "prepend"}, "replace, append"),
            ({"mode": "append", "representation": "wiki"}, "storage"),
            ({"mode": "append", "representation": "atlas_doc_format"}, "storage"),
            ({"representation": "html"}, "representation"),
            ({"labels": ["a b"]}, "a space"),
            ({"representation": "table"}, "table"),
        ],
    )
    def test_bad_options_are_refused_before_anything_is_sent(
        self, fake: FakeAtlassian, client: ConfluenceClient, kwargs: dict[str, Any], match: str
    ) -> None:
        page = fake.add_page("DEMO", "Log", "<p>a</p>")
        fake.reset_counters()
        with pytest.raises(ConfluenceConfigError, match=match):
            update_page_body(client, page_id=page["id"], body="<p>b</p>", **kwargs)
        assert fake.requests == []

    def test_modes(self) -> None:
        assert UPDATE_MODES == ("replace", "append")


class TestLabels:
    def test_update_adds_only_missing_labels(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>a</p>", labels=["kpi"])
        update_page_body(client, page_id=page["id"], body="<p>b</p>", labels=["KPI", "Daily-Report"])
        assert fake.page_labels(page["id"]) == ["kpi", "daily-report"]
        assert [r["json"] for r in sent(fake, POST_LABEL)] == [[{"prefix": "global", "name": "daily-report"}]]

    def test_labels_are_added_even_when_the_body_is_unchanged(
        self, fake: FakeAtlassian, client: ConfluenceClient
    ) -> None:
        page = fake.add_page("DEMO", "Report", "<p>a</p>")
        update_page_body(client, page_id=page["id"], body="<p>a</p>", labels=["weekly"])
        assert sent(fake, PUT) == []
        assert fake.page_labels(page["id"]) == ["weekly"]

    def test_no_label_write_when_all_are_there(self, fake: FakeAtlassian, client: ConfluenceClient) -> None:
        page = fake.add_page("DEMO", "Report", "<p>a</p>", labels=["kpi", "weekly"])
        update_page_body(client, page_id=page["id"], body="<p>a</p>", labels=["weekly"])
        assert sent(fake, POST_LABEL) == []

    def test_publish_creates_with_labels(self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str) -> None:
        page = publish_page(client, space_id=space_id, title="New", body="<p>x</p>", labels=["a", "b"])
        assert fake.page_labels(page["id"]) == ["a", "b"]

    def test_publish_skip_still_adds_missing_labels(
        self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str
    ) -> None:
        existing = fake.add_page("DEMO", "Kept", "<p>x</p>", labels=["a"])
        page = publish_page(
            client, space_id=space_id, title="Kept", body="<p>other</p>", if_exists="skip", labels=["a", "b"]
        )
        assert page["version"]["number"] == 1 and sent(fake, PUT) == []
        assert fake.page_labels(existing["id"]) == ["a", "b"]

    def test_publish_update_adds_labels_to_the_new_version(
        self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str
    ) -> None:
        existing = fake.add_page("DEMO", "Upd", "<p>x</p>")
        page = publish_page(client, space_id=space_id, title="Upd", body="<p>y</p>", if_exists="update", labels=["c"])
        assert page["version"]["number"] == 2
        assert fake.page_labels(existing["id"]) == ["c"]

    def test_publish_fail_adds_no_label(self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str) -> None:
        existing = fake.add_page("DEMO", "Taken", "<p>x</p>")
        with pytest.raises(ConfluencePageExists):
            publish_page(client, space_id=space_id, title="Taken", body="<p>y</p>", labels=["c"])
        assert fake.page_labels(existing["id"]) == [] and sent(fake, POST_LABEL) == []

    def test_a_bad_label_creates_no_page(self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str) -> None:
        with pytest.raises(ConfluenceConfigError, match="','"):
            publish_page(client, space_id=space_id, title="Never", body="<p>x</p>", labels=["a,b"])
        assert sent(fake, POST_PAGE) == []
        assert client.find_page(space_id=space_id, title="Never") is None


class TestParent:
    def test_by_exact_title(self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str) -> None:
        fake.add_page("DEMO", "Reports 2025")
        fake.add_page("DEMO", "reports")
        parent = fake.add_page("DEMO", "Reports")
        assert resolve_parent_id(client, space_id=space_id, parent_title="Reports") == parent["id"]

    def test_the_page_goes_under_it(self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str) -> None:
        parent = fake.add_page("DEMO", "Reports")
        parent_id = resolve_parent_id(client, space_id=space_id, parent_title="Reports")
        child = publish_page(client, space_id=space_id, title="Child", body="<p>c</p>", parent_id=parent_id)
        assert child["parentId"] == parent["id"]

    def test_a_missing_title_names_the_space_and_title(
        self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str
    ) -> None:
        fake.add_page("DEMO", "Reports")
        with pytest.raises(ConfluencePageMissing) as caught:
            resolve_parent_id(client, space_id=space_id, parent_title="reports ")
        detail = caught.value.message
        assert "'reports '" in detail and f"space {space_id}" in detail and "parent_id" in detail
        assert (caught.value.title, caught.value.space_id, caught.value.status_code) == ("reports ", space_id, None)

    def test_by_id_or_none(self, client: ConfluenceClient, space_id: str) -> None:
        assert resolve_parent_id(client, space_id=space_id, parent_id=123) == "123"
        assert resolve_parent_id(client, space_id=space_id) is None
        assert resolve_parent_id(client, space_id=space_id, parent_id="", parent_title="") is None

    def test_both_is_an_error(self, fake: FakeAtlassian, client: ConfluenceClient, space_id: str) -> None:
        fake.reset_counters()
        with pytest.raises(ConfluenceConfigError, match="not both"):
            resolve_parent_id(client, space_id=space_id, parent_id="1", parent_title="Reports")
        assert fake.requests == []
