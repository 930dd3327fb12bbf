"""A page write is checked and converted once: the operator builds a ``PageSpec`` and the hook and ``publish``
take it as it is (spies count the conversions and label checks of one operator run against the emulator)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_confluence.client import labels as client_labels
from airflow_provider_confluence.content import storage_format
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.notifications.confluence import ConfluenceNotifier
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceUpdatePageOperator,
)

pytestmark = pytest.mark.airflow2


class Spy:
    """Counts the calls of one function through every provider module that imported it by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, original: Callable[..., Any], *, skip: tuple[str, ...] = ()):
        self.calls = 0

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        for name, module in list(sys.modules.items()):
            if name.startswith("airflow_provider_confluence") and name not in skip:
                if getattr(module, original.__name__, None) is original:
                    monkeypatch.setattr(module, original.__name__, counting)


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Spy]]:
    # The client's own add_page_labels checks what a direct caller of the client gives it; that boundary is the
    # client's, not a second check of the spec, so its module is left out.
    yield {
        "to_storage": Spy(monkeypatch, storage_format.to_storage),
        "normalize_labels": Spy(monkeypatch, client_labels.normalize_labels, skip=(client_labels.__name__,)),
    }


def test_create_converts_the_body_and_checks_the_labels_once(fake_atlassian, confluence_conn, spies):
    fake_atlassian.add_space("DEMO")
    fake_atlassian.add_page("DEMO", "Report", "<p>old</p>")
    result = ConfluenceCreatePageOperator(
        task_id="create",
        space_key="DEMO",
        title="Report",
        body="# Weekly\n\n*all* good",
        representation="markdown",
        if_exists="update",
        labels="KPI, daily-report",
    ).execute(context={})
    assert result["action"] == "updated"
    assert (spies["to_storage"].calls, spies["normalize_labels"].calls) == (1, 1)
    page = next(p for p in fake_atlassian.pages if p["id"] == result["id"])
    assert "<h1>Weekly</h1>" in page["body"]["storage"]["value"]


def test_update_converts_the_body_and_checks_the_labels_once(fake_atlassian, confluence_conn, spies):
    fake_atlassian.add_space("DEMO")
    fake_atlassian.add_page("DEMO", "Parent")
    page = fake_atlassian.add_page("DEMO", "Log", "<p>start</p>")
    result = ConfluenceUpdatePageOperator(
        task_id="update",
        page_id=page["id"],
        body="- one",
        representation="markdown",
        mode="append",
        labels=["Log"],
        parent_title="Parent",
        version_message="appended",
    ).execute(context={})
    assert result["changed"] is True
    assert (spies["to_storage"].calls, spies["normalize_labels"].calls) == (1, 1)


def test_a_bad_label_stops_the_operator_before_any_request(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    before = sum(fake_atlassian.counters["api_calls_by_route"].values())
    with pytest.raises(ConfluenceConfigError, match="label"):
        ConfluenceCreatePageOperator(
            task_id="create", space_key="DEMO", title="Report", body="<p>x</p>", labels=["bad label"]
        ).execute(context={})
    assert sum(fake_atlassian.counters["api_calls_by_route"].values()) == before


def test_the_hook_takes_a_spec_or_the_old_keyword_arguments(fake_atlassian, confluence_conn, spies):
    fake_atlassian.add_space("DEMO")
    hook = ConfluenceOAuthHook()
    by_keywords = hook.create_page(space_key="DEMO", title="Old style", body="**x**", representation="markdown")
    spec = PageSpec.build(space_key="DEMO", title="New style", body="**x**", representation="markdown")
    by_spec = hook.create_page(spec)
    assert spies["to_storage"].calls == 2  # once per page: the keyword call built its own spec
    pages = {p["id"]: p for p in fake_atlassian.pages}
    assert (
        pages[by_keywords["id"]]["body"]["storage"]["value"]
        == pages[by_spec["id"]]["body"]["storage"]["value"]
        == "<p><strong>x</strong></p>\n"
    )
    with pytest.raises(TypeError, match="not both"):
        hook.publish(spec, title="Other")


def test_the_notifier_appends_through_a_spec(fake_atlassian, confluence_conn, spies):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Incidents", "<p>log</p>")
    ConfluenceNotifier(page_id=page["id"], message="Task **failed**").notify({"run_id": "r1"})
    assert spies["to_storage"].calls == 1
    stored = next(p for p in fake_atlassian.pages if p["id"] == page["id"])["body"]["storage"]["value"]
    assert "<strong>failed</strong>" in stored
