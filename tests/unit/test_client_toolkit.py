"""Unit tests of the toolkit's client methods over requests-mock (no sockets, no sleeping).

Labels (v2 read, v1 add), attachments (v2 list, v1 multipart upload that is never re-sent after a failure that
may have landed), CQL search (v1 next links joined onto ``{gateway}/wiki``), the transport pieces they need
(multipart, extra headers, the "not idempotent" marker, rewinding a file before a re-send) and the summaries.
"""

from __future__ import annotations

import email.policy
import io
import json
import random
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.client.labels import normalize_labels
from airflow_provider_confluence.client.pagination import join_v1_next_link
from airflow_provider_confluence.content import publish, summaries
from airflow_provider_confluence.content.summaries import (
    attachment_summary,
    page_summary,
    page_url,
    search_result_summary,
)
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceConnectionError,
    ConfluenceError,
    ConfluenceScopeError,
)
from airflow_provider_confluence.retry import RetryPolicy

pytestmark = pytest.mark.airflow2

API = "https://api.example.test"
CLOUD = "cloud-1"
GW = f"{API}/ex/confluence/{CLOUD}"
SITE = "https://acme.atlassian.net"
LABELS_V2 = f"{GW}/wiki/api/v2/pages/9001/labels"
LABELS_V1 = f"{GW}/wiki/rest/api/content/9001/label"
ATTACHMENTS_V2 = f"{GW}/wiki/api/v2/pages/9001/attachments"
UPLOAD = f"{GW}/wiki/rest/api/content/9001/child/attachment"
SEARCH = f"{GW}/wiki/rest/api/search"
TOKEN = "at-TOOLKIT-5ecret-token"
REFRESHED = "at-REFRESHED-5ecret-token"
SCOPE_BODY = {"code": 401, "message": "Unauthorized; scope does not match"}


