"""The mirror applied to an in-memory client (no sockets): the same test of "unchanged" for runs and dry runs,
clashes refused before any write, resumption, the folder fallback of ``delete_missing``, and a mirror resumed
from the ``progress`` of a refusal by Atlassian's rate limit (nothing created, written or trashed twice)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.content.mirror import mirror_plan
from airflow_provider_confluence.content.mirror_plan import build_plan
from airflow_provider_confluence.content.mirror_resume import MirrorProgress
from airflow_provider_confluence.exceptions import (
    ConfluenceNotFound,
    ConfluencePageExists,
    ConfluenceRateLimited,
    ConfluenceScopeError,
)

SPACE, ROOT = "9", "100"


class MemoryClient:
    """The client methods the mirror uses, over a dict of pages; ``writes`` records every write."""

    def __init__(self) -> None:
        self.pages: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.folders = {ROOT}
        self._next = 1000

    def add(self, title: str, parent: str, body: str = "<p>x</p>") -> dict[str, Any]:
        self._next += 1
        page = {"id": str(self._next), "title": title, "parentId": parent, "status": "current", "spaceId": SPACE}
        page |= {"version": {"number": 1}, "body": {"storage": {"value": body}}}
        self.pages[page["id"]] = page
        return page

    def find_page(self, *, space_id: str, title: str, body_format: str | None = None, **_: Any) -> Any:
        return next((dict(p) for p in self.pages.values() if p["title"] == title), None)

    def get_page(self, page_id: str, *, body_format: str | None = None) -> dict[str, Any]:
        return dict(self.pages[page_id])

    def create_page(self, *, space_id: str, title: str, body: str, parent_id: str | None = None, **_: Any) -> Any:
        self.writes.append(f"create {title}")
        return self.add(title, str(parent_id), self.rewrite(body))

    def update_page(
        self, *, page_id: str, title: str, body: str, version: int, message: str | None = None, **_: Any
    ) -> dict[str, Any]:
        self.writes.append(f"update {title}")
        page = self.pages[page_id]
        stored = self.rewrite(body)
        page.update(title=title, version={"number": version, "message": message}, body={"storage": {"value": stored}})
        return dict(page)

    @staticmethod
    def rewrite(body: str) -> str:
        """How the site stores a body it is sent (as it is, here)."""
        return body

    def list_descendants(self, page_id: str, *, depth: int = 5) -> Iterator[dict[str, Any]]:
        if page_id in self.folders:
            raise ConfluenceNotFound(404, "GET", f"/pages/{page_id}/children", None, "not a page")
        level, at = [page_id], 1
        while level and at <= depth:
            below = [p for p in self.pages.values() if p["parentId"] in level]
            yield from ({**p, "depth": at} for p in below)
            level, at = [p["id"] for p in below], at + 1

    #: whether the grant has read:hierarchical-content:confluence (a folder's descendants can be listed)
    hierarchy = False

    def list_tree(self, parent_id: str, *, parent_type: str = "page", depth: int = 2) -> Iterator[dict[str, Any]]:
        if not self.hierarchy:
            raise ConfluenceScopeError(401, "GET", f"/{parent_type}s/{parent_id}/descendants", None, "scope")
        level, at = [parent_id], 1
        while level and at <= depth:
            below = [p for p in self.pages.values() if p["parentId"] in level]
            yield from ({**p, "type": "page", "depth": at} for p in below)
            level, at = [p["id"] for p in below], at + 1

    def delete_page(self, page_id: str, *, dry_run: bool = False, **_: Any) -> dict[str, Any]:
        if not dry_run:
            self.writes.append(f"delete {self.pages[page_id]['title']}")
            del self.pages[page_id]
        return {"id": page_id, "action": "would_trash" if dry_run else "trashed"}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    (tmp_path / "guide").mkdir()
    (tmp_path / "a.md").write_text("# A\nsee [b](guide/b.md)\n")
    (tmp_path / "guide" / "b.md").write_text("# B\ntext\n")
    return tmp_path


def run(client: MemoryClient, docs: Path, **kwargs: Any) -> dict[str, dict[str, Any]]:
    return mirror_plan(client, build_plan(docs), space_id=SPACE, parent_id=ROOT, **kwargs)  # type: ignore[arg-type]


def test_a_dry_run_and_a_run_agree_on_what_is_unchanged(docs):
    client = MemoryClient()
    assert {e["action"] for e in run(client, docs, dry_run=True).values()} == {"create"} and client.writes == []
    assert {e["action"] for e in run(client, docs).values()} == {"created"}
    (docs / "guide" / "b.md").write_text("# B\nnew text\n")
    client.writes.clear()
    preview = run(client, docs, dry_run=True)
    assert client.writes == []
    done = run(client, docs)
    assert {p: e["action"] for p, e in preview.items()} == {
        "a.md": "unchanged",
        "guide/": "unchanged",
        "guide/b.md": "update",
    }
    assert {p: e["action"] for p, e in done.items()} == {
        "a.md": "unchanged",
        "guide/": "unchanged",
        "guide/b.md": "updated",
    }
    assert client.writes == ["update B"]


def test_a_clash_is_refused_before_any_write(docs):
    client = MemoryClient()
    elsewhere = client.add("B", parent="55")
    with pytest.raises(ConfluencePageExists) as caught:
        run(client, docs)
    assert caught.value.page_id == elsewhere["id"] and client.writes == []


def test_delete_missing_under_a_folder_looks_below_the_mirrored_directories(docs):
    client = MemoryClient()
    done = run(client, docs)
    stray = client.add("Stray", parent=done["guide/"]["id"])
    beside = client.add("Beside", parent=ROOT)  # under the folder itself: without the scope, it stays
    client.writes.clear()
    result = run(client, docs, delete_missing=True)
    assert result[f"page:{stray['id']}"]["action"] == "trashed"
    assert client.writes == ["delete Stray"] and beside["id"] in client.pages


def test_delete_missing_under_a_folder_lists_its_descendants_with_the_scope(docs):
    client = MemoryClient()
    client.hierarchy = True
    done = run(client, docs)
    stray = client.add("Stray", parent=done["guide/"]["id"])
    beside = client.add("Beside", parent=ROOT)
    client.writes.clear()
    result = run(client, docs, delete_missing=True)
    assert {result[f"page:{page['id']}"]["action"] for page in (stray, beside)} == {"trashed"}
    assert sorted(client.writes) == ["delete Beside", "delete Stray"]


class RewritingClient(MemoryClient):
    """A site that stores bodies otherwise than they are sent (as Confluence adds ids to macros)."""

    @staticmethod
    def rewrite(body: str) -> str:
        return body.replace("<p>", '<p local-id="x1">')


def test_a_site_that_rewrites_bodies_gets_one_new_version_then_none(docs):
    """The version message's fingerprint of the body sent makes the second re-run write nothing, although the
    stored body never equals the body sent; an edit in Confluence (a version without it) is overwritten again."""
    client = RewritingClient()
    run(client, docs)
    client.writes.clear()
    once = {path: e["action"] for path, e in run(client, docs).items()}  # created without a version message
    assert once == {"a.md": "updated", "guide/": "unchanged", "guide/b.md": "updated"}  # the listing has no <p>
    client.writes.clear()
    assert {e["action"] for e in run(client, docs).values()} == {"unchanged"} and client.writes == []
    assert {e["action"] for e in run(client, docs, dry_run=True).values()} == {"unchanged"}
    page = next(p for p in client.pages.values() if p["title"] == "B")
    page["version"] = {"number": 9, "message": ""}  # someone edited it in Confluence
    page["body"] = {"storage": {"value": "<p>edited</p>"}}
    assert run(client, docs)["guide/b.md"]["action"] == "updated" and client.writes == ["update B"]


# -- resuming after Atlassian's rate limit refused a call -------------------------------------------------


class RefusingClient(MemoryClient):
    """A client whose calls of one kind are refused (429 with ``retry_at``) from the ``after``-th one on, once."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.labels: dict[str, list[str]] = {}

    def _count(self, kind: str) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if kind in self.refuse and self.calls[kind] > self.refuse[kind]:
            del self.refuse[kind]
            raise ConfluenceRateLimited(429, "POST", f"/{kind}", None, "quota", retry_at=1.0e9)

    def find_page(self, **kwargs: Any) -> Any:
        self._count("find")
        return super().find_page(**kwargs)

    def create_page(self, **kwargs: Any) -> Any:
        self._count("create")
        return super().create_page(**kwargs)

    def update_page(self, **kwargs: Any) -> dict[str, Any]:
        self._count("update")
        return super().update_page(**kwargs)

    def delete_page(self, page_id: str, **kwargs: Any) -> dict[str, Any]:
        self._count("delete")
        return super().delete_page(page_id, **kwargs)

    def add_page_labels(self, page_id: str, labels: list[str], *, current: Any = None) -> list[str]:
        self._count("labels")
        self.writes.append(f"label {self.pages[page_id]['title']}")
        self.labels[page_id] = sorted({*self.labels.get(page_id, []), *labels})
        return self.labels[page_id]


