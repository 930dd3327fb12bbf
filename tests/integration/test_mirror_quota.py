"""``ConfluenceMirrorDirectoryOperator`` waits out Atlassian's hourly points quota: with ``deferrable=True`` a mirror
that runs out of points midway defers (``deferred`` in the metadata database, no worker slot held) and resumes with
what is left: every page exactly once, no page written twice nor an unchanged page written, ``delete_missing``
finished, and the result listing every page as it was done.

Against the emulator's points quota (``fake.enable_quota``), its clock put at half past the hour so that a refusal
asks for 30 minutes, which the triggers wait out at once on the emulator's clock (the ``emulator_time`` fixture).
Through Airflow with ``dag.test()`` and ``helpers.triggerer.InlineTriggerer`` (2.11 and 3.x), and directly as
Airflow drives a deferral (``helpers.quota.run_deferrable``). The client's clock is put on the triggers' (the
``clock`` fixture), so that waits over several windows add up as they do in a deployment.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.operators.confluence import ConfluenceMirrorDirectoryOperator
from helpers.dags import new_dag, run_dag
from helpers.quota import EmulatorTime, run_deferrable
from helpers.triggerer import InlineTriggerer

pytestmark = pytest.mark.airflow2

SAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "mirror_docs"
PATHS = ["overview.md", "guide/", "guide/setup.md", "reference/", "reference/tables.md"]
TITLES = {
    "overview.md": "Pipeline handbook",
    "guide/": "Pipeline user guide",
    "guide/setup.md": "Setting up the pipeline",
    "reference/": "reference",
    "reference/tables.md": "Pipeline tables",
}
CREATE, UPDATE, DELETE = "POST /wiki/api/v2/pages", "PUT /wiki/api/v2/pages/{id}", "DELETE /wiki/api/v2/pages/{id}"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A copy of the example DAG's sample directory, free to edit."""
    return Path(shutil.copytree(SAMPLE, tmp_path / "docs"))


@pytest.fixture
def handbook(fake_atlassian: Any, wide_conn: str) -> dict[str, Any]:
    """Space DEMO with the page "Handbook" to mirror under."""
    fake_atlassian.add_space("DEMO")
    return fake_atlassian.add_page("DEMO", "Handbook")


@pytest.fixture
def clock(emulator_time: EmulatorTime, monkeypatch: pytest.MonkeyPatch) -> EmulatorTime:
    """The triggers' clock on the emulator's (``emulator_time``), and the client's too: a ``retry_at`` computed after
    a wait is then on the same clock as the trigger that waits for it, so a mirror can wait out several windows
    (two at most: the operator's own check of ``retry_at``, at most two hours on, stays on the real clock)."""
    from airflow_provider_confluence.client import confluence as client_module

    class Clock:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def time() -> float:
            return emulator_time.now()

    monkeypatch.setattr(client_module, "time", Clock())
    return emulator_time


def half_past(fake: Any, points: int) -> None:
    """Put the emulator's clock at half past the hour and give the app ``points`` an hour."""
    now = fake.now()
    fake.advance((1800 - now % 3600) % 3600)
    fake.enable_quota(points)


def accepted(fake: Any, route: str) -> int:
    """How many calls of ``route`` were carried out (2xx)."""
    return sum(1 for r in fake.requests if r["route"] == route and 200 <= r["status"] < 300)


def current(fake: Any) -> dict[str, list[dict[str, Any]]]:
    """The current pages by title (a list each, to see duplicates)."""
    pages: dict[str, list[dict[str, Any]]] = {}
    for page in fake.pages:
        if page["status"] == "current":
            pages.setdefault(page["title"], []).append(page)
    return pages


def mirror(task_id: str, docs: Path, **kwargs: Any) -> ConfluenceMirrorDirectoryOperator:
    return ConfluenceMirrorDirectoryOperator(
        task_id=task_id, directory=str(docs), space_key="DEMO", parent_title="Handbook", deferrable=True, **kwargs
    )


