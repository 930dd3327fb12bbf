"""Mirroring a directory of Markdown to a page tree, against the emulator: through Airflow (``dag.test()``) on
2.11 and 3.x, a first run creates, an edit updates exactly one page, a re-run with nothing changed writes nothing;
dry runs send no write; a title taken elsewhere in the space stops the run before any write; a run that failed
midway is resumed without creating anything twice; ``delete_missing`` trashes what the directory lost."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError, ConfluencePageExists
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import ConfluenceMirrorDirectoryOperator
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.dags import new_dag, run_dag

pytestmark = pytest.mark.airflow2

SAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "mirror_docs"
WRITES = ("POST", "PUT", "DELETE", "PATCH")
MIRROR_SCOPES = f"{DEFAULT_SCOPES} delete:page:confluence write:folder:confluence"
PATHS = ["overview.md", "guide/", "guide/setup.md", "reference/", "reference/tables.md"]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A copy of the example DAG's sample directory, free to edit."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "docs"))


@pytest.fixture
def handbook(fake_atlassian: Any, airflow_db: Any) -> dict[str, Any]:
    """Space DEMO with a page "Handbook" to mirror under, and a connection with the delete scope."""
    put_connection("confluence_default", fake_atlassian.connection("confluence_default", scopes=MIRROR_SCOPES))
    fake_atlassian.add_space("DEMO")
    return fake_atlassian.add_page("DEMO", "Handbook")


def writes(fake: Any) -> list[str]:
    return [r["route"] for r in fake.requests if r["method"] in WRITES and r["path"].startswith("/wiki/")]


def versions(fake: Any) -> dict[str, int]:
    return {p["title"]: p["version"]["number"] for p in fake.pages if p["status"] == "current"}


def mirror_dag(name: str, docs: Path, **kwargs: Any) -> Any:
    with new_dag(name, params={"docs": str(docs)}) as dag:
        ConfluenceMirrorDirectoryOperator(
            task_id="mirror", directory="{{ params.docs }}", space_key="DEMO", parent_title="Handbook", **kwargs
        )
    return dag


def test_mirror_edit_one_file_and_rerun_in_dag_runs(fake_atlassian, handbook, docs):
    """First run creates the tree; after one file is edited exactly one page gets a new version; a run with
    nothing changed sends no write (and reads one page listing per page, plus the space and the parent)."""
    first = run_dag(mirror_dag("mirror_first", docs))["return_value"]["mirror"]
    assert list(first) == PATHS and {e["action"] for e in first.values()} == {"created"}
    by_title = {p["title"]: p for p in fake_atlassian.pages}
    assert by_title["Pipeline handbook"]["parentId"] == handbook["id"]
    assert by_title["Setting up the pipeline"]["parentId"] == first["guide/"]["id"]
    assert by_title["reference"]["parentId"] == handbook["id"]
    overview = by_title["Pipeline handbook"]["body"]["storage"]["value"]
    assert '<ri:page ri:content-title="Setting up the pipeline" />' in overview  # a relative link, resolved
    before = versions(fake_atlassian)

    setup = docs / "guide" / "setup.md"
    setup.write_text(setup.read_text() + "\nRun `make install` first.\n")
    fake_atlassian.reset_counters()
    second = run_dag(mirror_dag("mirror_edit", docs))["return_value"]["mirror"]
    assert {p: e["action"] for p, e in second.items()} == {
        **dict.fromkeys(PATHS, "unchanged"),
        "guide/setup.md": "updated",
    }
    after = versions(fake_atlassian)
    bumped = {title for title in after if after[title] != before[title]}
    assert bumped == {"Setting up the pipeline"} and after["Setting up the pipeline"] == 2
    assert writes(fake_atlassian) == ["PUT /wiki/api/v2/pages/{id}"]
    assert {e["id"] for e in second.values()} == {e["id"] for e in first.values()}

    fake_atlassian.reset_counters()
    third = run_dag(mirror_dag("mirror_same", docs))["return_value"]["mirror"]
    assert {e["action"] for e in third.values()} == {"unchanged"}
    assert writes(fake_atlassian) == [] and versions(fake_atlassian) == after
    calls = fake_atlassian.counters["api_calls_by_route"]
    # the space's id, the parent by title, then one lookup by title per page: 2 + 5 requests
    assert calls == {"GET /wiki/api/v2/spaces": 1, "GET /wiki/api/v2/pages": 1 + len(PATHS)}


def test_a_dry_run_returns_the_plan_and_sends_no_write(fake_atlassian, handbook, docs):
    hook = ConfluenceOAuthHook("confluence_default")
    hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"])
    (docs / "overview.md").write_text("# Pipeline handbook\n\nRewritten.\n")
    (docs / "new.md").write_text("# Brand new\n")
    fake_atlassian.reset_counters()
    plan = ConfluenceMirrorDirectoryOperator(
        task_id="preview", directory=str(docs), space_key="DEMO", parent_id=handbook["id"], dry_run=True
    ).execute({})
    assert writes(fake_atlassian) == []
    assert plan["new.md"] == {"id": None, "title": "Brand new", "action": "create"}
    assert plan["overview.md"]["action"] == "update"
    assert {plan[p]["action"] for p in PATHS if p != "overview.md"} == {"unchanged"}


def test_a_title_taken_elsewhere_in_the_space_stops_the_run_before_any_write(fake_atlassian, handbook, docs):
    other = fake_atlassian.add_page("DEMO", "Elsewhere")
    taken = fake_atlassian.add_page("DEMO", "Setting up the pipeline", parent_id=other["id"])
    fake_atlassian.reset_counters()
    with pytest.raises(ConfluencePageExists) as caught:
        ConfluenceOAuthHook("confluence_default").mirror_directory(docs, space_key="DEMO", parent_title="Handbook")
    assert caught.value.page_id == taken["id"] and "guide/setup.md" in str(caught.value)
    assert writes(fake_atlassian) == []


def test_a_run_that_failed_midway_is_resumed_without_creating_anything_twice(fake_atlassian, handbook, docs):
    fake_atlassian.fail_next(400, route="POST /wiki/api/v2/pages", after=2)  # the third create is refused
    hook = ConfluenceOAuthHook("confluence_default")
    with pytest.raises(ConfluenceApiError):
        hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"])
    assert len(fake_atlassian.pages) == 2 + 2  # the home page, Handbook, and the two pages that made it
    resumed = hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"])
    assert [resumed[p]["action"] for p in PATHS] == ["unchanged", "unchanged", "created", "created", "created"]
    titles = [p["title"] for p in fake_atlassian.pages]
    assert len(titles) == len(set(titles)) == 2 + len(PATHS)  # home page, Handbook, the mirror; no duplicate


def test_delete_missing_trashes_what_the_directory_lost_after_a_dry_run(fake_atlassian, handbook, docs):
    hook = ConfluenceOAuthHook("confluence_default")
    first = hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"])
    kept = fake_atlassian.add_page("DEMO", "Hand-written", parent_id=handbook["id"])
    (docs / "reference" / "tables.md").unlink()
    left_alone = hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"])
    assert "reference/" not in left_alone  # the directory has no Markdown any more: it is not mirrored
    gone = {first["reference/"]["id"], first["reference/tables.md"]["id"], kept["id"]}
    assert {p["id"] for p in fake_atlassian.pages if p["status"] == "current"} >= gone  # left alone by default

    fake_atlassian.reset_counters()
    preview = hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"], delete_missing=True, dry_run=True)
    assert writes(fake_atlassian) == []
    assert {k: v["action"] for k, v in preview.items() if k.startswith("page:")} == {
        f"page:{page_id}": "would_trash" for page_id in gone
    }
    done = hook.mirror_directory(docs, space_key="DEMO", parent_id=handbook["id"], delete_missing=True)
    assert list(done)[-3:][0] == f"page:{first['reference/tables.md']['id']}"  # the deepest first
    assert {p["id"] for p in fake_atlassian.pages if p["status"] == "trashed"} == gone


def test_a_folder_can_be_the_parent(fake_atlassian, handbook, docs):
    hook = ConfluenceOAuthHook("confluence_default")
    space_id = fake_atlassian.spaces[0]["id"]
    folder = hook.get_conn().create_folder(space_id=space_id, title="Docs folder")
    done = hook.mirror_directory(docs, space_id=space_id, parent_id=folder["id"])
    assert {e["action"] for e in done.values()} == {"created"}
    top = [p for p in fake_atlassian.pages if p["title"] in ("Pipeline handbook", "Pipeline user guide")]
    assert {p["parentId"] for p in top} == {folder["id"]}
    again = hook.mirror_directory(docs, space_id=space_id, parent_id=folder["id"])
    assert {e["action"] for e in again.values()} == {"unchanged"}


def test_delete_missing_under_a_folder_sees_every_page_below_it(fake_atlassian, handbook, docs):
    """With read:hierarchical-content:confluence, the folder's descendants are listed: a page put straight into
    the folder, which the directory does not have, is trashed; without the scope only pages below mirrored pages
    would be considered (the fallback, kept for older grants)."""
    scopes = f"{MIRROR_SCOPES} read:hierarchical-content:confluence"
    put_connection("confluence_default", fake_atlassian.connection("confluence_default", scopes=scopes))
    hook = ConfluenceOAuthHook("confluence_default")
    space_id = fake_atlassian.spaces[0]["id"]
    folder = hook.get_conn().create_folder(space_id=space_id, title="Docs folder")
    hook.mirror_directory(docs, space_id=space_id, parent_id=folder["id"])
    stray = fake_atlassian.add_page("DEMO", "Stray notes", parent_id=folder["id"])
    done = hook.mirror_directory(docs, space_id=space_id, parent_id=folder["id"], delete_missing=True)
    assert done[f"page:{stray['id']}"]["action"] == "trashed"
    assert [p["title"] for p in fake_atlassian.pages if p["status"] == "trashed"] == ["Stray notes"]
    assert any(r["route"] == "GET /wiki/api/v2/folders/{id}/descendants" for r in fake_atlassian.requests)


def test_a_directory_outside_the_attachment_roots_is_refused_before_anything_is_read(
    fake_atlassian, handbook, docs, tmp_path, monkeypatch
):
    """Like uploads: with ``[confluence] attachment_roots`` set, a templated ``directory`` cannot publish files from
    elsewhere on the worker, not even through a symbolic link inside an allowed folder."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "sneaky").symlink_to(docs, target_is_directory=True)
    monkeypatch.setenv("AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS", str(allowed))
    fake_atlassian.reset_counters()
    for directory in (docs, allowed / "sneaky", allowed / ".." / "docs"):
        operator = ConfluenceMirrorDirectoryOperator(
            task_id="mirror", directory=str(directory), space_key="DEMO", parent_id=handbook["id"]
        )
        with pytest.raises(ConfluenceConfigError, match="outside"):
            operator.execute({})
    assert fake_atlassian.requests == []
    shutil.copytree(docs, allowed / "docs")
    inside = ConfluenceMirrorDirectoryOperator(
        task_id="mirror", directory=str(allowed / "docs"), space_key="DEMO", parent_id=handbook["id"]
    )
    assert {e["action"] for e in inside.execute({}).values()} == {"created"}
