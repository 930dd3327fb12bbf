"""The page tree, folders and clean-up against the emulator: its routes (children, folders, delete/purge, v1 label
removal; scopes and status codes as Atlassian's v2 document says), the hook, and the operators in real DAG runs
(``dag.test()``) on Airflow 2.11 and 3.x, including dry runs that send no write and retention picking the right
pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluencePageMissing, ConfluenceScopeError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import (
    ConfluenceApplyRetentionOperator,
    ConfluenceCreateFolderOperator,
    ConfluenceDeletePageOperator,
    ConfluenceFindPageByPathOperator,
    ConfluenceListChildrenOperator,
    ConfluenceRemoveLabelOperator,
)
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.dags import new_dag, run_dag
from helpers.gateway import gateway_call

pytestmark = pytest.mark.airflow2

TREE_SCOPES = (
    f"{DEFAULT_SCOPES} delete:page:confluence read:folder:confluence write:folder:confluence "
    "read:hierarchical-content:confluence"
)
DAY = 86400.0
WRITES = ("POST", "PUT", "DELETE", "PATCH")


@pytest.fixture
def tree_conn(fake_atlassian: Any, airflow_db: Any) -> str:
    """``confluence_default`` with a grant that includes the delete and folder scopes."""
    put_connection("confluence_default", fake_atlassian.connection("confluence_default", scopes=TREE_SCOPES))
    return "confluence_default"


def api(fake: Any, method: str, path: str, scopes: str = TREE_SCOPES, **kwargs: Any) -> requests.Response:
    return gateway_call(fake, method, path, scopes, **kwargs)


def status_of(fake: Any, page_id: str) -> str | None:
    return next((p["status"] for p in fake.pages if p["id"] == page_id), None)


def writes(fake: Any) -> list[str]:
    """The Confluence writes the emulator received (token refreshes are not writes to Confluence)."""
    return [r["route"] for r in fake.requests if r["method"] in WRITES and r["path"].startswith("/wiki/")]


def report_tree(fake: Any, days: int = 5) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A space DEMO with ``Reports`` holding one page per day, each created a day after the one before."""
    fake.add_space("DEMO")
    parent = fake.add_page("DEMO", "Reports")
    children = []
    for day in range(1, days + 1):
        children.append(fake.add_page("DEMO", f"Report {day}", parent_id=parent["id"], labels=["daily"]))
        fake.advance(DAY)
    return parent, children


# -- the emulator ------------------------------------------------------------------------------------------


def test_the_emulator_lists_children_with_cursor_pages_and_sorts(fake_atlassian):
    parent, children = report_tree(fake_atlassian)
    path = f"/wiki/api/v2/pages/{parent['id']}/children"
    first = api(fake_atlassian, "GET", path, params={"limit": 2})
    assert first.status_code == 200
    assert [c["title"] for c in first.json()["results"]] == ["Report 1", "Report 2"]
    assert set(first.json()["results"][0]) == {"id", "status", "title", "spaceId", "childPosition"}
    newest = api(fake_atlassian, "GET", path, params={"sort": "-created-date"}).json()["results"]
    assert [c["title"] for c in newest] == [f"Report {d}" for d in range(5, 0, -1)]
    assert api(fake_atlassian, "GET", path, params={"sort": "title"}).status_code == 400
    api(fake_atlassian, "DELETE", f"/wiki/api/v2/pages/{children[0]['id']}")
    assert len(api(fake_atlassian, "GET", path).json()["results"]) == 4  # a trashed child is not listed
    assert api(fake_atlassian, "GET", f"/wiki/api/v2/pages/{children[0]['id']}/children").status_code == 404


def test_the_emulator_deletes_to_the_trash_then_purges(fake_atlassian):
    _, children = report_tree(fake_atlassian, days=1)
    path = f"/wiki/api/v2/pages/{children[0]['id']}"
    assert api(fake_atlassian, "DELETE", path, params={"purge": "true"}).status_code == 404  # not trashed yet
    assert api(fake_atlassian, "DELETE", path).status_code == 204
    assert status_of(fake_atlassian, children[0]["id"]) == "trashed"
    assert api(fake_atlassian, "DELETE", path, params={"purge": "true"}).status_code == 204
    assert status_of(fake_atlassian, children[0]["id"]) is None
    refused = api(fake_atlassian, "DELETE", path, scopes=DEFAULT_SCOPES)
    assert refused.status_code == 401


