"""Folders as parents, against the emulator: its direct-children and descendants routes (shapes, cursor pages,
depth, 404s and scopes as Atlassian's v2 document says), then the operators in real DAG runs (``dag.test()``) on
Airflow 2.11 and 3.x: create a folder only when missing (a re-run sends one listing and creates nothing), refuse
duplicates, list a folder's children and descendants, find a page by a path through folders, create a page in a
folder."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceDuplicateTitle
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import (
    ConfluenceApplyRetentionOperator,
    ConfluenceCreateFolderOperator,
    ConfluenceCreatePageOperator,
    ConfluenceFindPageByPathOperator,
    ConfluenceListChildrenOperator,
    ConfluenceUpdatePageOperator,
)
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.dags import new_dag, run_dag
from helpers.gateway import gateway_call

pytestmark = pytest.mark.airflow2

FOLDER_SCOPES = f"{DEFAULT_SCOPES} write:folder:confluence read:hierarchical-content:confluence"
V2 = "/wiki/api/v2"


@pytest.fixture
def folder_conn(fake_atlassian: Any, airflow_db: Any) -> str:
    put_connection("confluence_default", fake_atlassian.connection("confluence_default", scopes=FOLDER_SCOPES))
    return "confluence_default"


def api(fake: Any, method: str, path: str, scopes: str = FOLDER_SCOPES, **kwargs: Any) -> requests.Response:
    return gateway_call(fake, method, path, scopes, **kwargs)


def folder(fake: Any, space_id: str, title: str, parent_id: str | None = None) -> dict[str, Any]:
    body = {"spaceId": space_id, "title": title, **({"parentId": parent_id} if parent_id else {})}
    made = api(fake, "POST", f"{V2}/folders", json=body)
    assert made.status_code == 200, made.text
    return dict(made.json())


def wiki_calls(fake: Any) -> list[str]:
    return [r["route"] for r in fake.requests if r["path"].startswith("/wiki/")]


# -- the emulator ------------------------------------------------------------------------------------------


def test_the_emulator_lists_direct_children_and_descendants_of_pages_and_folders(fake_atlassian):
    space = fake_atlassian.add_space("DEMO")
    reports = fake_atlassian.add_page("DEMO", "Reports")
    year = folder(fake_atlassian, space["id"], "2026", reports["id"])
    months = [fake_atlassian.add_page("DEMO", f"Month {n}", parent_id=year["id"]) for n in range(3)]
    inner = folder(fake_atlassian, space["id"], "Drafts", year["id"])

    children = api(fake_atlassian, "GET", f"{V2}/folders/{year['id']}/direct-children", params={"limit": 2})
    assert children.status_code == 200 and "next" in children.json()["_links"]
    assert set(children.json()["results"][0]) == {"id", "status", "title", "type", "spaceId", "childPosition"}
    everything = api(fake_atlassian, "GET", f"{V2}/folders/{year['id']}/direct-children", params={"sort": "-title"})
    assert [(c["title"], c["type"]) for c in everything.json()["results"]] == [
        ("Month 2", "page"),
        ("Month 1", "page"),
        ("Month 0", "page"),
        ("Drafts", "folder"),
    ]
    below = api(fake_atlassian, "GET", f"{V2}/pages/{reports['id']}/descendants", params={"depth": 2}).json()
    assert [(d["title"], d["depth"], d["parentId"]) for d in below["results"]][:2] == [
        ("2026", 1, reports["id"]),
        ("Month 0", 2, year["id"]),
    ]
    assert set(below["results"][0]) == {"id", "status", "title", "type", "parentId", "depth", "childPosition"}
    assert {d["id"] for d in below["results"]} == {year["id"], inner["id"], *(m["id"] for m in months)}
    one = api(fake_atlassian, "GET", f"{V2}/pages/{reports['id']}/descendants", params={"depth": 1}).json()
    assert [d["id"] for d in one["results"]] == [year["id"]]
    assert api(fake_atlassian, "GET", f"{V2}/pages/{reports['id']}/descendants", params={"depth": 6}).status_code == 400
    assert api(fake_atlassian, "GET", f"{V2}/pages/{year['id']}/direct-children").status_code == 404  # a folder's id
    assert api(fake_atlassian, "GET", f"{V2}/folders/{reports['id']}/descendants").status_code == 404  # a page's id
    refused = api(fake_atlassian, "GET", f"{V2}/folders/{year['id']}/direct-children", scopes=DEFAULT_SCOPES)
    assert refused.status_code == 401


# -- the operators in real DAG runs -------------------------------------------------------------------------


def test_create_folder_if_missing_creates_once_and_a_rerun_sends_one_listing(fake_atlassian, folder_conn):
    space = fake_atlassian.add_space("DEMO")
    reports = fake_atlassian.add_page("DEMO", "Reports")

    def dag_run() -> dict[str, Any]:
        with new_dag("ensure_folder") as dag:
            ConfluenceCreateFolderOperator(
                task_id="top", title="Archive", space_id=space["id"]
            ) >> ConfluenceCreateFolderOperator(
                task_id="under", title="2026", space_key="DEMO", parent_id=reports["id"], parent_type="page"
            )
        return run_dag(dag)["return_value"]

    first = dag_run()
    assert first["top"]["created"] is True and first["under"]["created"] is True
    assert (first["top"]["parent_id"], first["top"]["parent_type"]) == (space["homepageId"], "page")
    assert (first["under"]["parent_id"], first["under"]["parent_type"]) == (reports["id"], "page")
    fake_atlassian.reset_counters()  # and the recorded requests
    second = dag_run()
    assert {key: value["id"] for key, value in second.items()} == {key: value["id"] for key, value in first.items()}
    assert second["top"]["created"] is False and second["under"]["created"] is False
    assert wiki_calls(fake_atlassian) == [
        "GET /wiki/api/v2/spaces/{id}",  # the top level: the homepage
        "GET /wiki/api/v2/pages/{id}/direct-children",
        "GET /wiki/api/v2/pages/{id}/direct-children",  # no space lookup by key: nothing to create
    ]


def test_two_folders_with_the_title_fail_the_task_naming_both(fake_atlassian, folder_conn):
    space = fake_atlassian.add_space("DEMO")
    reports = fake_atlassian.add_page("DEMO", "Reports")
    twins = [folder(fake_atlassian, space["id"], "Archive", reports["id"])["id"] for _ in range(2)]
    fake_atlassian.reset_counters()  # and the recorded requests
    op = ConfluenceCreateFolderOperator(task_id="f", title="Archive", space_key="DEMO", parent_id=reports["id"])
    with pytest.raises(ConfluenceDuplicateTitle) as caught:
        op.execute({})
    assert caught.value.ids == twins and all(twin in str(caught.value) for twin in twins)
    assert wiki_calls(fake_atlassian) == ["GET /wiki/api/v2/pages/{id}/direct-children"]  # no space lookup, no POST
    plain = ConfluenceCreateFolderOperator(
        task_id="g", title="Archive", space_key="DEMO", parent_id=reports["id"], if_missing=False
    )
    assert plain.execute({})["created"] is True  # the old behaviour, asked for: a third folder


def test_folders_as_parents_through_list_find_and_create_page(fake_atlassian, folder_conn):
    """Reports (a folder) / 2026 (a folder) / December (a page created in it by the operator); another page moved
    into Reports by an update."""
    fake_atlassian.add_space("DEMO")
    with new_dag("folder_parents") as dag:
        reports = ConfluenceCreateFolderOperator(task_id="reports", title="Reports", space_key="DEMO")
        year = ConfluenceCreateFolderOperator(
            task_id="year",
            title="2026",
            space_key="DEMO",
            parent_id="{{ ti.xcom_pull(task_ids='reports')['id'] }}",
            parent_type="folder",
        )
        page = ConfluenceCreatePageOperator(
            task_id="page",
            space_key="DEMO",
            title="December",
            body="<p>numbers</p>",
            parent_id="{{ ti.xcom_pull(task_ids='year')['id'] }}",
        )
        find = ConfluenceFindPageByPathOperator(task_id="find", path="Reports/2026/December", space_key="DEMO")
        children = ConfluenceListChildrenOperator(
            task_id="children", folder_id="{{ ti.xcom_pull(task_ids='reports')['id'] }}"
        )
        tree = ConfluenceListChildrenOperator(
            task_id="tree", folder_id="{{ ti.xcom_pull(task_ids='reports')['id'] }}", depth=7
        )
        move = ConfluenceUpdatePageOperator(
            task_id="move",
            page_id="{{ ti.xcom_pull(task_ids='loose')['id'] }}",
            body="<p>moved</p>",
            parent_id="{{ ti.xcom_pull(task_ids='reports')['id'] }}",
        )
        loose = ConfluenceCreatePageOperator(task_id="loose", space_key="DEMO", title="Loose", body="<p>x</p>")
        reports >> year >> page >> find >> children >> tree
        [tree, loose] >> move
    results = run_dag(dag)["return_value"]
    year_id, page_id = results["year"]["id"], results["page"]["id"]
    assert results["year"]["parent_type"] == "folder"
    stored = next(p for p in fake_atlassian.pages if p["id"] == page_id)
    assert (stored["parentId"], stored["parentType"]) == (year_id, "folder")
    assert results["find"]["id"] == page_id
    assert [(n["title"], n["type"], n["depth"]) for n in results["children"]] == [("2026", "folder", 1)]
    assert [(n["title"], n["type"], n["depth"], n["parent_id"]) for n in results["tree"]] == [
        ("2026", "folder", 1, results["reports"]["id"]),
        ("December", "page", 2, year_id),
    ]
    assert results["tree"][1]["url"] and results["tree"][0]["url"] is None  # only pages have a page URL
    moved = next(p for p in fake_atlassian.pages if p["id"] == results["loose"]["id"])
    assert (moved["parentId"], moved["parentType"]) == (results["reports"]["id"], "folder")  # an update moves it in


def test_the_hook_lists_a_folders_tree_in_one_request_per_five_levels(fake_atlassian, folder_conn):
    space = fake_atlassian.add_space("DEMO")
    top = folder(fake_atlassian, space["id"], "Top")
    parent = top["id"]
    for level in range(7):
        parent = fake_atlassian.add_page("DEMO", f"Level {level + 1}", parent_id=parent)["id"]
    fake_atlassian.reset_counters()  # and the recorded requests
    nodes = ConfluenceOAuthHook(folder_conn).list_children(top["id"], parent_type="folder", depth=7)
    assert [n["depth"] for n in nodes] == list(range(1, 8))
    assert wiki_calls(fake_atlassian) == [
        "GET /wiki/api/v2/folders/{id}/descendants",
        "GET /wiki/api/v2/pages/{id}/descendants",  # below the page at depth 5
    ]


def test_retention_keeps_the_newest_pages_of_a_folder(fake_atlassian, airflow_db):
    put_connection(
        "confluence_default",
        fake_atlassian.connection("confluence_default", scopes=f"{FOLDER_SCOPES} delete:page:confluence"),
    )
    space = fake_atlassian.add_space("DEMO")
    daily = folder(fake_atlassian, space["id"], "Daily")
    reports = []
    for day in range(1, 4):
        reports.append(fake_atlassian.add_page("DEMO", f"Report {day}", parent_id=daily["id"]))
        fake_atlassian.advance(86400.0)
    kept_folder = folder(fake_atlassian, space["id"], "Keep me", daily["id"])
    with new_dag("folder_retention") as dag:
        ConfluenceApplyRetentionOperator(task_id="apply", parent_id=daily["id"], keep_latest=1)
    applied = run_dag(dag)["return_value"]["apply"]
    assert [p["title"] for p in applied["kept"]] == ["Report 3"]
    assert [p["title"] for p in applied["removed"]] == ["Report 2", "Report 1"]
    statuses = {p["id"]: p["status"] for p in fake_atlassian.pages}
    assert [statuses[r["id"]] for r in reports] == ["trashed", "trashed", "current"]
    assert kept_folder["id"] not in statuses  # a folder is never deleted as a page


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConfluenceListChildrenOperator(task_id="c"),
        lambda: ConfluenceListChildrenOperator(task_id="c", page_id="1", folder_id="2"),
        lambda: ConfluenceCreateFolderOperator(task_id="d", title="A", space_key="DEMO", parent_type="blog"),
        lambda: ConfluenceCreateFolderOperator(task_id="d", title="A", space_key="DEMO", if_missing="yes"),
    ],
)
def test_bad_folder_arguments_fail_at_parse_time(make):
    with pytest.raises(ConfluenceConfigError):
        make()
