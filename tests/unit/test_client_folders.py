"""Unit tests of folders as parents over requests-mock (no sockets): direct children and descendants of pages and
folders, paths through folders, and ensure-folder (find under the parent first, create only when missing, refuse
duplicates), each with the number of requests it sends.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.exceptions import (
    ConfluenceConfigError,
    ConfluenceDuplicateTitle,
    ConfluenceNotFound,
    ConfluenceScopeError,
)
from helpers.mocked_client import V2, mocked_client

pytestmark = pytest.mark.airflow2


@pytest.fixture
def client() -> ConfluenceClient:
    return mocked_client("FOLDER")


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


def asked(mock: rm.Mocker) -> list[str]:
    return [
        f"{r.method} {urlsplit(r.url).path.removeprefix('/ex/confluence/cloud-1/wiki/api/v2')}"
        for r in mock.request_history
    ]


def item(item_id: int, title: str, kind: str = "page", status: str = "current") -> dict[str, Any]:
    return {"id": str(item_id), "status": status, "title": title, "type": kind, "spaceId": "7", "childPosition": 0}


NOT_FOUND = {"status_code": 404, "json": {"errors": [{"status": 404, "title": "Not found"}]}}


# -- listings ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["page", "folder"])
def test_direct_children_of_a_page_or_folder_follow_the_cursor(
    client: ConfluenceClient, requests_mock: rm.Mocker, kind: str
) -> None:
    nxt = f"/wiki/api/v2/{kind}s/10/direct-children?cursor=abc&limit=250"
    requests_mock.get(
        f"{V2}/{kind}s/10/direct-children",
        [
            {"json": {"results": [item(11, "a", "folder")], "_links": {"next": nxt}}},
            {"json": {"results": [item(12, "b")], "_links": {}}},
        ],
    )
    listed = list(client.list_direct_children("10", parent_type=kind, sort="title"))
    assert [(c["id"], c["type"]) for c in listed] == [("11", "folder"), ("12", "page")]
    first, second = requests_mock.request_history
    assert query(first) == {"sort": ["title"], "limit": ["250"]}
    assert query(second)["cursor"] == ["abc"]


@pytest.mark.parametrize(("parent", "kind", "sort"), [("x", "page", None), ("1", "blog", None), ("1", "page", "bad")])
def test_direct_children_refuse_bad_arguments_before_sending(
    client: ConfluenceClient, requests_mock: rm.Mocker, parent: str, kind: str, sort: str | None
) -> None:
    with pytest.raises(ConfluenceConfigError):
        client.list_direct_children(parent, parent_type=kind, sort=sort)
    assert requests_mock.request_history == []


def descendant(item_id: int, parent: int, depth: int, kind: str = "page") -> dict[str, Any]:
    return {
        "id": str(item_id),
        "status": "current",
        "title": f"T{item_id}",
        "type": kind,
        "parentId": str(parent),
        "depth": depth,
    }


def test_a_tree_of_five_levels_is_one_listing_not_one_per_page(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    """30 pages three levels deep: one descendants request (the old walk: one children listing per parent, 11)."""
    nodes = [descendant(100 + n, 1, 1) for n in range(5)]
    nodes += [descendant(200 + n, 100 + n % 5, 2) for n in range(5)]
    nodes += [descendant(300 + n, 200 + n % 5, 3) for n in range(20)]
    requests_mock.get(f"{V2}/folders/1/descendants", json={"results": nodes, "_links": {}})
    found = list(client.list_tree("1", parent_type="folder", depth=3))
    assert len(found) == 30 and [n["depth"] for n in found] == sorted(n["depth"] for n in found)
    assert asked(requests_mock) == ["GET /folders/1/descendants"]
    assert query(requests_mock.last_request) == {"depth": ["3"], "limit": ["250"]}


def test_deeper_than_five_levels_asks_again_below_each_page_or_folder_at_the_fifth(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    top = [descendant(n, n - 1 if n > 2 else 1, n - 1) for n in range(2, 7)]  # a chain 2..6 at depths 1..5
    top.append(descendant(70, 5, 5, kind="whiteboard"))  # not a page or folder: not asked about
    requests_mock.get(f"{V2}/pages/1/descendants", json={"results": top})
    below = [descendant(8, 6, 1, "folder"), descendant(9, 8, 2)]
    requests_mock.get(f"{V2}/pages/6/descendants", json={"results": below})
    found = [(n["id"], n["depth"], n["parentId"]) for n in client.list_tree("1", depth=7)]
    assert found[-2:] == [("8", 6, "6"), ("9", 7, "8")]  # depths counted from the top
    assert asked(requests_mock) == ["GET /pages/1/descendants", "GET /pages/6/descendants"]  # not the whiteboard
    assert [query(r)["depth"] for r in requests_mock.request_history] == [["5"], ["2"]]


@pytest.mark.parametrize(("depth", "cursor"), [(0, None), (21, None), (True, None), (6, "/wiki/api/v2/pages/1/x")])
def test_a_tree_listing_refuses_a_bad_depth_or_a_cursor_it_cannot_resume(
    client: ConfluenceClient, requests_mock: rm.Mocker, depth: Any, cursor: str | None
) -> None:
    with pytest.raises(ConfluenceConfigError):
        client.list_tree("1", depth=depth, cursor=cursor)
    assert requests_mock.request_history == []


def test_a_missing_hierarchy_scope_is_named(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        f"{V2}/folders/5/direct-children",
        status_code=401,
        json={"code": 401, "message": "Unauthorized; scope does not match"},
    )
    with pytest.raises(ConfluenceScopeError) as caught:
        list(client.list_direct_children("5", parent_type="folder"))
    assert "read:hierarchical-content:confluence" in str(caught.value)


# -- paths through folders -----------------------------------------------------------------------------------------


def test_a_path_may_run_through_folders(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    """Reports (a folder on the top level) / 2026 (a folder) / December (a page)."""
    requests_mock.get(f"{V2}/pages", json={"results": []})
    requests_mock.get(f"{V2}/spaces/7", json={"id": "7", "homepageId": "1"})
    requests_mock.get(f"{V2}/pages/1/direct-children", json={"results": [item(2, "Reports", "folder")]})
    requests_mock.get(f"{V2}/folders/2/direct-children", json={"results": [item(3, "2026", "folder")]})
    requests_mock.get(f"{V2}/folders/3/direct-children", json={"results": [item(4, "December")]})
    requests_mock.get(f"{V2}/pages/4", json={"id": "4", "title": "December"})
    page = client.find_page_by_path(space_id="7", path="Reports/2026/December")
    assert page is not None and page["id"] == "4"
    assert asked(requests_mock) == [
        "GET /pages",
        "GET /spaces/7",
        "GET /pages/1/direct-children",
        "GET /folders/2/direct-children",
        "GET /folders/3/direct-children",
        "GET /pages/4",
    ]


def test_the_last_title_of_a_path_is_a_page_not_a_folder(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages", json={"results": [{"id": "1", "title": "Reports"}]})
    requests_mock.get(f"{V2}/pages/1/direct-children", json={"results": [item(2, "2026", "folder")]})
    assert client.find_page_by_path(space_id="7", path="Reports/2026") is None
    assert asked(requests_mock) == ["GET /pages", "GET /pages/1/direct-children"]  # no page read


def test_two_folders_with_a_title_of_the_path_are_named(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages", json={"results": [{"id": "1", "title": "Reports"}]})
    twins = [item(2, "2026", "folder"), item(3, "2026", "folder")]
    requests_mock.get(f"{V2}/pages/1/direct-children", json={"results": twins})
    with pytest.raises(ConfluenceDuplicateTitle) as caught:
        client.find_page_by_path(space_id="7", path="Reports/2026/December")
    assert caught.value.ids == ["2", "3"] and "2, 3" in str(caught.value)


# -- ensure-folder ---------------------------------------------------------------------------------------------------


def test_an_existing_folder_is_found_with_one_request_and_nothing_is_created(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    children = [item(20, "Archive"), item(21, "Archive", "folder"), item(22, "Other", "folder")]
    requests_mock.get(f"{V2}/pages/10/direct-children", json={"results": children})
    folder, created = client.ensure_folder(space_id="7", title=" Archive ", parent_id="10", parent_type="page")
    assert created is False and folder["id"] == "21"  # the folder, not the page with that title
    assert (folder["parentId"], folder["parentType"]) == ("10", "page")
    assert asked(requests_mock) == ["GET /pages/10/direct-children"]


def test_a_found_folder_needs_no_space_lookup(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    """The space (a key to resolve, in the hook) is asked for only to create or to find the homepage."""
    resolved: list[str] = []

    def space() -> str:
        resolved.append("7")
        return "7"

    requests_mock.get(f"{V2}/pages/10/direct-children", json={"results": [item(21, "Archive", "folder")]})
    assert client.ensure_folder(space_id=space, title="Archive", parent_id="10", parent_type="page")[1] is False
    assert resolved == []
    requests_mock.post(f"{V2}/folders", json={"id": "30", "title": "Logs", "parentId": "10", "parentType": "page"})
    assert client.ensure_folder(space_id=space, title="Logs", parent_id="10", parent_type="page")[1] is True
    assert resolved == ["7"]


def test_a_missing_folder_is_created_under_the_parent(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/folders/10/direct-children", json={"results": [item(21, "Archive", "folder", "archived")]})
    requests_mock.post(f"{V2}/folders", json={"id": "30", "title": "Archive", "parentId": "10", "parentType": "folder"})
    folder, created = client.ensure_folder(space_id="7", title="Archive", parent_id="10", parent_type="folder")
    assert created is True and folder["id"] == "30"
    assert requests_mock.last_request.json() == {"spaceId": "7", "title": "Archive", "parentId": "10"}
    assert asked(requests_mock) == ["GET /folders/10/direct-children", "POST /folders"]


def test_a_parent_of_unknown_type_is_tried_as_a_page_then_as_a_folder(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    requests_mock.get(f"{V2}/pages/10/direct-children", **NOT_FOUND)
    requests_mock.get(f"{V2}/folders/10/direct-children", json={"results": [item(21, "Archive", "folder")]})
    folder, created = client.ensure_folder(space_id="7", title="Archive", parent_id="10")
    assert created is False and folder["parentType"] == "folder"
    assert asked(requests_mock) == ["GET /pages/10/direct-children", "GET /folders/10/direct-children"]


def test_a_parent_that_is_neither_fails_and_creates_nothing(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/pages/10/direct-children", **NOT_FOUND)
    requests_mock.get(f"{V2}/folders/10/direct-children", **NOT_FOUND)
    with pytest.raises(ConfluenceNotFound):
        client.ensure_folder(space_id="7", title="Archive", parent_id="10")
    assert [r.method for r in requests_mock.request_history] == ["GET", "GET"]


def test_without_a_parent_the_top_level_is_the_homepage(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/spaces/7", json={"id": "7", "homepageId": "1"})
    requests_mock.get(f"{V2}/pages/1/direct-children", json={"results": []})
    requests_mock.post(f"{V2}/folders", json={"id": "30", "title": "Reports", "parentId": "1", "parentType": "page"})
    folder, created = client.ensure_folder(space_id="7", title="Reports")
    assert created is True
    assert requests_mock.last_request.json() == {"spaceId": "7", "title": "Reports", "parentId": "1"}
    assert asked(requests_mock) == ["GET /spaces/7", "GET /pages/1/direct-children", "POST /folders"]


def test_a_space_without_a_homepage_needs_a_parent(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{V2}/spaces/7", json={"id": "7", "homepageId": None})
    with pytest.raises(ConfluenceConfigError, match="parent_id"):
        client.ensure_folder(space_id="7", title="Reports")
    assert [r.method for r in requests_mock.request_history] == ["GET"]


def test_two_folders_with_the_title_fail_naming_both_and_nothing_is_created(
    client: ConfluenceClient, requests_mock: rm.Mocker
) -> None:
    twins = [item(21, "Archive", "folder"), item(22, "Archive", "folder")]
    requests_mock.get(f"{V2}/pages/10/direct-children", json={"results": twins})
    with pytest.raises(ConfluenceDuplicateTitle) as caught:
        client.ensure_folder(space_id="7", title="Archive", parent_id="10", parent_type="page")
    assert caught.value.ids == ["21", "22"] and caught.value.parent_id == "10"
    assert "21" in str(caught.value) and "22" in str(caught.value)
    assert [r.method for r in requests_mock.request_history] == ["GET"]


@pytest.mark.parametrize(
    ("title", "parent", "kind"), [("", "10", None), ("A", "x", None), ("A", "10", "whiteboard"), (None, "10", None)]
)
def test_ensure_folder_refuses_bad_arguments_before_sending(
    client: ConfluenceClient, requests_mock: rm.Mocker, title: Any, parent: str, kind: str | None
) -> None:
    with pytest.raises(ConfluenceConfigError):
        client.ensure_folder(space_id="7", title=title, parent_id=parent, parent_type=kind)
    assert requests_mock.request_history == []


def test_retention_under_a_folder_lists_its_child_pages(client: ConfluenceClient, requests_mock: rm.Mocker) -> None:
    """The page listing answers 404 for a folder: its direct children are listed, and only the pages count."""
    requests_mock.get(f"{V2}/pages/100/children", **NOT_FOUND)
    listed = [item(1, "Report 1"), item(2, "Old reports", "folder"), item(3, "Report 3")]
    requests_mock.get(f"{V2}/folders/100/direct-children", json={"results": listed})
    dated = [
        {"id": "1", "title": "Report 1", "createdAt": "2026-12-01T06:00:00.000Z"},
        {"id": "3", "title": "Report 3", "createdAt": "2026-12-03T06:00:00.000Z"},
    ]
    requests_mock.get(f"{V2}/pages", json={"results": dated})
    plan = client.apply_retention("100", keep_latest=1, dry_run=True)
    assert [p["id"] for p in plan["kept"]] == ["3"] and [p["id"] for p in plan["removed"]] == ["1"]
    assert query(requests_mock.last_request)["id"] == ["1,3"]  # not the folder
    assert [r.method for r in requests_mock.request_history] == ["GET", "GET", "GET"]