def test_a_mirror_out_of_quota_midway_waits_deferred_and_ends_with_every_page_once(
    fake_atlassian, handbook, docs, clock, monkeypatch
):
    half_past(fake_atlassian, 12)  # about a page and a half of writes per hour: three windows for five pages
    with new_dag("mirror_quota") as dag:
        mirror("mirror", docs)

    def quota_now(_ti: Any) -> dict[str, Any]:
        usage = fake_atlassian.quota_usage()
        return {"points_left": usage.remaining, "resets_in": usage.resets_at - fake_atlassian.now()}

    triggerer = InlineTriggerer(dag.dag_id, observe=quota_now).install(monkeypatch)
    stored = run_dag(dag)["return_value"]  # asserts the run succeeded

    waits = [seen for seen in triggerer.observed if seen["task_id"] == "mirror"]
    assert len(waits) >= 2, triggerer.observed  # the mirror ran out of points more than once
    for seen in triggerer.observed:
        assert seen["state"] == "deferred" and seen["classpath"].endswith("ConfluenceRateLimitTrigger"), seen
        assert seen["points_left"] == 0 and seen["resets_in"] > 0, seen
        assert "running" not in seen["others"].values(), seen  # nothing held a worker meanwhile
    first_refusal = next(i for i, r in enumerate(fake_atlassian.requests) if r["status"] == 429)
    first_create = next(i for i, r in enumerate(fake_atlassian.requests) if r["route"] == CREATE)
    assert first_create < first_refusal  # it ran out midway, after pages were written

    result = stored["mirror"]
    assert list(result) == PATHS and {e["action"] for e in result.values()} == {"created"}
    pages = current(fake_atlassian)
    assert {title: len(pages.get(title, [])) for title in TITLES.values()} == dict.fromkeys(TITLES.values(), 1)
    assert accepted(fake_atlassian, CREATE) == len(PATHS) and accepted(fake_atlassian, UPDATE) == 0
    parents = {path: str(pages[TITLES[path]][0]["parentId"]) for path in PATHS}
    assert parents == {
        "overview.md": handbook["id"],
        "guide/": handbook["id"],
        "guide/setup.md": result["guide/"]["id"],
        "reference/": handbook["id"],
        "reference/tables.md": result["reference/"]["id"],
    }

    fake_atlassian.reset_counters()
    fake_atlassian.disable_quota()
    with new_dag("mirror_quota_again") as again:
        mirror("mirror", docs)
    rerun = run_dag(again)["return_value"]["mirror"]
    assert {e["action"] for e in rerun.values()} == {"unchanged"}
    writes = [r["route"] for r in fake_atlassian.requests if r["method"] != "GET" and r["path"].startswith("/wiki/")]
    assert writes == []  # the re-run wrote nothing


def test_a_partly_applied_plan_with_delete_missing_is_finished_after_the_wait(fake_atlassian, handbook, docs, clock):
    """Updates, a create and removals, interrupted by the quota: each is done once, and no unchanged page is
    written, wherever the refusals fall."""
    first = run_deferrable(mirror("first", docs), clock)[0]
    stray = fake_atlassian.add_page("DEMO", "Hand-written", parent_id=handbook["id"])
    setup = docs / "guide" / "setup.md"
    setup.write_text(setup.read_text() + "\nRun `make install` first.\n")
    shutil.rmtree(docs / "reference")
    (docs / "new.md").write_text("# Brand new\n\nFresh.\n")
    before = {title: pages[0]["version"]["number"] for title, pages in current(fake_atlassian).items()}
    fake_atlassian.reset_counters()
    half_past(fake_atlassian, 30)  # the reads and the first writes fit; the removals do not

    result, deferrals = run_deferrable(mirror("again", docs, delete_missing=True), clock)

    assert deferrals and fake_atlassian.counters["quota_rejections"] >= 1
    first_refusal = next(i for i, r in enumerate(fake_atlassian.requests) if r["status"] == 429)
    first_update = next(i for i, r in enumerate(fake_atlassian.requests) if r["route"] == UPDATE)
    assert first_update < first_refusal  # refused after some of the plan was applied
    assert all(d["method"] == "resume_after_rate_limit" and "mirrored" in d["kwargs"]["resume"] for d in deferrals)
    gone = {first["reference/"]["id"], first["reference/tables.md"]["id"], stray["id"]}
    assert {k: v["action"] for k, v in result.items()} == {
        "new.md": "created",
        "overview.md": "updated",  # its link to reference/tables.md now names nothing
        "guide/": "unchanged",
        "guide/setup.md": "updated",
        **{f"page:{page_id}": "trashed" for page_id in gone},
    }
    assert accepted(fake_atlassian, CREATE) == 1 and accepted(fake_atlassian, UPDATE) == 2
    assert accepted(fake_atlassian, DELETE) == len(gone)  # each removal once
    pages = current(fake_atlassian)
    assert all(len(same) == 1 for same in pages.values()), {t: len(p) for t, p in pages.items()}
    after = {title: same[0]["version"]["number"] for title, same in pages.items()}
    assert after == {
        **{t: v for t, v in before.items() if t in after},
        "Setting up the pipeline": 2,
        "Pipeline handbook": 2,
        "Brand new": 1,
    }
    assert {p["id"] for p in fake_atlassian.pages if p["status"] == "trashed"} == gone


def test_a_create_that_landed_before_its_refusal_is_not_created_again(fake_atlassian, handbook, docs, emulator_time):
    """A 429 that comes after the create was carried out: the resumed mirror finds the page by its title and
    leaves it alone (its body is the one sent)."""
    fake_atlassian.fail_next(
        429,
        route=CREATE,
        after=1,
        landed=True,
        headers={"Retry-After": "1800", "X-Beta-RateLimit-Reason": "confluence-quota-tenant-based"},
    )
    result, deferrals = run_deferrable(mirror("mirror", docs), emulator_time)
    assert len(deferrals) == 1
    assert {p: e["action"] for p, e in result.items()} == {**dict.fromkeys(PATHS, "created"), "guide/": "unchanged"}
    pages = current(fake_atlassian)
    assert {title: len(pages.get(title, [])) for title in TITLES.values()} == dict.fromkeys(TITLES.values(), 1)
    assert accepted(fake_atlassian, UPDATE) == 0 and pages["Pipeline user guide"][0]["version"]["number"] == 1
