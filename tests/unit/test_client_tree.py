"""Unit tests of the page-tree, folder and clean-up client methods over requests-mock (no sockets).

Children and descendants (cursor pages through the Link header, depth), find-by-path, folders, delete/purge
(purge only when asked, a trashed page first), label removal over v1, the retention rule, and dry runs that
send no write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm

from airflow_provider_confluence.client.cleanup import plan_retention
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.client.tree import split_title_path
from airflow_provider_confluence.content.summaries import tree_node_summary
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceScopeError
from helpers.mocked_client import GW, SITE, V2, mocked_client

pytestmark = pytest.mark.airflow2

WRITES = ("POST", "PUT", "DELETE", "PATCH")


@pytest.fixture
def client() -> ConfluenceClient:
    return mocked_client("TREE")


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def child(page_id: int, title: str | None = None) -> dict[str, Any]:
    return {"id": str(page_id), "status": "current", "title": title or f"P{page_id}", "spaceId": "7"}


def writes(mock: rm.Mocker) -> list[str]:
    return [f"{r.method} {urlsplit(r.url).path}" for r in mock.request_history if r.method in WRITES]


def test_list_children_follows_the_link_header(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    nxt = "/wiki/api/v2/pages/10/children?cursor=abc&limit=250"
    requests_mock.get(
        f"{V2}/pages/10/children",
        [
            {"json": {"results": [child(11)], "_links": {}}, "headers": {"Link": f'<{nxt}>; rel="next"'}},
            {"json": {"results": [child(12)], "_links": {}}},
        ],
    )
    assert [c["id"] for c in client.list_children("10", sort="-created-date")] == ["11", "12"]
    first, second = requests_mock.request_history
    assert query(first) == {"sort": ["-created-date"], "limit": ["250"]}
    assert query(second)["cursor"] == ["abc"]


@pytest.mark.parametrize(("page_id", "sort"), [("abc", None), ("10", "title"), ("", None)])
def test_list_children_refuses_bad_arguments_before_sending(
    client: ConfluenceClient, requests_mock: rm.Mocker, page_id: str, sort: str | None
) -> None:
    with pytest.raises(ConfluenceConfigError):
        client.list_children(page_id, sort=sort)
    assert requests_mock.request_history == []


def test_descendants_walk_level_by_level_down_to_depth(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    tree = {"1": [2, 3], "2": [4], "3": [], "4": [5], "5": []}
    for parent, kids in tree.items():
        requests_mock.get(f"{V2}/pages/{parent}/children", json={"results": [child(k) for k in kids]})
    found = [(n["id"], n["parentId"], n["depth"]) for n in client.list_descendants("1", depth=2)]
    assert found == [("2", "1", 1), ("3", "1", 1), ("4", "2", 2)]
    asked = [urlsplit(r.url).path.split("/")[-2] for r in requests_mock.request_history]
    assert asked == ["1", "2", "3"]  # nothing below depth 2 is listed


@pytest.mark.parametrize("depth", [0, 21, True, "2"])
def test_descendants_refuse_a_bad_depth(client: ConfluenceClient, depth: Any) -> None:
    with pytest.raises(ConfluenceConfigError, match="depth"):
        client.list_descendants("1", depth=depth)


def test_find_page_by_path_walks_the_children(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages", json={"results": [{"id": "1", "title": "Reports"}]})
    requests_mock.get(f"{V2}/pages/1/direct-children", json={"results": [item(2, "2025"), item(3, "2026")]})
    requests_mock.get(f"{V2}/pages/3/direct-children", json={"results": [item(4, "December")]})
    requests_mock.get(f"{V2}/pages/4", json={"id": "4", "title": "December", "_links": {"webui": "/x"}})
    page = client.find_page_by_path(space_id="7", path="Reports/2026/December")
    assert page is not None and page["id"] == "4"
    assert page["_links"]["base"] == f"{SITE}/wiki"
    assert query(requests_mock.request_history[0]) == {"space-id": ["7"], "title": ["Reports"], "status": ["current"]}
    assert len(requests_mock.request_history) == 4  # as many as before folders: find, two listings, the page
    requests_mock.get(f"{V2}/pages/3/direct-children", json={"results": [item(5, "November")]})
    assert client.find_page_by_path(space_id="7", path=["Reports", "2026", "December"]) is None


def item(item_id: int, title: str, kind: str = "page") -> dict[str, Any]:
    """A ``direct-children`` entry (``ChildrenResponse``)."""
    return {"id": str(item_id), "status": "current", "title": title, "type": kind, "spaceId": "7", "childPosition": 0}


@pytest.mark.parametrize("path", ["", "Reports//December", "/", []])
def test_a_path_with_an_empty_title_is_refused(path: Any) -> None:
    with pytest.raises(ConfluenceConfigError, match="empty title"):
        split_title_path(path)


def test_create_folder_posts_the_folder_create_request(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.post(f"{V2}/folders", json={"id": "99", "title": "Archive", "parentId": "1"})
    folder = client.create_folder(space_id="7", title=" Archive ", parent_id="1")
    assert requests_mock.last_request.json() == {"spaceId": "7", "title": "Archive", "parentId": "1"}
    assert folder["_links"]["base"] == f"{SITE}/wiki"
    requests_mock.get(f"{V2}/folders/99", json={"id": "99", "title": "Archive"})
    assert client.get_folder("99")["title"] == "Archive"


def test_delete_trashes_and_never_purges_unless_asked(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages/5", json={"id": "5", "title": "Old", "status": "current"})
    requests_mock.delete(f"{V2}/pages/5", status_code=204)
    assert client.delete_page("5") == {"id": "5", "title": "Old", "action": "trashed"}
    deletes = [r for r in requests_mock.request_history if r.method == "DELETE"]
    assert len(deletes) == 1 and query(deletes[0]) == {}
    assert query(requests_mock.request_history[0]) == {"status": ["current,archived"]}


def test_a_purge_trashes_first_then_purges(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages/5", json={"id": "5", "title": "Old", "status": "current"})
    requests_mock.delete(f"{V2}/pages/5", status_code=204)
    assert client.delete_page("5", purge=True)["action"] == "purged"
    deletes = [query(r) for r in requests_mock.request_history if r.method == "DELETE"]
    assert deletes == [{}, {"purge": ["true"]}]


def test_a_purge_of_a_trashed_page_sends_one_delete(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages/5", json={"id": "5", "title": "Old", "status": "trashed"})
    requests_mock.delete(f"{V2}/pages/5", status_code=204)
    client.delete_page("5", purge=True)
    assert [query(r) for r in requests_mock.request_history if r.method == "DELETE"] == [{"purge": ["true"]}]
    assert query(requests_mock.request_history[0]) == {"status": ["current,archived,trashed"]}


@pytest.mark.parametrize("purge", [False, True])
def test_a_dry_run_delete_sends_no_write(client: ConfluenceClient, requests_mock: rm.Mocker, purge: bool) -> None:
    requests_mock.get(f"{V2}/pages/5", json={"id": "5", "title": "Old", "status": "current"})
    result = client.delete_page("5", purge=purge, dry_run=True)
    assert result["action"] == ("would_purge" if purge else "would_trash")
    assert writes(requests_mock) == []


def test_a_missing_delete_scope_is_named(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages/5", json={"id": "5", "title": "Old", "status": "current"})
    requests_mock.delete(
        f"{V2}/pages/5", status_code=401, json={"code": 401, "message": "Unauthorized; scope does not match"}
    )
    with pytest.raises(ConfluenceScopeError) as caught:
        client.delete_page("5")
    assert "delete:page:confluence" in str(caught.value)


def test_remove_label_deletes_over_v1_only_when_present(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages/5/labels", json={"results": [{"name": "daily"}, {"name": "old"}]})
    requests_mock.delete(f"{GW}/wiki/rest/api/content/5/label/old", status_code=204)
    assert client.remove_page_label("5", "OLD") == {"id": "5", "label": "old", "action": "removed", "labels": ["daily"]}
    assert writes(requests_mock) == ["DELETE /ex/confluence/cloud-1/wiki/rest/api/content/5/label/old"]
    assert client.remove_page_label("5", "gone")["action"] == "absent"
    assert client.remove_page_label("5", "old", dry_run=True)["action"] == "would_remove"
    assert len(writes(requests_mock)) == 1


def test_remove_label_refuses_a_bad_name_before_sending(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    with pytest.raises(ConfluenceConfigError):
        client.remove_page_label("5", "a b")
    assert requests_mock.request_history == []


def created(page_id: int, day: int) -> dict[str, Any]:
    return {"id": str(page_id), "title": f"Report {day}", "createdAt": f"2026-12-{day:02d}T06:00:00.000Z"}


NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
REPORTS = [created(1, 1), created(2, 10), created(3, 15), created(4, 18), created(5, 19)]


@pytest.mark.parametrize(
    ("keep_latest", "keep_days", "removed"),
    [
        (2, None, ["3", "2", "1"]),
        (None, 7, ["2", "1"]),
        (1, 3, ["3", "2", "1"]),
        (4, 3, ["1"]),  # either rule keeps a page
        (0, None, ["5", "4", "3", "2", "1"]),
        (None, None, []),
    ],
)
def test_the_retention_rule(keep_latest: int | None, keep_days: float | None, removed: list[str]) -> None:
    kept, gone = plan_retention(REPORTS, keep_latest=keep_latest, keep_days=keep_days, now=NOW)
    assert [p["id"] for p in gone] == removed
    assert len(kept) + len(gone) == len(REPORTS)


def test_a_page_without_a_creation_date_is_kept() -> None:
    kept, gone = plan_retention([{"id": "9"}, created(1, 1)], keep_latest=0, now=NOW)
    assert [p["id"] for p in kept] == ["9"] and [p["id"] for p in gone] == ["1"]


def test_apply_retention_reads_dates_in_one_call_and_deletes_the_rest(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{V2}/pages/100/children", json={"results": [child(p) for p in range(1, 6)]})
    requests_mock.get(f"{V2}/pages", json={"results": REPORTS})
    for page in REPORTS:
        requests_mock.get(f"{V2}/pages/{page['id']}", json={**page, "status": "current"})
        requests_mock.delete(f"{V2}/pages/{page['id']}", status_code=204)
    plan = client.apply_retention("100", keep_latest=2, dry_run=True, now=NOW)
    assert [p["id"] for p in plan["removed"]] == ["3", "2", "1"] and plan["dry_run"] is True
    assert writes(requests_mock) == []
    listing = next(r for r in requests_mock.request_history if urlsplit(r.url).path.endswith("/v2/pages"))
    assert query(listing)["id"] == ["1,2,3,4,5"]
    done = client.apply_retention("100", keep_latest=2, now=NOW)
    assert done["removed"] == plan["removed"]
    assert sorted(writes(requests_mock)) == sorted(
        f"DELETE /ex/confluence/cloud-1/wiki/api/v2/pages/{i}" for i in "123"
    )


def test_apply_retention_needs_a_rule(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    with pytest.raises(ConfluenceConfigError, match="keep_latest"):
        client.apply_retention("100")
    assert requests_mock.request_history == []


def test_tree_node_summary_is_total() -> None:
    node = {"id": "4", "title": "December", "status": "current", "parentId": "3", "depth": 2, "childPosition": 0}
    assert tree_node_summary(node, SITE)["url"] == f"{SITE}/wiki/pages/viewpage.action?pageId=4"
    assert tree_node_summary({"id": ["odd"], "depth": "x"}) == {
        "id": None,
        "title": None,
        "type": "page",
        "status": None,
        "parent_id": None,
        "depth": None,
        "position": None,
        "url": None,
    }


def test_a_resent_delete_that_had_landed_is_not_an_error(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    """The first DELETE answered 502 after landing; the re-sent one answers 404: the page is in the trash."""
    requests_mock.get(
        f"{V2}/pages/5",
        [
            {"json": {"id": "5", "title": "Old", "status": "current"}},
            {"json": {"id": "5", "title": "Old", "status": "trashed"}},
        ],
    )
    requests_mock.delete(f"{V2}/pages/5", [{"status_code": 502}, {"status_code": 404, "json": {"errors": []}}])
    assert client.delete_page("5")["action"] == "trashed"


def test_a_404_on_delete_stands_when_the_page_is_still_there(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    from airflow_provider_confluence.exceptions import ConfluenceNotFound

    requests_mock.get(f"{V2}/pages/5", json={"id": "5", "title": "Old", "status": "current"})
    requests_mock.delete(f"{V2}/pages/5", status_code=404, json={"errors": []})
    with pytest.raises(ConfluenceNotFound):
        client.delete_page("5")


def test_a_resent_purge_that_had_landed_is_not_an_error(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        f"{V2}/pages/5",
        [{"json": {"id": "5", "title": "Old", "status": "trashed"}}, {"status_code": 404, "json": {"errors": []}}],
    )
    requests_mock.delete(f"{V2}/pages/5", [{"status_code": 504}, {"status_code": 404, "json": {"errors": []}}])
    assert client.delete_page("5", purge=True)["action"] == "purged"
