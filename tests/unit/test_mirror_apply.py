"""The mirror applied to an in-memory client (no sockets): the same test of "unchanged" for runs and dry runs,
clashes refused before any write, resumption, and the folder fallback of ``delete_missing``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.content.mirror import mirror_plan
from airflow_provider_confluence.content.mirror_plan import build_plan
from airflow_provider_confluence.exceptions import ConfluenceNotFound, ConfluencePageExists, ConfluenceScopeError

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
