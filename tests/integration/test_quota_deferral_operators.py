"""The attachment, comment, read, tree and clean-up operators wait out Atlassian's hourly points quota like the
page operators (``RateLimitDeferralMixin``): with ``deferrable=True`` they defer until ``retry_at`` and resume without
repeating an accepted write; without it the try fails with ``ConfluenceRateLimited`` and its ``retry_at``.

Against the emulator: its points quota (``fake.enable_quota``), or a 429 with a 30-minute ``Retry-After`` on one
route (``fake.fail_next``), as Atlassian answers a call once the quota is spent. The triggers sleep on the emulator's
clock (the ``emulator_time`` fixture). Operators are driven as Airflow drives them (``helpers.quota.run_deferrable``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceRateLimited
from airflow_provider_confluence.operators.confluence import (
    ConfluenceAddCommentOperator,
    ConfluenceApplyRetentionOperator,
    ConfluenceCreateFolderOperator,
    ConfluenceDeletePageOperator,
    ConfluenceDownloadAttachmentOperator,
    ConfluenceExportPageOperator,
    ConfluenceFindPageByPathOperator,
    ConfluenceGetPageOperator,
    ConfluenceListChildrenOperator,
    ConfluenceRemoveLabelOperator,
    ConfluenceUploadAttachmentOperator,
)
from helpers.quota import calls, run_deferrable, spend

pytestmark = pytest.mark.airflow2

UPLOAD = "PUT /wiki/rest/api/content/{id}/child/attachment"
COMMENT = "POST /wiki/api/v2/footer-comments"
CHILDREN = "GET /wiki/api/v2/pages/{id}/children"
DIRECT_CHILDREN = "GET /wiki/api/v2/pages/{id}/direct-children"
DESCENDANTS = "GET /wiki/api/v2/pages/{id}/descendants"
DELETE = "DELETE /wiki/api/v2/pages/{id}"
#: what Atlassian answers once the app's hourly points are spent (https://developer.atlassian.com/cloud/confluence/rate-limiting/)
QUOTA_SPENT = {
    "Retry-After": "1800",
    "Beta-RateLimit": '"tenant-app-quota";r=0;t=1800',
    "X-Beta-RateLimit-Reason": "confluence-quota-tenant-based",
}


def refuse_next(fake: Any, route: str, *, landed: bool = False) -> None:
    """The next call of ``route`` gets the 429 of a spent quota (``landed``: after it was processed)."""
    fake.fail_next(429, route=route, headers=QUOTA_SPENT, landed=landed)


def task_context(task_id: str) -> dict[str, Any]:
    """A task run's context, as far as the operators read it (the run's key, the link's XCom)."""
    ti = SimpleNamespace(dag_id="quota", task_id=task_id, run_id="manual__1", map_index=-1, xcom_push=lambda **_: None)
    return {"ti": ti}