class Tokens:
    """An AccessTokenSource that hands out one token and a refreshed one after a 401."""

    def __init__(self) -> None:
        self.rejected: list[str] = []

    def get_access_token(self) -> str:
        return TOKEN

    def refresh_rejected(self, rejected_token: str) -> str:
        self.rejected.append(rejected_token)
        return REFRESHED

    def access_token_expired(self) -> bool:
        return False


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> ConfluenceClient:
    return ConfluenceClient(
        api_url=API,
        cloud_id=CLOUD,
        tokens=Tokens(),
        site_url=SITE,
        retry=RetryPolicy(rng=random.Random(7)),
        sleep=sleeps.append,
    )


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def parts_of(request: Any) -> dict[str, dict[str, Any]]:
    """The multipart/form-data parts of a recorded request, by name."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    assert message.is_multipart()
    found: dict[str, dict[str, Any]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        found[name] = {
            "filename": part.get_filename(),
            "type": part.get_content_type() if part.get("Content-Type") else None,
            "charset": part.get_content_charset(),
            "data": part.get_payload(decode=True),
        }
    return found


def upload_answer(title: str = "chart.png", number: int = 1, **links: str) -> dict[str, Any]:
    return {
        "results": [
            {
                "id": "att77",
                "type": "attachment",
                "status": "current",
                "title": title,
                "version": {"number": number},
                "extensions": {"mediaType": "image/png", "fileSize": 4, "comment": ""},
                "_links": {
                    "webui": "/pages/viewpageattachments.action?pageId=9001",
                    "download": f"/download/attachments/9001/{title}",
                },
                "_expandable": {"container": "/rest/api/content/9001"},
            }
        ],
        "size": 1,
        "_links": {"base": f"{SITE}/wiki", "context": "/wiki", **links},
    }


# -- transport: multipart, headers, the not-idempotent marker, rewinding ------------------------------------


class TestUploadWire:
    def test_multipart_shape_and_headers(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.put(UPLOAD, json=upload_answer())
        client.upload_attachment("9001", filename="chart.png", data=b"\x89PNG", comment="Nightly run ✓")
        request = requests_mock.last_request
        assert request.method == "PUT"
        assert request.headers["X-Atlassian-Token"] == "no-check"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
        parts = parts_of(request)
        assert list(parts) == ["file", "minorEdit", "comment"]
        assert parts["file"] == {"filename": "chart.png", "type": "image/png", "charset": None, "data": b"\x89PNG"}
        assert parts["minorEdit"]["data"] == b"true" and parts["minorEdit"]["filename"] is None
        assert (parts["comment"]["type"], parts["comment"]["charset"]) == ("text/plain", "utf-8")
        assert parts["comment"]["data"].decode("utf-8") == "Nightly run ✓"

    @pytest.mark.parametrize(
        ("filename", "media_type", "expected"),
        [
            ("report.pdf", None, "application/pdf"),
            ("data.csv", None, "text/csv"),
            ("blob.unknownext", None, "application/octet-stream"),
            ("NOEXTENSION", None, "application/octet-stream"),
            ("chart.png", "image/svg+xml", "image/svg+xml"),
        ],
    )
    def test_media_type_is_guessed_unless_given(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, filename: str, media_type: str | None, expected: str
    ) -> None:
        requests_mock.put(UPLOAD, json=upload_answer(filename))
        client.upload_attachment("9001", filename=filename, data=b"abcd", media_type=media_type)
        parts = parts_of(requests_mock.last_request)
        assert parts["file"]["type"] == expected
        assert "comment" not in parts

    def test_returns_the_v1_object_with_base_filled_in(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.put(UPLOAD, json=upload_answer(number=3))
        attachment = client.upload_attachment("9001", filename="chart.png", data=b"\x89PNG")
        assert attachment["id"] == "att77" and attachment["version"]["number"] == 3
        assert attachment["_links"]["base"] == f"{SITE}/wiki"
        assert attachment["_links"]["download"] == "/download/attachments/9001/chart.png"

    def test_base_falls_back_to_the_site(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        answer = upload_answer()
        del answer["_links"]["base"]
        requests_mock.put(UPLOAD, json=answer)
        assert client.upload_attachment("9001", filename="chart.png", data=b"x")["_links"]["base"] == f"{SITE}/wiki"

    def test_an_answer_without_an_attachment_is_an_error(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.put(UPLOAD, json={"results": [], "size": 0})
        with pytest.raises(ConfluenceApiError, match="lists no attachment"):
            client.upload_attachment("9001", filename="chart.png", data=b"x")

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"filename": "dir/chart.png", "data": b"x"}, "bare file name"),
            ({"filename": "C:\\tmp\\chart.png", "data": b"x"}, "bare file name"),
            ({"filename": "  ", "data": b"x"}, "needs a file name"),
            ({"filename": "chart.png", "data": "text"}, "encode the text"),
            ({"filename": "chart.png", "data": 42}, "not int"),
        ],
    )
    def test_bad_input_is_refused_before_sending(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, kwargs: dict[str, Any], match: str
    ) -> None:
        with pytest.raises(ConfluenceConfigError, match=match):
            client.upload_attachment("9001", **kwargs)
        assert requests_mock.call_count == 0

    def test_an_xsrf_refusal_says_what_is_missing(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.put(UPLOAD, status_code=403, text="XSRF check failed")
        with pytest.raises(ConfluenceApiError, match="X-Atlassian-Token: no-check") as caught:
            client.upload_attachment("9001", filename="chart.png", data=b"x")
        assert caught.value.status_code == 403


class TestUploadIsNotIdempotent:
    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_not_resent_after_a_5xx(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, sleeps: list[float], status: int
    ) -> None:
        requests_mock.put(UPLOAD, [{"status_code": status}, {"json": upload_answer()}])
        with pytest.raises(ConfluenceApiError) as caught:
            client.upload_attachment("9001", filename="chart.png", data=b"x")
        assert caught.value.status_code == status
        assert "was not re-sent" in caught.value.detail and "check the page's attachments" in caught.value.detail
        assert requests_mock.call_count == 1
        assert sleeps == []

    @pytest.mark.parametrize("exc", [requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError])
    def test_not_resent_after_no_answer(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, sleeps: list[float], exc: type[Exception]
    ) -> None:
        requests_mock.put(UPLOAD, [{"exc": exc}, {"json": upload_answer()}])
        with pytest.raises(ConfluenceConnectionError, match="may or may not have been processed"):
            client.upload_attachment("9001", filename="chart.png", data=b"x")
        assert requests_mock.call_count == 1
        assert sleeps == []

    def test_a_429_is_waited_out_and_resent_with_the_file_rewound(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, sleeps: list[float]
    ) -> None:
        requests_mock.put(UPLOAD, [{"status_code": 429, "headers": {"Retry-After": "3"}}, {"json": upload_answer()}])
        stream = io.BytesIO(b"HEADER|payload-bytes")
        stream.seek(len(b"HEADER|"))  # the caller already read a header: upload from here, both times
        client.upload_attachment("9001", filename="chart.png", data=stream)
        assert requests_mock.call_count == 2
        assert [parts_of(r)["file"]["data"] for r in requests_mock.request_history] == [b"payload-bytes"] * 2
        assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 3.4

    def test_a_401_refreshes_and_resends_with_the_file_rewound(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.put(
            UPLOAD, [{"status_code": 401, "json": {"code": 401, "message": "Unauthorized"}}, {"json": upload_answer()}]
        )
        client.upload_attachment("9001", filename="chart.png", data=io.BytesIO(b"0123456789"))
        history = requests_mock.request_history
        assert [r.headers["Authorization"] for r in history] == [f"Bearer {TOKEN}", f"Bearer {REFRESHED}"]
        assert [parts_of(r)["file"]["data"] for r in history] == [b"0123456789"] * 2

    def test_a_stream_that_cannot_be_rewound_is_not_resent(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        class Pipe(io.RawIOBase):
            def __init__(self) -> None:
                self._data = io.BytesIO(b"streamed")

            def readable(self) -> bool:
                return True

            def seekable(self) -> bool:
                return False

            def readinto(self, buffer: Any) -> int:
                chunk = self._data.read(len(buffer))
                buffer[: len(chunk)] = chunk
                return len(chunk)

        requests_mock.put(UPLOAD, [{"status_code": 429, "headers": {"Retry-After": "1"}}, {"json": upload_answer()}])
        with pytest.raises(ConfluenceError, match="cannot be rewound"):
            client.upload_attachment("9001", filename="chart.png", data=Pipe())
        assert requests_mock.call_count == 1

    def test_idempotent_marker_overrides_the_method(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, sleeps: list[float]
    ) -> None:
        requests_mock.post(f"{GW}/wiki/rest/api/thing", [{"status_code": 502}, {"json": {"ok": 1}}])
        assert client.request("POST", "/wiki/rest/api/thing", json={}, idempotent=True) == {"ok": 1}
        requests_mock.put(f"{GW}/wiki/rest/api/other", [{"status_code": 502}, {"json": {"ok": 2}}])
        with pytest.raises(ConfluenceApiError):
            client.request("PUT", "/wiki/rest/api/other", json={}, idempotent=False)
        assert len(sleeps) == 1

    def test_extra_headers_cannot_replace_authorization(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(f"{GW}/wiki/rest/api/x", json={})
        client.request("GET", "/wiki/rest/api/x", headers={"authorization": "Basic Zm9v", "X-Extra": "1"})
        assert requests_mock.last_request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert requests_mock.last_request.headers["X-Extra"] == "1"

    def test_json_and_files_together_are_refused(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        with pytest.raises(ConfluenceConfigError):
            client.request("PUT", "/wiki/rest/api/x", json={}, files=[("file", ("a", b"x"))])
        assert requests_mock.call_count == 0


# -- v1 next links ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            "/rest/api/search?cql=type%3Dpage&cursor=abc&limit=2",
            f"{GW}/wiki/rest/api/search?cql=type%3Dpage&cursor=abc&limit=2",
        ),
        ("/rest/api/search?cursor=a%2Fb&cql=x&next=true", f"{GW}/wiki/rest/api/search?cursor=a%2Fb&cql=x&next=true"),
        ("/wiki/rest/api/search?cursor=c", f"{GW}/wiki/rest/api/search?cursor=c"),  # never /wiki/wiki
        (f"{GW}/wiki/rest/api/search?cursor=d", f"{GW}/wiki/rest/api/search?cursor=d"),
        ("  /rest/api/search?cursor=e  ", f"{GW}/wiki/rest/api/search?cursor=e"),
    ],
)
def test_v1_next_links_join_onto_the_gateway_wiki(link: str, expected: str) -> None:
    assert join_v1_next_link(GW, link) == expected


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.com/wiki/rest/api/search?cursor=x",
        "//evil.example.com/rest/api/search",
        "/rest/api/../../../admin",
        "",
        "rest/api/search",
    ],
)
def test_v1_next_links_elsewhere_are_refused(link: str) -> None:
    with pytest.raises(ConfluenceError):
        join_v1_next_link(GW, link)


# -- search -------------------------------------------------------------------------------------------------


def hit(n: int | str) -> dict[str, Any]:
    return {
        "content": {
            "id": str(n),
            "type": "page",
            "status": "current",
            "title": f"Page {n}",
            "_links": {"webui": f"/spaces/DEMO/pages/{n}"},
        },
        "title": f"Page @@@hl@@@{n}@@@endhl@@@",
        "excerpt": "",
        "url": f"/spaces/DEMO/pages/{n}",
        "entityType": "content",
        "lastModified": "2026-01-02T03:04:05.000Z",
        "resultGlobalContainer": {"title": "Demo", "displayUrl": "/spaces/DEMO"},
    }


def search_page(ids: list[Any], next_cursor: str | None = None, limit: int = 2) -> dict[str, Any]:
    links: dict[str, str] = {"base": f"{SITE}/wiki", "context": "/wiki"}
    if next_cursor:
        links["next"] = f"/rest/api/search?cql=type%3Dpage&cursor={next_cursor}&limit={limit}"
    return {"results": [hit(i) for i in ids], "start": 0, "limit": limit, "size": len(ids), "_links": links}


class TestSearch:
    def test_follows_v1_next_links_onto_the_gateway_wiki(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(
            SEARCH,
            [{"json": search_page([1, 2], "c2")}, {"json": search_page([3, 4], "c3")}, {"json": search_page([5])}],
        )
        ids = [r["content"]["id"] for r in client.search("type=page", limit=2)]
        assert ids == ["1", "2", "3", "4", "5"]
        urls = [r.url for r in requests_mock.request_history]
        assert all(u.startswith(f"{SEARCH}?") for u in urls)
        assert query(requests_mock.request_history[0]) == {"cql": ["type=page"], "limit": ["2"]}
        assert query(requests_mock.request_history[1])["cursor"] == ["c2"]

    def test_max_results_stops_without_asking_for_more(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(
            SEARCH,
            [
                {"json": search_page([1, 2, 3], "c2", 3)},
                {"json": search_page([4, 5, 6], "c3", 3)},
                {"json": search_page([7])},
            ],
        )
        results = list(client.search("type=page", max_results=5, limit=100))
        assert [r["content"]["id"] for r in results] == ["1", "2", "3", "4", "5"]
        assert requests_mock.call_count == 2
        assert query(requests_mock.request_history[0])["limit"] == ["5"]  # never more per page than wanted

    def test_max_results_on_the_first_page_sends_one_request(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(SEARCH, json=search_page([1, 2], "c2"))
        assert len(list(client.search("type=page", max_results=2))) == 2
        assert requests_mock.call_count == 1

    def test_a_looping_cursor_is_refused(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SEARCH, [{"json": search_page([1, 2], "c2")}, {"json": search_page([3, 4], "c2")}])
        seen: list[str] = []
        with pytest.raises(ConfluenceError, match="already followed"):
            for result in client.search("type=page", limit=2):
                seen.append(result["content"]["id"])
        assert seen == ["1", "2", "3", "4"]
        assert requests_mock.call_count == 2

    def test_pages_without_progress_stop_the_search(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            SEARCH,
            [
                {"json": search_page([1, 2], "c2")},
                {"json": search_page([], "c3")},
                {"json": search_page([], "c4")},
                {"json": search_page([], "c5")},
                {"json": search_page([9])},
            ],
        )
        with pytest.raises(ConfluenceError, match="no progress over 3 pages"):
            list(client.search("type=page", limit=2))
        assert requests_mock.call_count == 4

    def test_a_repeated_page_is_not_yielded_twice(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            SEARCH,
            [{"json": search_page([1, 2], "c2")}, {"json": search_page([1, 2], "c3")}, {"json": search_page([3])}],
        )
        assert [r["content"]["id"] for r in client.search("type=page", limit=2)] == ["1", "2", "3"]

    def test_empty_last_pages_are_fine(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            SEARCH, [{"json": search_page([], "c2")}, {"json": search_page([], "c3")}, {"json": search_page([])}]
        )
        assert list(client.search("type=page")) == []

    @pytest.mark.parametrize(
        ("cql", "kwargs"),
        [
            ("", {}),
            ("   ", {}),
            (None, {}),
            ("type=page", {"max_results": 0}),
            ("type=page", {"max_results": -1}),
            ("type=page", {"max_results": True}),
            ("type=page", {"limit": 0}),
            ("type=page", {"limit": 251}),
            ("type=page", {"limit": "10"}),
        ],
    )
    def test_bad_arguments_fail_at_the_call_before_sending(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, cql: Any, kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(ConfluenceConfigError):
            client.search(cql, **kwargs)  # not iterated: the check is eager
        assert requests_mock.call_count == 0

    def test_a_bad_cql_is_a_400_that_says_to_check_the_query(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        message = (
            "com.atlassian.confluence.api.service.exceptions.BadRequestException: Could not parse cql : type = = page"
        )
        requests_mock.get(SEARCH, status_code=400, json={"statusCode": 400, "message": message})
        with pytest.raises(ConfluenceApiError) as caught:
            list(client.search("type = = page"))
        assert caught.value.status_code == 400
        assert "Could not parse cql" in caught.value.detail and "CQL query's syntax" in caught.value.detail

    def test_a_missing_scope_names_it(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SEARCH, status_code=401, json=SCOPE_BODY)
        with pytest.raises(ConfluenceScopeError, match="search:confluence"):
            list(client.search("type=page"))


# -- labels -------------------------------------------------------------------------------------------------


def labels_page(names: list[str], next_link: str | None = None) -> dict[str, Any]:
    links = {"base": f"{SITE}/wiki", **({"next": next_link} if next_link else {})}
    return {"results": [{"id": str(i), "name": n, "prefix": "global"} for i, n in enumerate(names)], "_links": links}


def labels_answer(names: list[str], limit: int = 200) -> dict[str, Any]:
    results = [{"prefix": "global", "name": n, "id": str(i), "label": n} for i, n in enumerate(names)]
    return {"results": results, "start": 0, "limit": limit, "size": len(results)}


class TestLabels:
    def test_get_page_labels_follows_every_page(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            LABELS_V2,
            [
                {"json": labels_page(["b-label", "a-label"], "/wiki/api/v2/pages/9001/labels?cursor=x2&limit=250")},
                {"json": labels_page(["c-label"])},
            ],
        )
        assert client.get_page_labels("9001") == ["b-label", "a-label", "c-label"]
        assert query(requests_mock.request_history[0]) == {"limit": ["250"]}
        assert query(requests_mock.request_history[1])["cursor"] == ["x2"]

    def test_add_sends_only_missing_lower_cased_labels(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(LABELS_V2, json=labels_page(["daily-report"]))
        requests_mock.post(LABELS_V1, json=labels_answer(["daily-report", "kpi", "team_a"]))
        after = client.add_page_labels("9001", ["Daily-Report", "KPI", "kpi", " team_a "])
        assert after == ["daily-report", "kpi", "team_a"]
        post = [r for r in requests_mock.request_history if r.method == "POST"]
        assert len(post) == 1
        assert post[0].json() == [{"prefix": "global", "name": "kpi"}, {"prefix": "global", "name": "team_a"}]
        assert post[0].headers["Content-Type"] == "application/json"

    def test_nothing_is_written_when_the_page_has_them_all(
        self, client: ConfluenceClient, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(LABELS_V2, json=labels_page(["kpi", "daily-report"]))
        assert client.add_page_labels("9001", ["KPI"]) == ["kpi", "daily-report"]
        assert [r.method for r in requests_mock.request_history] == ["GET"]

    def test_a_single_string_is_one_label(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(LABELS_V2, json=labels_page([]))
        requests_mock.post(LABELS_V1, json=labels_answer(["weekly"]))
        assert client.add_page_labels("9001", "weekly") == ["weekly"]
        assert requests_mock.last_request.json() == [{"prefix": "global", "name": "weekly"}]

    def test_the_label_post_is_resent_after_a_502(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, sleeps: list[float]
    ) -> None:
        requests_mock.get(LABELS_V2, json=labels_page([]))
        requests_mock.post(LABELS_V1, [{"status_code": 502}, {"json": labels_answer(["kpi"])}])
        assert client.add_page_labels("9001", ["kpi"]) == ["kpi"]
        assert len(sleeps) == 1  # adding an existing label is a no-op: safe to send again

    def test_a_truncated_answer_is_read_again_over_v2(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(LABELS_V2, [{"json": labels_page([])}, {"json": labels_page(["a", "b", "c"])}])
        requests_mock.post(LABELS_V1, json=labels_answer(["a", "b"], limit=2))
        assert client.add_page_labels("9001", ["c"]) == ["a", "b", "c"]

    def test_a_missing_write_scope_names_it(self, client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
        requests_mock.get(LABELS_V2, json=labels_page([]))
        requests_mock.post(LABELS_V1, status_code=401, json=SCOPE_BODY)
        with pytest.raises(ConfluenceScopeError, match="write:label:confluence"):
            client.add_page_labels("9001", ["kpi"])

    @pytest.mark.parametrize(
        ("labels", "match"),
        [
            (["two words"], "a space"),
            (["a,b"], "','"),
            (["tab\there"], "contains"),
            (["release:1"], "':'"),
            (["x" * 256], "at most 255"),
            ([""], "empty"),
            (["ok", 5], "must be a string"),
            ([None], "must be a string"),
        ],
    )
    def test_bad_names_are_refused_before_sending(
        self, client: ConfluenceClient, requests_mock: rm.Mocker, labels: list[Any], match: str
    ) -> None:
        with pytest.raises(ConfluenceConfigError, match=match):
            client.add_page_labels("9001", labels)
        assert requests_mock.call_count == 0

    def test_normalize_keeps_order_and_allows_the_longest_name(self) -> None:
        assert normalize_labels(None) == []
        assert normalize_labels(("B", "a", "b", "x" * 255)) == ["b", "a", "x" * 255]
        assert normalize_labels(["naïve-ünïcode", "v1_2-3"]) == ["naïve-ünïcode", "v1_2-3"]


# -- attachments list ---------------------------------------------------------------------------------------


def test_list_attachments_filters_by_name_and_follows_pages(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    first = {
        "results": [{"id": "att1", "title": "a.png"}],
        "_links": {"next": "/wiki/api/v2/pages/9001/attachments?cursor=n2&filename=a.png"},
    }
    requests_mock.get(ATTACHMENTS_V2, [{"json": first}, {"json": {"results": [{"id": "att2"}], "_links": {}}}])
    assert [a["id"] for a in client.list_attachments("9001", filename="a.png")] == ["att1", "att2"]
    assert query(requests_mock.request_history[0]) == {"filename": ["a.png"], "limit": ["250"]}
    assert query(requests_mock.request_history[1])["cursor"] == ["n2"]


def test_list_attachments_without_a_filter(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(ATTACHMENTS_V2, json={"results": [], "_links": {}})
    assert list(client.list_attachments("9001")) == []
    assert "filename" not in query(requests_mock.last_request)


# -- summaries ----------------------------------------------------------------------------------------------


class TestSummaries:
    def test_publish_keeps_re_exporting_the_page_helpers(self) -> None:
        assert publish.page_summary is summaries.page_summary
        assert publish.page_url is summaries.page_url

    def test_page_summary(self) -> None:
        page = {
            "id": 9001,
            "title": "Weekly",
            "spaceId": 42,
            "version": {"number": 3},
            "_links": {"webui": "/spaces/D/pages/9001", "base": f"{SITE}/wiki"},
        }
        assert page_summary(page) == {
            "id": "9001",
            "title": "Weekly",
            "space_id": "42",
            "version": 3,
            "url": f"{SITE}/wiki/spaces/D/pages/9001",
        }

    @pytest.mark.parametrize(
        "page",
        [
            {},
            {"id": None, "version": None, "_links": None},
            {"version": "x", "_links": "y", "title": ["t"]},
            {"version": {"number": True}, "_links": {"webui": ""}},
        ],
    )
    def test_page_summary_of_odd_pages_has_nones(self, page: dict[str, Any]) -> None:
        assert page_summary(page, SITE) == {"id": None, "title": None, "space_id": None, "version": None, "url": None}

    def test_page_url_falls_back_to_the_site(self) -> None:
        assert page_url({"_links": {"webui": "/x"}}, SITE + "/") == f"{SITE}/wiki/x"
        assert page_url({"_links": {"webui": "/x"}}) == "/x"  # no base known: the path as is

    def test_attachment_summary_of_a_v2_object(self) -> None:
        att = {
            "id": "att5",
            "status": "current",
            "title": "chart.png",
            "mediaType": "image/png",
            "fileSize": 1234,
            "pageId": "9001",
            "version": {"number": 2},
            "downloadLink": "/download/attachments/9001/chart.png?v=2",
            "_links": {"webui": "/pages/viewpageattachments.action?pageId=9001&preview=chart.png"},
        }
        assert attachment_summary(att, SITE) == {
            "id": "att5",
            "title": "chart.png",
            "page_id": "9001",
            "media_type": "image/png",
            "file_size": 1234,
            "version": 2,
            "url": f"{SITE}/wiki/pages/viewpageattachments.action?pageId=9001&preview=chart.png",
            "download_url": f"{SITE}/wiki/download/attachments/9001/chart.png?v=2",
        }

    def test_attachment_summary_of_the_upload_answer(self) -> None:
        att = upload_answer()["results"][0]
        att["_links"]["base"] = "https://other.example/wiki"
        summary = attachment_summary(att, SITE)
        assert summary["page_id"] == "9001"  # from _expandable.container
        assert summary["media_type"] == "image/png" and summary["file_size"] == 4 and summary["version"] == 1
        assert summary["download_url"] == "https://other.example/wiki/download/attachments/9001/chart.png"
        att["container"] = {"id": "77"}
        assert attachment_summary(att)["page_id"] == "77"

    @pytest.mark.parametrize("att", [{}, {"version": [], "extensions": "x", "_links": None, "fileSize": "big"}])
    def test_attachment_summary_of_odd_objects_has_nones(self, att: dict[str, Any]) -> None:
        assert set(attachment_summary(att, SITE).values()) == {None}

    def test_attachment_summary_keeps_absolute_links_and_numeric_strings(self) -> None:
        att = {"fileSize": " 42 ", "_links": {"download": "https://cdn.example/x.png"}}
        summary = attachment_summary(att)
        assert summary["file_size"] == 42 and summary["download_url"] == "https://cdn.example/x.png"

    def test_search_result_summary(self) -> None:
        result = hit(12) | {"excerpt": "Revenue &amp; @@@hl@@@costs@@@endhl@@@\n  up"}
        assert search_result_summary(result, f"{SITE}/wiki") == {
            "id": "12",
            "type": "page",
            "title": "Page 12",
            "space": "Demo",
            "url": f"{SITE}/wiki/spaces/DEMO/pages/12",
            "excerpt": "Revenue & costs up",
            "last_modified": "2026-01-02T03:04:05.000Z",
        }

    def test_search_result_summary_takes_a_bare_site_url(self) -> None:
        assert search_result_summary(hit(1), SITE + "/")["url"] == f"{SITE}/wiki/spaces/DEMO/pages/1"

    def test_search_result_summary_of_odd_results(self) -> None:
        space = {
            "space": {"key": "OPS"},
            "title": "@@@hl@@@Ops@@@endhl@@@",
            "entityType": "space",
            "excerpt": "x" * 2000,
            "url": "/spaces/OPS",
        }
        summary = search_result_summary(space, None)
        assert summary["id"] is None and summary["type"] == "space" and summary["title"] == "Ops"
        assert summary["url"] is None  # no base known
        assert len(summary["excerpt"]) == summaries.MAX_EXCERPT and summary["excerpt"].endswith("...")
        assert set(search_result_summary({}, SITE).values()) == {None}
        assert json.dumps(search_result_summary({"content": "x", "lastModified": 5}, SITE))  # JSON-able