def refused(client: RefusingClient, docs: Path, **kwargs: Any) -> dict[str, Any]:
    """Run the mirror until the client refuses a call; the error's ``progress``."""
    with pytest.raises(ConfluenceRateLimited) as caught:
        run(client, docs, **kwargs)
    return caught.value.progress


def test_a_refused_create_resumes_with_the_pages_left_and_reports_them_all(docs):
    client = RefusingClient()
    client.refuse["create"] = 1  # the second page's create is refused
    progress = refused(client, docs)
    assert progress["mirrored"] == {"a.md": {"id": "1001", "title": "A", "action": "created"}}
    assert client.writes == ["create A"]
    client.calls.clear()
    done = run(client, docs, resume=progress)
    assert {p: e["action"] for p, e in done.items()} == {
        "a.md": "created",
        "guide/": "created",
        "guide/b.md": "created",
    }
    assert client.writes == ["create A", "create guide", "create B"]  # each page once
    assert client.calls["find"] == 2 * 2  # the two pages left, looked up (and once more by publish before a create)
    assert client.pages[done["guide/b.md"]["id"]]["parentId"] == done["guide/"]["id"]


def test_labels_refused_after_a_create_are_added_on_resume_and_the_page_is_not_written_again(docs):
    client = RefusingClient()
    client.refuse["labels"] = 0  # the first page is created; its labels are refused
    progress = refused(client, docs, labels=["docs"])
    assert progress["labels_pending"] == ["a.md"] and progress["mirrored"]["a.md"]["action"] == "created"
    done = run(client, docs, labels=["docs"], resume=progress)
    assert [e["action"] for e in done.values()] == ["created"] * 3
    assert client.writes == ["create A", "label A", "create guide", "label guide", "create B", "label B"]
    assert all(labels == ["docs"] for labels in client.labels.values()) and len(client.labels) == 3


