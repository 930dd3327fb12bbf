"""Charts shown inside the page, against the emulator: the write order, the unchanged re-run, and Airflow runs.

* the hook publishes a page whose Markdown shows an image: the body references only uploaded attachments, a re-run
  with the same bytes writes nothing (and its request count is pinned), new bytes make one new attachment
  version;
* an upload that fails midway leaves a placeholder page, never a broken one, and the next try finishes it;
* the example DAG ``confluence_chart_report`` (Matplotlib, XCom) and the update operator with ``image_dir`` run
  through Airflow (``dag.test()``) on 3.3 and 2.11.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.content.images import figure_png, prepare_images
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.content.publish_images import is_pending
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceUpdatePageOperator,
    ConfluenceUploadAttachmentOperator,
)
from helpers.airflow_env import EXAMPLE_DAGS
from helpers.assets import register
from helpers.dags import dagbag, new_dag, run_dag

pytestmark = pytest.mark.airflow2

PNG = b"\x89PNG\r\n\x1a\n" + b"chart-one" * 8
PNG2 = b"\x89PNG\r\n\x1a\n" + b"chart-two" * 8
UPLOAD = "PUT /wiki/rest/api/content/{id}/child/attachment"
PUT_PAGE = "PUT /wiki/api/v2/pages/{id}"
MARKDOWN = "# Volume\n\n![Daily volume](chart.png)\n\n| day | n |\n|---|---|\n| mon | 3 |"
#: What a re-run with nothing changed sends: the space, the page by title (with its body, to compare), its
#: attachments and its labels (to add only the missing ones). No upload, no page write.
UNCHANGED_RERUN = {
    "GET /wiki/api/v2/spaces": 1,
    "GET /wiki/api/v2/pages": 1,
    "GET /wiki/api/v2/pages/{id}/attachments": 1,
    "GET /wiki/api/v2/pages/{id}/labels": 1,
}


def page_of(fake: Any, page_id: str) -> dict[str, Any]:
    return next(p for p in fake.pages if p["id"] == page_id)


def publish(hook: ConfluenceOAuthHook, data: bytes, *, if_exists: str = "update") -> Any:
    prepared = prepare_images({"chart.png": data}, markdown=MARKDOWN)
    spec = PageSpec.build(
        space_key="DEMO",
        title="Volume report",
        body=MARKDOWN,
        representation="markdown",
        if_exists=if_exists,
        labels=["charts"],
        attachments=prepared.names,
    )
    return hook.publish_with_images(spec, prepared.files)


def test_the_page_shows_the_uploaded_chart_and_a_rerun_writes_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    hook = ConfluenceOAuthHook(confluence_conn)
    first = publish(hook, PNG)
    page_id = first.page["id"]
    page = page_of(fake_atlassian, page_id)
    body = page["body"]["storage"]["value"]
    assert (first.action, first.uploaded, page["version"]["number"]) == ("created", 1, 2)  # placeholder, then body
    assert '<ac:image ac:alt="Daily volume"><ri:attachment ri:filename="chart.png" /></ac:image>' in body
    assert "<th>day</th>" in body and not is_pending(page)
    assert fake_atlassian.broken_images(page_id) == []
    assert fake_atlassian.attachment_data(page_id, "chart.png") == PNG

    fake_atlassian.reset_counters()
    again = ConfluenceOAuthHook(confluence_conn)  # a new task: a new hook, nothing cached
    second = publish(again, PNG)
    assert (second.action, second.uploaded, second.changed) == ("unchanged", 0, False)
    assert fake_atlassian.counters["api_calls_by_route"] == UNCHANGED_RERUN
    assert page_of(fake_atlassian, page_id)["version"]["number"] == 2
    assert [a["version"]["number"] for a in fake_atlassian.attachments(page_id)] == [1]

    third = publish(again, PNG2)  # a new chart, the same body: one new attachment version, no page version
    assert (third.action, third.uploaded, third.changed) == ("unchanged", 1, True)
    assert [a["version"]["number"] for a in fake_atlassian.attachments(page_id)] == [2]
    assert fake_atlassian.attachment_data(page_id, "chart.png") == PNG2


def test_an_upload_that_fails_midway_leaves_no_broken_page_and_the_next_try_finishes(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    hook = ConfluenceOAuthHook(confluence_conn)
    fake_atlassian.fail_next(500, route=UPLOAD)
    with pytest.raises(ConfluenceApiError):
        publish(hook, PNG, if_exists="fail")
    (page,) = [p for p in fake_atlassian.pages if p["title"] == "Volume report"]
    assert is_pending(page) and "ri:attachment" not in page["body"]["storage"]["value"]
    assert fake_atlassian.attachments(page["id"]) == []

    retried = publish(ConfluenceOAuthHook(confluence_conn), PNG, if_exists="fail")  # the task's next try
    assert (retried.page["id"], retried.action, retried.uploaded) == (page["id"], "updated", 1)
    done = page_of(fake_atlassian, page["id"])
    assert not is_pending(done) and fake_atlassian.broken_images(page["id"]) == []
    assert fake_atlassian.page_labels(page["id"]) == ["charts"]


def test_an_existing_page_keeps_its_old_body_until_every_image_is_uploaded(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Old report", "<p>last week</p>")
    hook = ConfluenceOAuthHook(confluence_conn)
    prepared = prepare_images({"a.png": PNG, "b.png": PNG2}, markdown="![a](a.png) ![b](b.png)")
    spec = PageSpec.build(body="![a](a.png) ![b](b.png)", representation="markdown", attachments=prepared.names)
    fake_atlassian.fail_next(500, route=UPLOAD, times=1)
    with pytest.raises(ConfluenceApiError):
        hook.update_page_with_images(spec, page_id=page["id"], images=prepared.files)
    assert page_of(fake_atlassian, page["id"])["body"]["storage"]["value"] == "<p>last week</p>"
    _, images = hook.update_page_with_images(spec, page_id=page["id"], images=prepared.files)
    assert [(i["title"], i["uploaded"]) for i in images] == [("a.png", True), ("b.png", True)]
    assert fake_atlassian.broken_images(page["id"]) == []


def test_an_existing_page_with_if_exists_fail_gets_no_upload(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Volume report", "<p>someone else's</p>")
    with pytest.raises(Exception, match="already exists"):
        publish(ConfluenceOAuthHook(confluence_conn), PNG, if_exists="fail")
    assert fake_atlassian.attachments(page["id"]) == []


# ------------------------------------------------------------------------------------------- through Airflow
def example_module() -> Any:
    spec = importlib.util.spec_from_file_location("chart_report_example", EXAMPLE_DAGS / "confluence_chart_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chart_report_example_publishes_the_figure_and_a_rerun_changes_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    dag = dagbag().get_dag("confluence_chart_report")
    register(dag)  # its outlets (the page alias) in the database, as the DAG processor writes them
    assert str(dag.test().state).endswith("success")
    (page,) = [p for p in fake_atlassian.pages if p["title"] == "Order volume"]
    body = page["body"]["storage"]["value"]
    assert '<ac:image ac:alt="Daily volume"><ri:attachment ri:filename="daily-volume.png" /></ac:image>' in body
    assert "<td>2026-05-07</td>" in body and fake_atlassian.broken_images(page["id"]) == []
    module = example_module()
    expected = figure_png(module.volume_chart(module.volume_rows()))  # the figure, drawn again here
    assert expected.startswith(b"\x89PNG") and len(expected) > 5000
    assert fake_atlassian.attachment_data(page["id"], "daily-volume.png") == expected
    versions = (page["version"]["number"], [a["version"]["number"] for a in fake_atlassian.attachments(page["id"])])

    fake_atlassian.reset_counters()
    assert str(dag.test().state).endswith("success")
    (after,) = [p for p in fake_atlassian.pages if p["title"] == "Order volume"]
    assert (after["version"]["number"], [a["version"]["number"] for a in fake_atlassian.attachments(page["id"])]) == (
        versions
    )
    routes = fake_atlassian.counters["api_calls_by_route"]
    assert routes == UNCHANGED_RERUN, routes


def test_the_update_operator_shows_images_from_image_dir_and_from_xcom(fake_atlassian, confluence_conn, tmp_path):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Ops report", "<p>old</p>")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "latency.png").write_bytes(PNG2)
    chart = base64.b64encode(PNG).decode()  # what an upstream task returns through XCom
    with new_dag("images", params={"dir": str(tmp_path), "chart": chart}) as dag:
        ConfluenceUpdatePageOperator(
            task_id="update",
            page_id=page["id"],
            body="![Latency](plots/latency.png)\n\n![Errors](errors.png)",
            representation="markdown",
            images={"errors.png": "{{ params.chart }}"},
            image_dir="{{ params.dir }}",
        )
    register(dag)  # its outlets (the page alias) in the database, as the DAG processor writes them
    results = run_dag(dag)["return_value"]["update"]
    assert results["changed"] and [(i["title"], i["uploaded"]) for i in results["images"]] == [
        ("errors.png", True),
        ("latency.png", True),
    ]
    assert fake_atlassian.attachment_data(page["id"], "latency.png") == PNG2
    assert fake_atlassian.attachment_data(page["id"], "errors.png") == PNG
    assert fake_atlassian.broken_images(page["id"]) == []


def test_operators_refuse_bad_image_arguments_when_the_dag_is_parsed(tmp_path: Path):
    with pytest.raises(ConfluenceConfigError, match="mapping of image name"):
        ConfluenceCreatePageOperator(task_id="t", space_key="D", title="t", body="x", images=["chart.png"])
    with pytest.raises(ConfluenceConfigError, match="name each image"):
        ConfluenceUpdatePageOperator(task_id="u", page_id="1", body="x", images={"": b"x"})


def test_an_image_path_escaping_image_dir_fails_before_any_request(fake_atlassian, confluence_conn, tmp_path):
    fake_atlassian.add_space("DEMO")
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "images").mkdir()
    operator = ConfluenceCreatePageOperator(
        task_id="t",
        space_key="DEMO",
        title="Escaping",
        body="![x](../secret.txt)",
        representation="markdown",
        image_dir=str(tmp_path / "images"),
    )
    fake_atlassian.reset_counters()
    with pytest.raises(ConfluenceConfigError, match="outside the image folder"):
        operator.execute({})
    assert fake_atlassian.counters["api_calls"] == 0


def test_the_upload_operator_can_skip_unchanged_bytes_through_the_same_check(fake_atlassian, confluence_conn, tmp_path):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Files")
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")

    def upload() -> dict[str, Any]:
        return ConfluenceUploadAttachmentOperator(
            task_id="u", page_id=page["id"], file_path=str(report), comment="nightly", skip_unchanged=True
        ).execute({})

    first, second = upload(), upload()
    assert (first["uploaded"], second["uploaded"], second["version"]) == (True, False, 1)
    (listed,) = fake_atlassian.attachments(page["id"])
    assert listed["comment"].startswith("nightly (sha256:")
    report.write_text("a,b\n1,3\n")
    assert (upload()["uploaded"], fake_atlassian.attachments(page["id"])[0]["version"]["number"]) == (True, 2)
    plain = ConfluenceUploadAttachmentOperator(task_id="u", page_id=page["id"], file_path=str(report)).execute({})
    assert (plain["uploaded"], plain["version"]) == (True, 3)  # the default: every run a new version
