"""The operators against the emulator, through the hook and a real connection row."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluencePageExists
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceGetSpacesOperator,
)

pytestmark = pytest.mark.airflow2


def create(**kwargs):
    kwargs.setdefault("task_id", "create")
    return ConfluenceCreatePageOperator(**kwargs).execute(context={})


def test_create_page_returns_a_summary_with_the_page_url(fake_atlassian, confluence_conn):
    space = fake_atlassian.add_space("DEMO")
    result = create(space_key="DEMO", title="Report", body="<p>hello</p>")
    page = next(p for p in fake_atlassian.pages if p["title"] == "Report")
    assert result == {
        "id": page["id"],
        "title": "Report",
        "space_id": space["id"],
        "version": 1,
        "url": f"{fake_atlassian.site_url}/wiki{page['_links']['webui']}",
        "changed": True,
        "action": "created",
    }


def test_create_page_by_space_id_under_a_parent(fake_atlassian, confluence_conn):
    space = fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Parent")
    result = create(space_id=space["id"], title="Child", body="<p>c</p>", parent_id=parent["id"])
    child = next(p for p in fake_atlassian.pages if p["id"] == result["id"])
    assert child["parentId"] == parent["id"]


def test_if_exists_fail_names_the_page_and_changes_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    existing = fake_atlassian.add_page("DEMO", "Report", "<p>old</p>")
    with pytest.raises(ConfluencePageExists, match=existing["id"]) as caught:
        create(space_key="DEMO", title="Report", body="<p>new</p>")
    assert (caught.value.page_id, caught.value.title, caught.value.status_code) == (existing["id"], "Report", None)
    assert [p["version"]["number"] for p in fake_atlassian.pages if p["title"] == "Report"] == [1]
    assert fake_atlassian.counters["api_calls_by_route"].get("POST /wiki/api/v2/pages", 0) == 0


def test_if_exists_skip_returns_the_existing_page(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    existing = fake_atlassian.add_page("DEMO", "Report", "<p>old</p>")
    result = create(space_key="DEMO", title="Report", body="<p>new</p>", if_exists="skip")
    assert (result["id"], result["version"], result["action"], result["changed"]) == (
        existing["id"],
        1,
        "skipped",
        False,
    )
    assert fake_atlassian.counters["api_calls_by_route"].get("PUT /wiki/api/v2/pages/{id}", 0) == 0


def test_if_exists_update_writes_a_new_version_only_when_the_body_changed(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    existing = fake_atlassian.add_page("DEMO", "Report", "<p>old</p>")
    first = create(space_key="DEMO", title="Report", body="<p>new</p>", if_exists="update")
    again = create(space_key="DEMO", title="Report", body="<p>new</p>", if_exists="update")
    assert (first["id"], first["version"], first["action"], first["changed"]) == (existing["id"], 2, "updated", True)
    assert (again["version"], again["action"], again["changed"]) == (2, "unchanged", False)


def test_if_exists_update_survives_a_concurrent_edit(fake_atlassian, confluence_conn, monkeypatch):
    """A 409 (someone wrote a version between our read and our write) re-reads once and succeeds."""
    from airflow_provider_confluence.client.pages import PagesMixin

    fake_atlassian.add_space("DEMO")
    existing = fake_atlassian.add_page("DEMO", "Report", "<p>old</p>")
    original_update = PagesMixin.update_page
    calls = {"n": 0}

    def racing_update(self, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # another writer gets in first
            original_update(self, page_id=existing["id"], title="Report", body="<p>theirs</p>", version=2)
        return original_update(self, **kwargs)

    monkeypatch.setattr(PagesMixin, "update_page", racing_update)
    result = create(space_key="DEMO", title="Report", body="<p>ours</p>", if_exists="update")
    assert result["version"] == 3
    statuses = [r["status"] for r in fake_atlassian.requests if r["route"] == "PUT /wiki/api/v2/pages/{id}"]
    assert statuses == [200, 409, 200]


def test_bad_options_fail_at_dag_parse_time():
    with pytest.raises(ConfluenceConfigError, match="if_exists"):
        ConfluenceCreatePageOperator(task_id="t", space_key="X", title="t", body="b", if_exists="overwrite")
    with pytest.raises(ValueError, match="max_results"):
        ConfluenceGetSpacesOperator(task_id="t", max_results=0)


def test_get_spaces_reads_every_page_of_results(fake_atlassian, confluence_conn, caplog, capsys):
    created = fake_atlassian.add_spaces(1001)
    with caplog.at_level(logging.INFO):
        spaces = ConfluenceGetSpacesOperator(task_id="spaces").execute(context={})
    logged = caplog.text + capsys.readouterr().out
    assert sorted(s["id"] for s in spaces) == sorted(s["id"] for s in created)
    assert len({s["id"] for s in spaces}) == 1001
    assert set(spaces[0]) == {"id", "key", "name", "type", "status", "url"}
    assert spaces[0]["url"].startswith(f"{fake_atlassian.site_url}/wiki/spaces/")
    assert fake_atlassian.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces"] == 5
    assert "Fetched 1001 spaces in 5 requests" in logged


def test_get_spaces_filters_and_max_results(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("ENG", type="global")
    fake_atlassian.add_space("OPS", type="global", status="archived")
    fake_atlassian.add_space("ME", type="personal")
    keys = ConfluenceGetSpacesOperator(task_id="s", keys="ENG, OPS").execute(context={})
    assert sorted(s["key"] for s in keys) == ["ENG", "OPS"]
    current = ConfluenceGetSpacesOperator(task_id="s", status="current", space_type="global").execute(context={})
    assert [s["key"] for s in current] == ["ENG"]
    fake_atlassian.add_spaces(600)
    assert len(ConfluenceGetSpacesOperator(task_id="s", max_results=300).execute(context={})) == 300


def test_a_create_whose_answer_was_lost_is_not_sent_twice(fake_atlassian, confluence_conn):
    """The POST landed but a 502 came back: the page is found, not created a second time."""
    fake_atlassian.add_space("DEMO")
    fake_atlassian.fail_next(502, route="POST /wiki/api/v2/pages", landed=True)
    result = create(space_key="DEMO", title="Once", body="<p>x</p>")
    assert [p["id"] for p in fake_atlassian.pages if p["title"] == "Once"] == [result["id"]]
    assert fake_atlassian.counters["api_calls_by_route"]["POST /wiki/api/v2/pages"] == 1


def test_rate_limits_are_waited_out(fake_atlassian, confluence_conn, monkeypatch):
    """A 429 with Retry-After is honoured (the wait is recorded, not slept) and the page is created once."""
    slept: list[float] = []
    monkeypatch.setattr("airflow_provider_confluence.client.confluence._sleep", slept.append)
    fake_atlassian.add_space("DEMO")
    fake_atlassian.throttle(times=2, retry_after="3")
    create(space_key="DEMO", title="Throttled", body="<p>x</p>")
    assert len(slept) == 2 and all(3 <= s <= 4 for s in slept)
    assert len([p for p in fake_atlassian.pages if p["title"] == "Throttled"]) == 1