def test_an_upload_the_quota_refused_is_sent_again_and_stored_once(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    fake_atlassian.enable_quota(10, align_to_hour=False)
    spend(wide_conn, 8)  # 2 points left: the page lookup (2) spends them, the upload is refused
    op = ConfluenceUploadAttachmentOperator(
        task_id="u", page_id=page["id"], data="a,b\n1,2\n", filename="r.csv", deferrable=True
    )
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1 and fake_atlassian.counters["quota_rejections"] == 1
    assert calls(fake_atlassian, UPLOAD) == 2  # refused once, accepted once
    attachments = fake_atlassian.attachments(page["id"])
    assert [(a["title"], a["version"]["number"]) for a in attachments] == [("r.csv", 1)]  # one version, not two
    assert (result["title"], result["version"]) == ("r.csv", 1)
    assert fake_atlassian.attachment_data(page["id"], "r.csv") == b"a,b\n1,2\n"


def test_a_comment_the_quota_refused_is_added_once_after_the_wait(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    refuse_next(fake_atlassian, COMMENT)
    op = ConfluenceAddCommentOperator(task_id="c", page_id=page["id"], body="<p>done</p>", deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time, task_context("c"))
    assert len(deferrals) == 1 and 1790 <= sum(emulator_time.slept) <= 1801
    assert result["action"] == "created" and len(fake_atlassian.footer_comments(page["id"])) == 1


def test_a_comment_accepted_before_the_refusal_is_not_added_again(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    refuse_next(fake_atlassian, COMMENT, landed=True)  # the worst case: the comment exists, the answer is a 429
    op = ConfluenceAddCommentOperator(task_id="c", page_id=page["id"], body="<p>done</p>", deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time, task_context("c"))
    assert len(deferrals) == 1
    assert result["action"] == "skipped"  # this run's anchor found it
    assert len(fake_atlassian.footer_comments(page["id"])) == 1


def test_the_children_listing_continues_from_its_cursor(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("TREE")
    top = fake_atlassian.add_page("TREE", "Top")
    for index in range(300):
        fake_atlassian.add_page("TREE", f"Child {index:03}", parent_id=top["id"])
    expected = ConfluenceListChildrenOperator(task_id="l", page_id=top["id"]).execute({})
    before = calls(fake_atlassian, DIRECT_CHILDREN)
    # 251 points left: the first 250 children (251 points) pass, the second page of results is refused
    fake_atlassian.enable_quota(260, align_to_hour=False)
    spend(wide_conn, 9)
    op = ConfluenceListChildrenOperator(task_id="l", page_id=top["id"], deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert result == expected and len({node["id"] for node in result}) == 300
    resume = deferrals[0]["kwargs"]["resume"]
    assert len(resume["results"]) == 250 and resume["cursor"].startswith(fake_atlassian.api_url)
    assert calls(fake_atlassian, DIRECT_CHILDREN) - before == 3  # two pages of results and the refused one


def test_a_descendants_listing_continues_from_its_cursor(fake_atlassian, wide_conn, emulator_time):
    """Down to 5 levels the listing is one (cursor-paginated) request chain, so it resumes where it was refused."""
    fake_atlassian.add_space("TREE")
    top = fake_atlassian.add_page("TREE", "Top")
    for index in range(3):
        child = fake_atlassian.add_page("TREE", f"Child {index}", parent_id=top["id"])
        for inner in range(100):
            fake_atlassian.add_page("TREE", f"Grandchild {index}.{inner:03}", parent_id=child["id"])
    expected = ConfluenceListChildrenOperator(task_id="l", page_id=top["id"], depth=2).execute({})
    before = calls(fake_atlassian, DESCENDANTS)
    fake_atlassian.enable_quota(260, align_to_hour=False)
    spend(wide_conn, 9)
    op = ConfluenceListChildrenOperator(task_id="l", page_id=top["id"], depth=2, deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert result == expected and len(result) == 303
    resume = deferrals[0]["kwargs"]["resume"]
    assert len(resume["results"]) == 250 and resume["cursor"].startswith(fake_atlassian.api_url)
    assert calls(fake_atlassian, DESCENDANTS) - before == 3


def test_a_walk_deeper_than_one_listing_starts_again_after_the_wait(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("TREE")
    top = fake_atlassian.add_page("TREE", "Top")
    child = fake_atlassian.add_page("TREE", "Child", parent_id=top["id"])
    fake_atlassian.add_page("TREE", "Grandchild", parent_id=child["id"])
    refuse_next(fake_atlassian, DESCENDANTS)
    op = ConfluenceListChildrenOperator(task_id="l", page_id=top["id"], depth=6, deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert deferrals[0]["kwargs"]["resume"] == {}  # a cursor of one part of a deeper listing is no place to resume
    assert [(node["title"], node["depth"]) for node in result] == [("Child", 1), ("Grandchild", 2)]


def cost_of(fake: Any, action: Any) -> int:
    """The points ``action`` spends (run once under a large budget); the quota is whole again afterwards."""
    fake.enable_quota(10**6, align_to_hour=False)
    action()
    used = int(fake.quota_usage().used)
    fake.disable_quota()
    return used


def test_a_purge_whose_trashing_was_accepted_purges_the_page_it_found(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Old report")
    kwargs: dict[str, Any] = {"task_id": "d", "space_key": "DEMO", "title": "Old report", "purge": True}
    reads = cost_of(fake_atlassian, lambda: ConfluenceDeletePageOperator(**kwargs, dry_run=True).execute({}))
    # the reads and the trashing DELETE pass; the purge is refused, with the page in the trash, where its title
    # no longer finds it
    fake_atlassian.enable_quota(reads + 1, align_to_hour=False)
    result, deferrals = run_deferrable(ConfluenceDeletePageOperator(**kwargs, deferrable=True), emulator_time)
    assert deferrals[0]["kwargs"]["resume"] == {"page_id": page["id"]}
    assert result == {"id": page["id"], "title": "Old report", "action": "purged"}
    assert all(p["id"] != page["id"] for p in fake_atlassian.pages)


def test_retention_resumes_with_the_pages_left_to_delete(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Reports")
    children = [fake_atlassian.add_page("DEMO", f"Report {index}", parent_id=parent["id"]) for index in range(5)]
    kwargs: dict[str, Any] = {"task_id": "r", "parent_id": parent["id"], "keep_latest": 2}
    listing = cost_of(fake_atlassian, lambda: ConfluenceApplyRetentionOperator(**kwargs, dry_run=True).execute({}))
    before = calls(fake_atlassian, CHILDREN)
    # the listing, then the first page's read (2) and DELETE (1), the second's read (2): its DELETE is refused
    fake_atlassian.enable_quota(listing + 5, align_to_hour=False)
    result, deferrals = run_deferrable(ConfluenceApplyRetentionOperator(**kwargs, deferrable=True), emulator_time)
    resume = deferrals[0]["kwargs"]["resume"]
    assert (len(resume["removed"]), len(resume["pending"]), len(resume["kept"])) == (1, 2, 2)
    assert calls(fake_atlassian, CHILDREN) - before == 1  # the children were listed once, not again on resume
    newest = {child["id"] for child in children[-2:]}
    assert {page["id"] for page in result["kept"]} == newest
    removed = [page["id"] for page in result["removed"]]
    assert sorted(removed) == sorted(child["id"] for child in children[:3]) and len(set(removed)) == 3
    current = {p["id"] for p in fake_atlassian.pages if p.get("status") == "current"}
    assert current & {child["id"] for child in children} == newest


def test_a_folder_the_quota_refused_is_created_once(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    refuse_next(fake_atlassian, "POST /wiki/api/v2/folders")
    op = ConfluenceCreateFolderOperator(task_id="f", title="2026", space_key="DEMO", deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1 and result["title"] == "2026" and result["created"] is True
    assert fake_atlassian.counters["injected_failures"] == 1
    assert calls(fake_atlassian, "POST /wiki/api/v2/folders") == 2  # the refused one, which did nothing, and one


def test_a_removed_label_is_reported_as_removed(fake_atlassian, wide_conn, emulator_time):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report", labels=["draft", "q4"])
    refuse_next(fake_atlassian, "DELETE /wiki/rest/api/content/{id}/label/{label}")
    op = ConfluenceRemoveLabelOperator(task_id="l", page_id=page["id"], label_name="draft", deferrable=True)
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1 and result["action"] == "removed"
    assert fake_atlassian.page_labels(page["id"]) == ["q4"]


def reading_operators(page: dict[str, Any]) -> list[Any]:
    """Operators that only read: after the wait they read again and return what they would have returned."""
    return [
        ConfluenceGetPageOperator(task_id="g", page_id=page["id"]),
        ConfluenceExportPageOperator(task_id="e", page_id=page["id"]),
        ConfluenceDownloadAttachmentOperator(task_id="d", page_id=page["id"], filename="data.csv"),
        ConfluenceFindPageByPathOperator(task_id="p", space_key="DEMO", path="Report"),
    ]


@pytest.mark.parametrize("index", range(4), ids=["get", "export", "download", "find-by-path"])
def test_a_reading_operator_defers_and_reads_again(fake_atlassian, wide_conn, emulator_time, index):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report", labels=["q4"])
    ConfluenceUploadAttachmentOperator(task_id="u", page_id=page["id"], data="x,y\n", filename="data.csv").execute({})
    expected = reading_operators(page)[index].execute({})
    fake_atlassian.throttle(1, retry_after="1800")  # the next call gets a 429 with a 30-minute Retry-After
    op = reading_operators(page)[index]
    op.deferrable = True
    result, deferrals = run_deferrable(op, emulator_time)
    assert len(deferrals) == 1 and result == expected


def new_operators(page_id: str, **kwargs: Any) -> list[Any]:
    """One of each operator that learnt to defer here."""
    return [
        ConfluenceUploadAttachmentOperator(task_id="u", page_id=page_id, data="x", filename="a.txt", **kwargs),
        ConfluenceAddCommentOperator(task_id="c", page_id=page_id, body="<p>c</p>", **kwargs),
        ConfluenceGetPageOperator(task_id="g", page_id=page_id, **kwargs),
        ConfluenceExportPageOperator(task_id="e", page_id=page_id, **kwargs),
        ConfluenceDownloadAttachmentOperator(task_id="d", page_id=page_id, filename="a.txt", **kwargs),
        ConfluenceListChildrenOperator(task_id="l", page_id=page_id, **kwargs),
        ConfluenceFindPageByPathOperator(task_id="p", space_key="DEMO", path="Report", **kwargs),
        ConfluenceCreateFolderOperator(task_id="f", space_key="DEMO", title="F", **kwargs),
        ConfluenceDeletePageOperator(task_id="x", page_id=page_id, **kwargs),
        ConfluenceRemoveLabelOperator(task_id="r", page_id=page_id, label_name="q4", **kwargs),
        ConfluenceApplyRetentionOperator(task_id="k", parent_id=page_id, keep_latest=1, **kwargs),
    ]


@pytest.mark.parametrize("index", range(11))
def test_without_deferrable_the_try_fails_with_retry_at(fake_atlassian, wide_conn, index):
    import time

    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report", labels=["q4"])
    op = new_operators(page["id"], deferrable=False)[index]
    fake_atlassian.throttle(1, retry_after="1800")
    before = time.time()
    with pytest.raises(ConfluenceRateLimited) as info:
        op.execute({})
    assert info.value.retry_at is not None and before + 1790 <= info.value.retry_at <= time.time() + 1801


def test_deferrable_defaults_to_the_airflow_setting(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert all(op.deferrable is True for op in new_operators("1"))
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert all(op.deferrable is False for op in new_operators("1"))
