"""The docs stay true to the code: the README and the MkDocs site of ``docs/`` (built by ``make docs``).

``mkdocs build --strict`` (``make docs``, the first step of ``make test``) already fails on a broken link or
anchor, a page missing from the nav, or a snippet whose file is gone. These tests check what it cannot:

* no DAG is written inline: every DAG the docs show is included from ``example_dags/`` with
  ``--8<-- "example_dags/<file>.py"``, and the README's one DAG is byte for byte an ``example_dags/`` file;
* every example DAG is shown somewhere in the docs;
* the README is short, and its relative links (and their anchors) resolve;
* what the docs list matches the code: every operator has its section, every exception its row, every
  connection extra and ``state_store`` value its mention;
* every ``airflow_provider_confluence`` import in a docs code block, and every dotted module path the docs name,
  imports;
* the benchmark chart in the docs is the one ``make bench`` wrote;
* the feature table (``docs/features.md``) has one row per operation of the vendored v2 OpenAPI document, its
  summary adds up, every v2 operation the client calls (``helpers/api_operations.py``, which the contract test
  enforces) is marked covered, and what a covered row names exists.
"""

from __future__ import annotations

import ast
import importlib
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "mkdocs.yml").is_file())
DOCS = REPO / "docs"
README = REPO / "README.md"
EXAMPLE_DAGS = REPO / "example_dags"
#: Markdown files outside docs/ that the site includes whole (docs/security.md, changelog.md, contributing.md).
INCLUDED = [REPO / "SECURITY.md", REPO / "CHANGELOG.md", REPO / "CONTRIBUTING.md"]
README_MAX_BYTES = 12 * 1024

