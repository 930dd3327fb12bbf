"""A directory of Markdown as a plan of pages (pure, no network): titles, parents, bodies, relative links, and the
refusals that come before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_confluence.content.mirror_links import page_link, target_path
from airflow_provider_confluence.content.mirror_plan import LISTING_BODY, build_plan, split_front_matter, title_of
from airflow_provider_confluence.exceptions import ConfluenceConfigError


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_titles_come_from_front_matter_then_the_first_heading_then_the_name():
    assert title_of("---\ntitle: 'From front'\nowner: x\n---\n# Heading\ntext\n", "name") == (
        "From front",
        "# Heading\ntext\n",
    )
    assert title_of("intro\n# The heading #\nbody\n", "name") == ("The heading", "intro\nbody\n")
    assert title_of("```\n# not a heading\n```\n## Second level\n", "name")[0] == "name"
    assert title_of("#hashtag is not a heading\n", "name")[0] == "name"
    assert split_front_matter("---\nno end\n# T\n") == (None, "---\nno end\n# T\n")  # unterminated: not front matter


def test_the_plan_puts_parents_first_and_directories_become_pages(tmp_path):
    write(
        tmp_path,
        {
            "b.md": "# Bee\nsee [a](a.md) and [the guide](guide/) and [setup](guide/setup.md#install)\n",
            "a.md": "no heading\n",
            "guide/index.md": "---\ntitle: Guide\n---\nback to [bee](../b.md)\n",
            "guide/setup.md": "# Setup\n[missing](nope.md) [site](https://example.com/x.md) ![c](chart.png)\n",
            "ref/deep/t.md": "# Deep table\n",
            "empty/notes.txt": "not markdown",
            ".hidden/x.md": "# Hidden\n",
            "_drafts.md": "# Draft\n",
        },
    )
    plan = build_plan(tmp_path)
    assert [(p.path, p.title, p.parent, p.source) for p in plan.pages] == [
        ("a.md", "a", None, "a.md"),
        ("b.md", "Bee", None, "b.md"),
        ("guide/", "Guide", None, "guide/index.md"),
        ("guide/setup.md", "Setup", "guide/", "guide/setup.md"),
        ("ref/", "ref", None, None),
        ("ref/deep/", "deep", "ref/", None),
        ("ref/deep/t.md", "Deep table", "ref/deep/", "ref/deep/t.md"),
    ]
    bodies = {p.path: p.body for p in plan.pages}
    assert bodies["ref/"] == LISTING_BODY
    assert page_link("a", "a") in bodies["b.md"] and page_link("Guide", "the guide") in bodies["b.md"]
    assert page_link("Setup", "setup", "install") in bodies["b.md"]
    assert page_link("Bee", "bee") in bodies["guide/"]
    setup = bodies["guide/setup.md"]
    assert '<a href="https://example.com/x.md">site</a>' in setup  # another site: kept
    assert '<a href="nope.md">missing</a>' in setup and '<img src="chart.png"' in setup  # left for later steps
    assert plan.unresolved_links == {"guide/setup.md": ["nope.md"]}
    assert "<h1>" not in bodies["b.md"]  # the heading became the title


def test_a_readme_is_the_body_unless_there_is_an_index(tmp_path):
    write(tmp_path, {"one/README.md": "# One\n", "two/index.md": "# Two\n", "two/README.md": "# Two readme\n"})
    plan = build_plan(tmp_path)
    assert [(p.path, p.title) for p in plan.pages] == [
        ("one/", "One"),
        ("two/", "Two"),
        ("two/README.md", "Two readme"),
    ]
    titles = plan.titles()
    assert target_path("../two/README.md", "one/x.md", titles)[0] == "two/README.md"
    assert target_path("../one/README.md", "two/x.md", titles)[0] == "one/"
    assert target_path("../../outside.md", "one/x.md", titles) == (None, None, True)


def test_titles_shared_by_two_entries_are_refused_before_anything_is_sent(tmp_path):
    write(tmp_path, {"a.md": "# Same\n", "sub/b.md": "---\ntitle: Same\n---\n", "sub/c.md": "# Other\n"})
    with pytest.raises(ConfluenceConfigError) as caught:
        build_plan(tmp_path)
    assert "'Same' (a.md and sub/b.md)" in str(caught.value) and "Nothing was sent" in str(caught.value)


def test_bad_directories_are_refused(tmp_path):
    with pytest.raises(ConfluenceConfigError, match="not a directory"):
        build_plan(tmp_path / "missing")
    write(tmp_path, {"notes.txt": "x"})
    with pytest.raises(ConfluenceConfigError, match="no Markdown"):
        build_plan(tmp_path)
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfluenceConfigError, match="not UTF-8"):
        build_plan(tmp_path)


def test_symbolic_links_are_not_followed(tmp_path):
    outside = write(tmp_path / "outside", {"secret.md": "# Secret\n"})
    docs = write(tmp_path / "docs", {"a.md": "# A\n"})
    (docs / "linked").symlink_to(outside, target_is_directory=True)
    (docs / "linked.md").symlink_to(outside / "secret.md")
    assert [p.path for p in build_plan(docs).pages] == ["a.md"]


def test_link_text_and_titles_are_escaped(tmp_path):
    write(tmp_path, {"a.md": "[<b>&](b.md)\n", "b.md": '# Tom & "Jerry" <x>\n'})
    body = build_plan(tmp_path).pages[0].body
    assert 'ri:content-title="Tom &amp; &quot;Jerry&quot; &lt;x&gt;"' in body
    assert "<ac:link-body>&lt;b&gt;&amp;</ac:link-body>" in body
