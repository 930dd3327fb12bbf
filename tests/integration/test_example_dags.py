"""The example DAGs load without errors and run end to end against the emulator with ``dag.test()``."""

from __future__ import annotations

import pytest

from helpers.airflow_env import read_connection_extra
from helpers.dags import dagbag

pytestmark = pytest.mark.airflow2


def test_example_dags_load_without_import_errors(airflow_db):
    bag = dagbag()
    assert bag.import_errors == {}
    assert {
        "confluence_publish_report",
        "confluence_list_spaces",
        "confluence_daily_report",
        "confluence_search_pages",
        "confluence_run_log",
        "confluence_incident_log",
        "confluence_chart_report",
        "confluence_mirror_docs",
        "confluence_report_folders",
    } <= set(bag.dag_ids)


def test_publish_report_runs_and_updates_in_place(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    planted = fake_atlassian.latest_refresh_token
    dag = dagbag().get_dag("confluence_publish_report")
    run = dag.test()
    assert str(run.state).endswith("success")
    pages = [p for p in fake_atlassian.pages if p["title"].startswith("Pipeline report ")]
    assert len(pages) == 1
    stored = read_connection_extra(confluence_conn)
    assert stored["refresh_token"] == fake_atlassian.latest_refresh_token != planted


def test_list_spaces_hands_the_spaces_downstream(fake_atlassian, confluence_conn):
    fake_atlassian.add_spaces(260)
    dag = dagbag().get_dag("confluence_list_spaces")
    run = dag.test()
    assert str(run.state).endswith("success")
    assert fake_atlassian.counters["api_calls_by_route"]["GET /wiki/api/v2/spaces"] == 2


def test_daily_report_publishes_attaches_and_reads_back(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    dag = dagbag().get_dag("confluence_daily_report")
    run = dag.test()
    assert str(run.state).endswith("success")
    (page,) = [p for p in fake_atlassian.pages if p["title"].startswith("Daily metrics ")]
    body = page["body"]["storage"]["value"]
    assert "<th>table</th>" in body and "<td>refunds &amp; returns</td>" in body
    assert fake_atlassian.page_labels(page["id"]) == ["daily-report", "metrics"]
    (attachment,) = fake_atlassian.attachments(page["id"])
    csv = fake_atlassian.attachment_data(page["id"], attachment["title"]).decode()
    assert csv.splitlines()[0] == "table,rows_loaded,failed_checks" and "customers,56,1" in csv

    again = dag.test()  # a re-run of the same day: no new page version, a new version of the same CSV
    assert str(again.state).endswith("success")
    if run_day(again) != run_day(run):
        pytest.skip("the two runs straddled midnight UTC: the second one is another day's report")
    (page_after,) = [p for p in fake_atlassian.pages if p["title"].startswith("Daily metrics ")]
    assert (page_after["id"], page_after["version"]["number"]) == (page["id"], 1)
    assert [(a["title"], a["version"]["number"]) for a in fake_atlassian.attachments(page["id"])] == [
        (attachment["title"], 2)
    ]
    assert fake_atlassian.counters["api_calls_by_route"]["POST /wiki/rest/api/content/{id}/label"] == 1


def run_day(run) -> str:
    logical = getattr(run, "logical_date", None) or run.execution_date
    return logical.strftime("%Y-%m-%d")


def test_search_pages_keeps_an_index_of_the_reports(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    for day in ("2026-05-01", "2026-05-02"):
        fake_atlassian.add_page("DEMO", f"Daily metrics {day}", labels=["daily-report"])
    fake_atlassian.add_page("DEMO", "Not a report")
    fake_atlassian.add_page("DEMO", "Daily metrics [draft] *v2* <b>", labels=["daily-report"])
    dag = dagbag().get_dag("confluence_search_pages")
    run = dag.test()
    assert str(run.state).endswith("success")
    (index,) = [p for p in fake_atlassian.pages if p["title"] == "Daily report index"]
    body = index["body"]["storage"]["value"]
    assert "Daily reports (3)" in body
    assert ">Daily metrics [draft] *v2* &lt;b&gt;</a>" in body  # Markdown characters in a title shown as written
    assert body.index("Daily metrics 2026-05-02") < body.index("Daily metrics 2026-05-01")
    assert "Not a report" not in body
    assert f'href="{fake_atlassian.site_url}/wiki/' in body


def test_run_log_appends_one_line_per_run(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    dag = dagbag().get_dag("confluence_run_log")
    runs = [dag.test(), dag.test()]
    assert all(str(run.state).endswith("success") for run in runs)
    (page,) = [p for p in fake_atlassian.pages if p["title"] == "Pipeline run log"]
    body = page["body"]["storage"]["value"]
    assert body.startswith("<h1>Pipeline run log</h1>")
    for run in runs:  # each run's line once, after its invisible anchor
        assert body.count(f"airflow-append:confluence_run_log/append_run_line/{run.run_id}") == 1
        assert body.count(f"<code>{run.run_id}</code>") == 1
    assert page["version"]["number"] == 3  # created, then one version per run


def test_incident_log_gets_one_entry_per_failed_try(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    dag = dagbag().get_dag("confluence_incident_log")
    assert str(dag.test().state).endswith("success")  # nothing failed: the log page only
    failed = dag.test(run_conf={"fail": True})
    assert str(failed.state).endswith("failed")
    (page,) = [p for p in fake_atlassian.pages if p["title"] == "Incident log"]
    body = page["body"]["storage"]["value"]
    assert body.startswith("<h1>Incident log</h1>")
    assert body.count(f"airflow-append:confluence_incident_log/{failed.run_id}/load/-1/1") == 1
    assert "the warehouse refused the load" in body
    assert page["version"]["number"] == 2


def test_retention_finds_the_parent_by_path_and_keeps_recent_reports(fake_atlassian, wide_conn):
    """Every report here is younger than keep_days: the preview and the real run keep them all, and no write is
    sent (the tree and retention rules themselves are tested in test_tree.py)."""
    fake_atlassian.add_space("DEMO")
    reports = fake_atlassian.add_page("DEMO", "Reports")
    daily = fake_atlassian.add_page("DEMO", "Daily", parent_id=reports["id"])
    for day in range(1, 10):
        fake_atlassian.add_page("DEMO", f"Report {day}", parent_id=daily["id"])
    fake_atlassian.reset_counters()
    run = dagbag().get_dag("confluence_retention").test()
    assert str(run.state).endswith("success")
    by_route = fake_atlassian.counters["api_calls_by_route"]
    assert by_route.get("GET /wiki/api/v2/pages/{id}/children", 0) >= 2  # preview, apply
    assert by_route.get("GET /wiki/api/v2/pages/{id}/direct-children", 0) >= 1  # remaining (and the path)
    assert not [route for route in by_route if route.startswith("DELETE")]
    assert sum(1 for p in fake_atlassian.pages if p["status"] == "current" and p["title"].startswith("Report ")) == 9


def test_report_folders_makes_the_folders_once_and_finds_the_page_through_them(fake_atlassian, wide_conn):
    """Reports and the year are folders, made by the first run only; the month's page is in the year's folder,
    found by its path; the second run creates no folder (the folders themselves are tested in test_folders.py)."""
    space = fake_atlassian.add_space("DEMO")
    dag = dagbag().get_dag("confluence_report_folders")
    assert str(dag.test().state).endswith("success")
    folder_posts = [r for r in fake_atlassian.requests if r["route"] == "POST /wiki/api/v2/folders"]
    assert [r["json"]["title"] for r in folder_posts][0] == "Reports" and len(folder_posts) == 2
    assert folder_posts[0]["json"]["parentId"] == space["homepageId"]  # the space's top level
    (page,) = [p for p in fake_atlassian.pages if p["title"].startswith("Report ")]
    assert page["parentType"] == "folder"
    fake_atlassian.reset_counters()
    assert str(dag.test().state).endswith("success")
    assert not [r for r in fake_atlassian.requests if r["route"] == "POST /wiki/api/v2/folders"]


def test_mirror_docs_previews_then_mirrors_the_sample_directory(fake_atlassian, confluence_conn):
    """The preview sends no write; the mirror creates one page per file and directory, with the label; a second
    run of the DAG writes nothing (the mirror itself is tested in test_mirror.py)."""
    fake_atlassian.add_space("DEMO")
    handbook = fake_atlassian.add_page("DEMO", "Handbook")
    dag = dagbag().get_dag("confluence_mirror_docs")
    assert str(dag.test().state).endswith("success")
    mirrored = [p for p in fake_atlassian.pages if p["title"] not in ("Demo Home", "Handbook")]
    assert len(mirrored) == 5 and sum(p["parentId"] == handbook["id"] for p in mirrored) == 3
    assert all(fake_atlassian.page_labels(p["id"]) == ["handbook"] for p in mirrored)
    fake_atlassian.reset_counters()
    assert str(dag.test().state).endswith("success")
    assert not [r for r in fake_atlassian.requests if r["method"] in ("POST", "PUT", "DELETE")]
    # the preview: the space, the parent, five pages by title (7); the mirror: the same and each page's labels (12)
    assert fake_atlassian.counters["api_calls"] == 7 + 12