FENCE = re.compile(
    r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
DEFINES_A_DAG = re.compile(r"\bDAG\s*\(|@dag\b|\bwith\s+DAG\b")
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
PACKAGE = "airflow_provider_confluence"


def markdown_files() -> list[Path]:
    return [README, *INCLUDED, *sorted(DOCS.rglob("*.md"))]


def code_blocks(path: Path) -> Iterator[tuple[str, str]]:
    """(info string, body) of every fenced code block of a Markdown file, the body dedented by the fence's indent."""
    for match in FENCE.finditer(path.read_text(encoding="utf-8")):
        indent = len(match["indent"])
        body = "".join(
            line[indent:] if line[:indent].isspace() else line for line in match["body"].splitlines(keepends=True)
        )
        yield match["info"].strip(), body


def snippet_paths(body: str) -> list[str] | None:
    """The files a block includes, when the block is nothing but snippet lines; else None."""
    lines = [line for line in body.splitlines() if line.strip()]
    matches = [SNIPPET.match(line) for line in lines]
    if not lines or not all(matches):
        return None
    return [m["path"] for m in matches if m]


def python_blocks(path: Path) -> Iterator[str]:
    for info, body in code_blocks(path):
        if info.split()[:1] in (["python"], ["py"], ["pycon"]) and snippet_paths(body) is None:
            yield body


# -- DAGs come from example_dags/ ------------------------------------------------------------------------


def test_the_fence_parser_sees_blocks() -> None:
    blocks = list(code_blocks(DOCS / "operators.md"))
    assert len(blocks) > 10
    assert any(snippet_paths(body) == ["example_dags/confluence_publish_report.py"] for _, body in blocks)


@pytest.mark.parametrize("path", [p for p in markdown_files() if p != README], ids=lambda p: p.name)
def test_no_dag_is_written_inline_in_the_docs(path: Path) -> None:
    for _info, body in code_blocks(path):
        included = snippet_paths(body)
        if included is not None:
            for name in included:
                assert (REPO / name).is_file(), f"{path.name} includes {name}, which does not exist"
                if name.endswith(".py"):
                    assert name.startswith("example_dags/"), f"{path.name} includes Python from {name}"
            continue
        assert not DEFINES_A_DAG.search(body), (
            f"{path.name} defines a DAG inline; include it from example_dags/ instead:\n"
            f'```python\n--8<-- "example_dags/<file>.py"\n```\n\n{body[:400]}'
        )


def test_the_readme_shows_one_dag_and_it_is_an_example_dag_byte_for_byte() -> None:
    dags = [body for _, body in code_blocks(README) if DEFINES_A_DAG.search(body)]
    assert len(dags) == 1, f"the README shows {len(dags)} DAGs; it should show exactly one"
    files = {path.name: path.read_text(encoding="utf-8") for path in EXAMPLE_DAGS.glob("*.py")}
    same = [name for name, text in files.items() if text == dags[0]]
    assert same, "the README's DAG is not identical to any file in example_dags/: copy the file as it is"
    assert f"example_dags/{same[0]}" in README.read_text(encoding="utf-8"), "say which file the README's DAG is"


def test_every_example_dag_is_shown_in_the_docs() -> None:
    included = {
        name for path in markdown_files() for _, body in code_blocks(path) for name in snippet_paths(body) or []
    }
    missing = {f"example_dags/{p.name}" for p in EXAMPLE_DAGS.glob("*.py")} - included
    assert not missing, f"example DAGs the docs never show: {sorted(missing)}"


# -- the README -------------------------------------------------------------------------------------------


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; keep it under {README_MAX_BYTES} (move text to docs/)"


def slug(heading: str) -> str:
    """The anchor MkDocs' ``toc`` extension makes of a heading (its default ``slugify``), markup removed."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


def test_slug_matches_mkdocs() -> None:
    assert slug("Where credentials may go: `[confluence] allowed_endpoint_hosts`") == (
        "where-credentials-may-go-confluence-allowed_endpoint_hosts"
    )
    assert slug("2. Create the Airflow connection") == "2-create-the-airflow-connection"


@pytest.mark.parametrize("path", [README, REPO / "CONTRIBUTING.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        where = (path.parent / file) if file else path
        assert where.exists(), f"{path.name} links to {target}, which does not exist"
        if anchor and where.suffix == ".md":
            assert anchor in anchors(where), f"{path.name} links to {target}: no such heading in {file or path.name}"


def test_every_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not {page for page in pages if page not in nav}


# -- what the docs list matches the code ------------------------------------------------------------------


def headings(path: Path, level: int) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return set(re.findall(rf"^{'#' * level} (.+?)\s*$", text, re.MULTILINE))


def test_every_operator_has_its_section() -> None:
    from airflow_provider_confluence.operators import confluence

    sections = headings(DOCS / "operators.md", 2)
    missing = {*confluence.__all__, "ConfluencePageSensor", "ConfluenceNotifier"} - sections
    assert not missing, f"docs/operators.md has no '## Name' section for {sorted(missing)}"
    readme = README.read_text(encoding="utf-8")
    count = {
        1: "One",
        2: "Two",
        3: "Three",
        4: "Four",
        5: "Five",
        6: "Six",
        7: "Seven",
        8: "Eight",
        9: "Nine",
        10: "Ten",
        11: "Eleven",
        12: "Twelve",
        13: "Thirteen",
        14: "Fourteen",
        15: "Fifteen",
        16: "Sixteen",
        17: "Seventeen",
        18: "Eighteen",
    }[len(confluence.__all__)]
    assert f"{count} operators" in readme, f"the README should say how many operators there are: {count}"


def test_every_exception_is_in_the_errors_table() -> None:
    from airflow_provider_confluence import exceptions

    classes = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type)
        and issubclass(value, exceptions.ConfluenceError)
        and value.__module__ == exceptions.__name__
        and not name.startswith("_")
    }
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)`", text, re.MULTILINE))
    assert classes - rows == set(), f"docs/errors.md has no row for {sorted(classes - rows)}"
    assert rows - classes == set(), f"docs/errors.md has rows for classes that do not exist: {sorted(rows - classes)}"


def test_every_connection_extra_is_in_the_connection_table() -> None:
    from airflow_provider_confluence.get_provider_info import CONNECTION_EXTRAS

    text = (DOCS / "connection.md").read_text(encoding="utf-8")
    for name, label, *_ in CONNECTION_EXTRAS:
        assert f"| {label} | Extra | `{name}` |" in text, (
            f"docs/connection.md has no row for the extra {name} ({label})"
        )


def test_every_token_store_value_is_documented() -> None:
    from airflow_provider_confluence.config.connection import TOKEN_STORES

    for page in ("connection.md", "token-stores.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        for value in TOKEN_STORES:
            assert f"`{value}`" in text or f"state_store={value}" in text, f"docs/{page} never names {value!r}"


# -- every import path the docs use imports ---------------------------------------------------------------


def docs_imports() -> list[tuple[str, str, str | None]]:
    """(file, module, name) of every ``airflow_provider_confluence`` import in the docs' Python code blocks."""
    found = []
    for path in markdown_files():
        for body in python_blocks(path):
            tree = ast.parse(body, filename=path.name)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                    found += [(path.name, node.module or "", alias.name) for alias in node.names]
                elif isinstance(node, ast.Import):
                    found += [(path.name, alias.name, None) for alias in node.names if alias.name.startswith(PACKAGE)]
    return found


def test_every_python_block_parses() -> None:
    for path in markdown_files():
        for body in python_blocks(path):
            ast.parse(body, filename=path.name)


def test_every_import_in_the_docs_works() -> None:
    imports = docs_imports()
    assert len(imports) > 10
    for _page, module, name in imports:
        loaded = importlib.import_module(module)
        if name is not None and not hasattr(loaded, name):
            importlib.import_module(f"{module}.{name}")  # a submodule


def test_every_dotted_path_the_docs_name_imports() -> None:
    """`airflow_provider_confluence.x.y` in the text: a module, or an attribute of one; never an old, moved path."""
    from airflow_provider_confluence._moved import MOVED

    for path in [README, *sorted(DOCS.rglob("*.md"))]:
        for dotted in set(re.findall(rf"\b{PACKAGE}(?:\.\w+)+", path.read_text(encoding="utf-8"))):
            relative = dotted.removeprefix(f"{PACKAGE}.")
            old = [m for m in MOVED if relative == m or relative.startswith(f"{m}.")]
            assert not old or path.name == "architecture.md", f"{path.name} names the moved path {dotted}"
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    loaded = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                for attribute in parts[cut:]:
                    assert hasattr(loaded, attribute), f"{path.name} names {dotted}, which does not exist"
                    loaded = getattr(loaded, attribute)
                break


# -- files the docs copy ----------------------------------------------------------------------------------


def test_the_benchmark_chart_is_the_one_make_bench_wrote() -> None:
    assert (DOCS / "images" / "bench-chart.png").read_bytes() == (REPO / "bench" / "results" / "chart.png").read_bytes()


# -- the feature table (docs/features.md) ------------------------------------------------------------------


def test_the_vendored_openapi_document_is_the_one_its_readme_describes() -> None:
    """tests/data/README.md names the document's SHA-256 and its path and operation counts: a replaced file
    without an updated README fails here."""
    import hashlib

    from helpers.feature_table import OPENAPI, document, operations

    readme = (OPENAPI.parent / "README.md").read_text(encoding="utf-8")
    assert f"SHA-256 `{hashlib.sha256(OPENAPI.read_bytes()).hexdigest()}`" in readme
    assert f"{len(document()['paths'])} paths, {len(operations())} operations)" in readme


def test_the_feature_table_has_one_row_per_operation_of_the_openapi_document() -> None:
    from helpers.feature_table import operations, rows

    documented = sorted((r.tag, r.operation_id, r.method, r.path) for r in rows())
    expected = sorted((o.tag, o.operation_id, o.method, o.path) for o in operations())
    assert documented == expected


def test_the_feature_table_summary_adds_up() -> None:
    from helpers.feature_table import rows, summary

    counted: dict[str, tuple[int, int]] = {}
    for row in rows():
        total, covered = counted.get(row.tag, (0, 0))
        counted[row.tag] = (total + 1, covered + row.covered)
    assert summary() == counted
    text = (DOCS / "features.md").read_text(encoding="utf-8")
    assert f"| **All** | **{len(rows())}** | **{sum(r.covered for r in rows())}** |" in text


def test_every_v2_operation_the_client_calls_is_covered_in_the_feature_table() -> None:
    """The client's routes (the contract test refuses any other) are rows marked covered."""
    from helpers.api_operations import CLIENT_V2_ROUTES
    from helpers.feature_table import operation_of_route, rows

    covered = {r.operation_id for r in rows() if r.covered}
    called = {operation_of_route(route).operation_id for route in CLIENT_V2_ROUTES}
    assert called - covered == set(), "mark these covered in docs/features.md"
    assert covered - called == set(), "covered in docs/features.md, but not in helpers/api_operations.py"


def test_a_covered_row_names_what_really_covers_it() -> None:
    """Every `ConfluenceX`, `hook.x` and `client.x` a covered row names exists."""
    from airflow_provider_confluence.client.confluence import ConfluenceClient
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    from airflow_provider_confluence.operators import confluence
    from helpers.feature_table import rows

    classes = {*confluence.__all__, "ConfluenceNotifier", "ConfluencePageSensor"}
    owners = {"hook": ConfluenceOAuthHook, "client": ConfluenceClient}
    for row in (r for r in rows() if r.covered):
        names = re.findall(r"`(Confluence\w+|(?:hook|client)\.\w+)`", row.cell)
        assert names, f"{row.operation_id}: a covered row names what covers it"
        for name in names:
            owner, _, attr = name.partition(".")
            assert (name in classes) if not attr else hasattr(owners[owner], attr), f"{row.operation_id}: {name}"


def test_the_quiet_updates_section_still_matches_the_openapi_document() -> None:
    """docs/operators.md says v2 page updates have no minor-edit flag; fails when Atlassian's document adds one."""
    from helpers.feature_table import document

    update = document()["paths"]["/pages/{id}"]["put"]
    body = document()["components"]["requestBodies"]["PageUpdateRequest"]["content"]["application/json"]["schema"]
    assert set(body["properties"]["version"]["properties"]) == {"number", "message"}
    assert [p["name"] for p in update.get("parameters", [])] == ["id"]
    assert "`updatePage`" in (DOCS / "operators.md").read_text(encoding="utf-8")