def test_the_emulator_creates_and_reads_folders(fake_atlassian):
    space = fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Reports")
    made = api(fake_atlassian, "POST", "/wiki/api/v2/folders", json={"spaceId": space["id"], "title": "2026"})
    assert made.status_code == 200 and made.json()["type"] == "folder"
    inner = api(
        fake_atlassian,
        "POST",
        "/wiki/api/v2/folders",
        json={"spaceId": space["id"], "title": "Dec", "parentId": made.json()["id"]},
    ).json()
    assert (inner["parentId"], inner["parentType"]) == (made.json()["id"], "folder")
    under_page = {"spaceId": space["id"], "title": "P", "parentId": parent["id"]}
    assert api(fake_atlassian, "POST", "/wiki/api/v2/folders", json=under_page).json()["parentType"] == "page"
    assert api(fake_atlassian, "GET", f"/wiki/api/v2/folders/{inner['id']}").json()["title"] == "Dec"
    assert api(fake_atlassian, "GET", "/wiki/api/v2/folders/1").status_code == 404
    assert api(fake_atlassian, "POST", "/wiki/api/v2/folders", json={"spaceId": space["id"]}).status_code == 400
    no_scope = api(fake_atlassian, "POST", "/wiki/api/v2/folders", scopes=DEFAULT_SCOPES, json=under_page)
    assert no_scope.status_code == 401


def test_the_emulator_removes_labels_over_v1(fake_atlassian):
    _, children = report_tree(fake_atlassian, days=1)
    path = f"/wiki/rest/api/content/{children[0]['id']}/label/daily"
    assert api(fake_atlassian, "DELETE", path).status_code == 204
    assert api(fake_atlassian, "DELETE", path).status_code == 404  # no longer there
    assert api(fake_atlassian, "DELETE", "/wiki/rest/api/content/1/label/daily").status_code == 404


# -- the hook ----------------------------------------------------------------------------------------------


def test_the_hook_walks_the_tree_and_finds_a_page_by_path(fake_atlassian, tree_conn):
    fake_atlassian.add_space("DEMO")
    reports = fake_atlassian.add_page("DEMO", "Reports")
    year = fake_atlassian.add_page("DEMO", "2026", parent_id=reports["id"])
    december = fake_atlassian.add_page("DEMO", "December", parent_id=year["id"])
    fake_atlassian.add_page("DEMO", "November", parent_id=year["id"])
    hook = ConfluenceOAuthHook(tree_conn)
    tree = hook.list_children(reports["id"], depth=3)
    assert [(n["title"], n["depth"], n["parent_id"]) for n in tree] == [
        ("2026", 1, reports["id"]),
        ("December", 2, year["id"]),
        ("November", 2, year["id"]),
    ]
    found = hook.find_page_by_path("Reports/2026/December", space_key="DEMO")
    assert found is not None and found["id"] == december["id"]
    assert hook.find_page_by_path("Reports/2025/December", space_key="DEMO") is None


def test_retention_by_age_keeps_the_young_pages(fake_atlassian, tree_conn):
    parent, children = report_tree(fake_atlassian)  # created 5, 4, 3, 2 and 1 days before the clock's now
    now = datetime.fromtimestamp(fake_atlassian.now(), UTC)
    result = ConfluenceOAuthHook(tree_conn).apply_retention(parent["id"], keep_days=2.5, now=now)
    assert [p["title"] for p in result["kept"]] == ["Report 5", "Report 4"]
    assert [p["title"] for p in result["removed"]] == ["Report 3", "Report 2", "Report 1"]
    assert [status_of(fake_atlassian, c["id"]) for c in children] == ["trashed"] * 3 + ["current"] * 2


def test_a_delete_without_the_scope_names_it(fake_atlassian, airflow_db):
    put_connection("confluence_default", fake_atlassian.connection("confluence_default"))  # no delete scope
    _, children = report_tree(fake_atlassian, days=1)
    with pytest.raises(ConfluenceScopeError) as caught:
        ConfluenceOAuthHook("confluence_default").delete_page(children[0]["id"])
    assert "delete:page:confluence" in str(caught.value)
    assert status_of(fake_atlassian, children[0]["id"]) == "current"


# -- the operators in real DAG runs -------------------------------------------------------------------------