def test_delete_missing_resumed_midway_trashes_each_stale_page_once(docs):
    client = RefusingClient()
    first = run(client, docs)
    strays = [client.add(f"Stray {n}", parent=first["guide/"]["id"]) for n in range(3)]
    (docs / "a.md").write_text("# A\nedited, see [b](guide/b.md)\n")
    client.writes.clear()
    client.refuse["delete"] = 1  # the first stray is trashed, the second refused
    progress = refused(client, docs, delete_missing=True)
    assert client.writes == ["update A", f"delete {strays[0]['title']}"]
    done = run(client, docs, delete_missing=True, resume=progress)
    assert client.writes == ["update A"] + [f"delete {stray['title']}" for stray in strays]  # nothing twice
    assert {p: e["action"] for p, e in done.items()} == {
        "a.md": "updated",
        "guide/": "unchanged",
        "guide/b.md": "unchanged",
        **{f"page:{stray['id']}": "trashed" for stray in strays},
    }


def test_a_refused_lookup_resumes_from_what_was_done_and_a_dry_run_records_nothing(docs):
    client = RefusingClient()
    client.refuse["find"] = 1
    assert refused(client, docs, dry_run=True) == {}  # a dry run writes nothing: it reads again
    client.refuse["find"] = 1
    assert refused(client, docs)["mirrored"] == {} and client.writes == []  # refused before any write


def test_a_resume_state_is_checked_entry_by_entry(docs):
    plan = build_plan(docs)
    state = {
        "mirrored": {
            "a.md": {"id": "7", "title": "A", "action": "created"},
            "guide/": {"id": "8", "title": "Renamed", "action": "created"},  # the title changed: looked up again
            "gone.md": {"id": "9", "title": "Gone", "action": "created"},  # not in the plan any more
            "guide/b.md": {"id": "../x", "title": "B", "action": "created"},  # not an id
            "page:10": {"id": "10", "title": "Old", "action": "trashed"},
            "page:11": {"id": "12", "title": "Odd", "action": "trashed"},  # key and id disagree
        },
        "labels_pending": ["a.md", "guide/", 3],
    }
    progress = MirrorProgress.from_resume(state, plan)
    assert progress.pages == {"a.md": {"id": "7", "title": "A", "action": "created"}}
    assert list(progress.trashed) == ["page:10"] and progress.labels_pending == ["a.md"]
    assert MirrorProgress.from_resume(progress.progress(), plan) == progress  # the state survives a round trip
    assert MirrorProgress.from_resume({"mirrored": "nonsense", "labels_pending": "x"}, plan) == MirrorProgress()