def test_retention_dry_run_then_for_real_in_a_dag_run(fake_atlassian, tree_conn):
    """The dry run lists what would go and sends no write; the real run trashes exactly those pages."""
    parent, children = report_tree(fake_atlassian)
    fake_atlassian.reset_counters()
    with new_dag("retention_dry", params={"parent": parent["id"]}) as dag:
        ConfluenceApplyRetentionOperator(
            task_id="plan", parent_id="{{ params.parent }}", keep_latest=2, dry_run=True
        ) >> ConfluenceListChildrenOperator(task_id="children", page_id="{{ params.parent }}")
    results = run_dag(dag)["return_value"]
    assert writes(fake_atlassian) == []
    plan = results["plan"]
    assert plan["dry_run"] is True
    assert [p["title"] for p in plan["removed"]] == ["Report 3", "Report 2", "Report 1"]
    assert [p["title"] for p in plan["kept"]] == ["Report 5", "Report 4"]
    assert len(results["children"]) == 5

    with new_dag("retention", params={"parent": parent["id"]}) as dag:
        ConfluenceApplyRetentionOperator(task_id="apply", parent_id="{{ params.parent }}", keep_latest=2)
    applied = run_dag(dag)["return_value"]["apply"]
    assert applied["removed"] == plan["removed"] and applied["dry_run"] is False
    assert [status_of(fake_atlassian, c["id"]) for c in children] == ["trashed"] * 3 + ["current"] * 2
    assert writes(fake_atlassian) == ["DELETE /wiki/api/v2/pages/{id}"] * 3


def test_path_folder_delete_and_label_operators_in_a_dag_run(fake_atlassian, tree_conn):
    parent, children = report_tree(fake_atlassian, days=2)
    with new_dag("tree_ops", params={"path": "Reports/Report 2"}) as dag:
        find = ConfluenceFindPageByPathOperator(task_id="find", path="{{ params.path }}", space_key="DEMO")
        folder = ConfluenceCreateFolderOperator(
            task_id="folder", title="Archive", space_key="DEMO", parent_id=parent["id"]
        )
        unlabel = ConfluenceRemoveLabelOperator(
            task_id="unlabel", page_id="{{ ti.xcom_pull(task_ids='find')['id'] }}", label_name="daily"
        )
        preview = ConfluenceDeletePageOperator(task_id="preview", space_key="DEMO", title="Report 1", dry_run=True)
        delete = ConfluenceDeletePageOperator(task_id="delete", page_id=children[0]["id"], purge=True)
        find >> folder >> unlabel >> preview >> delete
    results = run_dag(dag)["return_value"]
    assert results["find"]["id"] == children[1]["id"]
    assert results["folder"]["parent_id"] == parent["id"] and results["folder"]["parent_type"] == "page"
    assert results["unlabel"] == {"id": children[1]["id"], "label": "daily", "action": "removed", "labels": []}
    assert results["preview"] == {"id": children[0]["id"], "title": "Report 1", "action": "would_trash"}
    assert results["delete"]["action"] == "purged"
    assert status_of(fake_atlassian, children[0]["id"]) is None  # purged: gone, not in the trash
    deletes = [r["query"] for r in fake_atlassian.requests if r["method"] == "DELETE" and "/pages/" in r["path"]]
    assert deletes == [{}, {"purge": ["true"]}]  # trashed first, purged only because purge=True


def test_a_missing_path_fails_the_task_unless_told_otherwise(fake_atlassian, tree_conn):
    report_tree(fake_atlassian, days=1)
    with pytest.raises(ConfluencePageMissing):
        ConfluenceFindPageByPathOperator(task_id="f", path="Reports/Nope", space_key="DEMO").execute({})
    lenient = ConfluenceFindPageByPathOperator(
        task_id="g", path="Reports/Nope", space_key="DEMO", fail_if_missing=False
    )
    assert lenient.execute({}) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConfluenceApplyRetentionOperator(task_id="r", parent_id="1"),
        lambda: ConfluenceApplyRetentionOperator(task_id="r", parent_id="1", keep_latest=-1),
        lambda: ConfluenceListChildrenOperator(task_id="c", page_id="1", depth=0),
        lambda: ConfluenceFindPageByPathOperator(task_id="f", path="A/B"),
        lambda: ConfluenceCreateFolderOperator(task_id="d", title=" ", space_key="DEMO"),
        lambda: ConfluenceRemoveLabelOperator(task_id="l", page_id="1", label_name=""),
        lambda: ConfluenceDeletePageOperator(task_id="x"),
    ],
)
def test_bad_arguments_fail_at_parse_time(make):
    with pytest.raises(ConfluenceConfigError):
        make()
