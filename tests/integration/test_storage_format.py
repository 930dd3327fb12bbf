"""Markdown and tables to storage format: escaping rules, hypothesis properties, and pages on the emulator."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.tokens import MemoryTokenStore, TokenManager, TokenState
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.content.storage_format import (
    BODY_REPRESENTATIONS,
    code_macro,
    escape_text,
    markdown_to_storage,
    table_to_storage,
    to_storage,
)
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.testing import FakeAtlassian
from airflow_provider_confluence.testing.bodies import check_storage

pytestmark = pytest.mark.airflow2
#: reproducible runs that write no example database into the checkout (as in test_fuzz.py)
PROPS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])

AC = "{http://atlassian.com/content}"
NASTY = [
    "<script>alert(1)</script>",
    "a & b",
    "]]>",
    "x]]>y<![CDATA[z",
    "\"quoted\" 'single'",
    "tab\tcr\rlf\n",
    "\x00\x01\x08\x0b\x0c\x1f\ufffe\uffff",
    "&nbsp; &amp; &#0; &#x1;",
    "\U0001f600 é ∑",
    "\udc80lone",
]
# st.characters() excludes surrogates by default; these are the characters XML refuses or parsers normalize
TEXT = st.lists(
    st.one_of(st.characters(), st.sampled_from(["\x00", "\x0b", "\r", "\r\n", "\ufffe", "]]>", "<", "&"])), max_size=40
).map("".join)


def parse(value: str) -> ElementTree.Element:
    """Plain XML parse of a fragment with Confluence's prefixes (no HTML entities: we never emit any)."""
    return ElementTree.fromstring(
        f'<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">'
        f"{value}</root>"
    )


def xml_legal(text: str) -> str:
    """``text`` without the characters outside XML 1.0's Char production."""
    return "".join(
        c for c in text if c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or ord(c) >= 0x10000
    )


def valid(value: str) -> ElementTree.Element:
    check_storage(value)  # what the emulator (and Confluence) accept
    return parse(value)


def cells(storage: str) -> list[list[str]]:
    return [["".join(cell.itertext()) for cell in row] for row in valid(storage).iter("tr")]


def code_text(storage: str) -> list[str]:
    return ["".join(body.itertext()) for body in valid(storage).iter(f"{AC}plain-text-body")]


# ------------------------------------------------------------------------------------------------- escape_text
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<script>", "&lt;script&gt;"),
        ("a & b", "a &amp; b"),
        ("]]>", "]]&gt;"),
        ("\"'", "&quot;&#x27;"),
        ("cr\rlf\n", "cr&#13;lf\n"),
        ("\x00a\x1fb\x0bc\ufffed\uffff\udc80", "abcd"),
        (42, "42"),
        (None, "None"),
    ],
)
def test_escape_text(value: object, expected: str) -> None:
    assert escape_text(value) == expected


@given(TEXT)
@PROPS
@example("\udc80\ud800x")
def test_escaped_text_parses_back_to_itself_inside_elements_and_attributes(text: str) -> None:
    escaped = escape_text(text)
    root = valid(f'<p title="{escaped}">{escaped}</p>')
    assert "".join(root.itertext()) == xml_legal(text)
    if "\t" not in text and "\n" not in text:  # XML normalizes raw whitespace in attributes to spaces
        assert root[0].get("title") == xml_legal(text)


# ---------------------------------------------------------------------------------------------- code macro
def test_code_macro_shape() -> None:
    out = code_macro('print("<b>")', "python")
    assert out == (
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">python</ac:parameter>'
        '<ac:plain-text-body><![CDATA[print("<b>")]]></ac:plain-text-body></ac:structured-macro>'
    )
    assert "ac:parameter" not in code_macro("x")
    assert "ac:parameter" not in code_macro("x", "")


def test_code_macro_splits_cdata_end_and_normalizes_line_ends() -> None:
    out = code_macro("a]]>b]]>\r\nc\rd\x00", "<x>")
    assert "]]]]><![CDATA[>" in out
    assert code_text(out) == ["a]]>b]]>\nc\nd"]
    language = valid(out).find(f".//{AC}parameter")
    assert language is not None and language.text == "<x>"


@given(TEXT)
@PROPS
@example("]]]]>>]]>")
def test_any_code_parses_back_from_the_macro(code: str) -> None:
    assert code_text(code_macro(code, "sql")) == [xml_legal(code).replace("\r\n", "\n").replace("\r", "\n")]


# ------------------------------------------------------------------------------------------------ Markdown
def test_markdown_basics() -> None:
    out = markdown_to_storage("# T\n\n*a* **b** ~~c~~ `d`\n\n- x\n\n1. y\n\n> q\n\n---\n\nl1  \nl2\n")
    root = valid(out)
    assert [e.tag for e in root] == ["h1", "p", "ul", "ol", "blockquote", "hr", "p"]
    assert [e.tag for e in root[1]] == ["em", "strong", "s", "code"]
    assert "<hr />" in out and "<br />" in out  # xhtmlOut


def test_markdown_gfm_table() -> None:
    out = markdown_to_storage("| a | b |\n|:--|--:|\n| 1 | <i> & |\n")
    assert cells(out) == [["a", "b"], ["1", "<i> &"]]
    assert valid(out).find(".//th").get("style") == "text-align:left"


def test_raw_html_is_shown_as_text() -> None:
    out = markdown_to_storage("<script>alert(1)</script>\n\nhi <b onclick='x'>there</b> ]]>")
    root = valid(out)
    assert root.find(".//script") is None and root.find(".//b") is None
    assert "<script>alert(1)</script>" in "".join(root.itertext())
    assert "]]>" in "".join(root.itertext())


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a?b=1&c=2",
        "http://x.org",
        "mailto:a@b.c",
        "../rel/page",
        "/wiki/spaces/X",
        "#anchor",
        "HTTPS://X.ORG",
    ],
)
def test_safe_links_are_kept(url: str) -> None:
    link = valid(markdown_to_storage(f"[go]({url})")).find(".//a")
    assert link is not None and link.text == "go"
    assert link.get("href").lower() == url.lower()


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "vbscript:x",
        "data:text/html,x",
        "file:///etc/passwd",
        "ftp://x.org/f",
    ],
)
def test_unsafe_links_stay_text(url: str) -> None:
    root = valid(markdown_to_storage(f"[go]({url}) <{url}>\n\n[ref]\n\n[ref]: {url}"))
    assert root.find(".//a") is None
    assert f"[go]({url})" in "".join(root.itertext())


def test_images_keep_escaped_src_and_alt_and_unsafe_ones_stay_text() -> None:
    root = valid(
        markdown_to_storage(
            '![a <b> & "c"](https://img.example/p.png?x=1&y=2 "t")\n\n'
            "![x](javascript:alert(1)) ![y](data:image/png;base64,AAAA)"
        )
    )
    images = list(root.iter("img"))
    assert len(images) == 1
    assert images[0].get("src") == "https://img.example/p.png?x=1&y=2"
    assert images[0].get("alt") == 'a <b> & "c"' and images[0].get("title") == "t"


def test_fenced_and_indented_code_become_code_macros() -> None:
    out = markdown_to_storage('```python extra words\nx = "]]>" & 1 < 2\n```\n\n    indented\n    <b>\n')
    macros = list(valid(out).iter(f"{AC}structured-macro"))
    assert [m.get(f"{AC}name") for m in macros] == ["code", "code"]
    assert [p.text for p in macros[0].iter(f"{AC}parameter")] == ["python"]
    assert list(macros[1].iter(f"{AC}parameter")) == []
    assert code_text(out) == ['x = "]]>" & 1 < 2', "indented\n<b>"]
    assert valid(out).find(".//pre") is None


def test_markdown_must_be_a_string() -> None:
    with pytest.raises(ConfluenceConfigError, match="must be a string, not list.*table"):
        markdown_to_storage([{"a": 1}])  # type: ignore[arg-type]


MARKDOWN_PIECES = st.sampled_from(
    [
        "# ",
        "*",
        "**",
        "~~",
        "`",
        "```",
        "\n",
        "\n\n",
        "| a |\n|---|\n",
        "[x](",
        ")",
        "![i](",
        "<",
        ">",
        "&",
        "]]>",
        "javascript:",
        "http://h/",
        "    ",
        "- ",
        "1. ",
        "\\",
        "&amp;",
        "&#0;",
        "\x00",
        "\r",
        "\x0c",
    ]
)
ALLOWED_TAGS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "em",
    "strong",
    "s",
    "code",
    "a",
    "img",
    "br",
    "hr",
    "ul",
    "ol",
    "li",
    "blockquote",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "root",
    f"{AC}structured-macro",
    f"{AC}parameter",
    f"{AC}plain-text-body",
}


@given(st.lists(st.one_of(MARKDOWN_PIECES, TEXT), max_size=30).map("".join))
@settings(PROPS, max_examples=300)
def test_any_markdown_is_valid_storage_with_only_safe_tags_and_links(text: str) -> None:
    root = valid(markdown_to_storage(text))
    assert {e.tag for e in root.iter()} <= ALLOWED_TAGS
    for link in root.iter("a"):
        scheme = re.match(r"([a-z][a-z0-9+.\-]*):", link.get("href", "").lower())
        assert scheme is None or scheme.group(1) in ("http", "https", "mailto")


@given(st.text(st.characters(exclude_characters="`")), TEXT)
@PROPS
@example("x]]>y\r\nz\x0b", "")
def test_fenced_code_parses_back_to_its_text(code: str, noise: str) -> None:
    line = "text " + noise.replace("\r", " ").replace("\n", " ")  # a paragraph line before the fence
    out = markdown_to_storage(f"{line}\n\n```sql\n{code}\n```\n")
    expected = xml_legal(code).replace("\r\n", "\n").replace("\r", "\n")
    assert code_text(out) == [expected]


# -------------------------------------------------------------------------------------------------- tables
def test_table_columns_are_the_union_of_keys_in_first_seen_order() -> None:
    out = table_to_storage([{"b": 1, "a": 2}, {"c": 3, "a": 4}])
    assert out.startswith("<table><tbody><tr><th>b</th><th>a</th><th>c</th></tr>")
    assert cells(out) == [["b", "a", "c"], ["1", "2", ""], ["", "4", "3"]]
    assert [e.tag for e in valid(out).find(".//tr")] == ["th", "th", "th"]


def test_table_columns_argument_selects_and_orders() -> None:
    assert cells(table_to_storage([{"a": 1, "b": 2}], columns=["b", "zz"])) == [["b", "zz"], ["2", ""]]


def test_cell_values() -> None:
    row = {
        "none": None,
        "nan": math.nan,
        "t": True,
        "f": False,
        "int": 7,
        "float": 1.5,
        "dec": decimal.Decimal("2.50"),
        "date": dt.date(2024, 5, 1),
        "ts": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
        "nested": {"k": [1, "é", None, dt.date(2024, 1, 2)]},
        "tuple": (1, 2),
        "bytes": b"ab\xff",
        "html": "<b>&amp;</b>",
        3: "int key",
    }
    assert cells(table_to_storage([row]))[1] == [
        "",
        "",
        "true",
        "false",
        "7",
        "1.5",
        "2.50",
        "2024-05-01",
        "2024-05-01T12:30:00+00:00",
        '{"k":[1,"é",null,"2024-01-02"]}',
        "[1,2]",
        "ab\ufffd",
        "<b>&amp;</b>",
        "int key",
    ]
    assert cells(table_to_storage([row]))[0][-1] == "3"


def test_json_string_of_rows() -> None:
    assert cells(table_to_storage('[{"a": 1, "b": [true]}, {"a": null}]')) == [["a", "b"], ["1", "[true]"], ["", ""]]


@pytest.mark.parametrize("rows", [[], "", "  ", "[]", (), iter([]), None])
def test_empty_tables_are_refused_clearly(rows: object) -> None:
    with pytest.raises(ConfluenceConfigError, match="empty|no rows|is None") as info:
        table_to_storage(rows)
    assert "pass" in info.value.message


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ("[{'a': 1}]", r"got str \(not JSON\)"),  # a template rendered a Python list as text
        ("not json", r"got str \(not JSON\)"),
        ('{"a": 1}', r"got str \(JSON of a dict,"),
        ("[1, 2]", r"got str \(a row is of type int"),
        ([1, 2], r"got list \(a row is of type int"),
        ([{"a": 1}, "b"], r"got list \(a row is of type str"),
        ({"a": 1}, r"got dict \(a single mapping; wrap one row in a list"),
        (42, r"got int \(not a sequence"),
    ],
)
def test_non_tabular_input_names_the_type_and_suggests_native_rendering(rows: object, named: str) -> None:
    with pytest.raises(ConfluenceConfigError, match=named) as info:
        table_to_storage(rows)
    assert "render_template_as_native_obj=True" in info.value.message and "XComArg" in info.value.message


def test_rows_without_columns_and_bad_columns_are_refused() -> None:
    with pytest.raises(ConfluenceConfigError, match="no columns"):
        table_to_storage([{}, {}])
    with pytest.raises(ConfluenceConfigError, match="no columns"):
        table_to_storage([{"a": 1}], columns=[])
    with pytest.raises(ConfluenceConfigError, match="list of column names"):
        table_to_storage([{"a": 1}], columns="a,b")  # type: ignore[arg-type]


KEYS = st.one_of(TEXT, st.integers())
CELLS = st.one_of(TEXT, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True))


@given(st.lists(st.dictionaries(KEYS, CELLS, min_size=1, max_size=4), min_size=1, max_size=5))
@settings(PROPS, max_examples=200)
def test_any_rows_give_valid_storage_whose_cells_parse_back(rows: list[dict[Any, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return xml_legal(value if isinstance(value, str) else str(value))

    assert cells(table_to_storage(rows)) == [[text(k) for k in keys]] + [
        [text(row.get(k)) for k in keys] for row in rows
    ]


# ---------------------------------------------------------------------------------------------------- pandas
def test_a_real_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "name": ["<a>", "b & c", None],
            "n": [1, 2, 3],
            "x": [1.5, math.nan, 3.0],
            "ok": [True, False, True],
            "when": [pd.Timestamp("2024-05-01"), pd.NaT, pd.Timestamp("2024-05-03 10:00")],
            "maybe": pd.array([1, None, 3], dtype="Int64"),
        },
        index=["r1", "r2", "r3"],
    )
    assert cells(table_to_storage(frame)) == [
        ["name", "n", "x", "ok", "when", "maybe"],
        ["<a>", "1", "1.5", "true", "2024-05-01T00:00:00", "1"],
        ["b & c", "2", "", "false", "", ""],
        ["", "3", "3.0", "true", "2024-05-03T10:00:00", "3"],
    ]
    assert cells(table_to_storage(frame.reset_index()))[0][0] == "index"
    assert cells(table_to_storage(frame, columns=["n"])) == [["n"], ["1"], ["2"], ["3"]]
    with pytest.raises(ConfluenceConfigError, match="no rows"):
        table_to_storage(frame.iloc[0:0])
    with pytest.raises(ConfluenceConfigError, match=r"got Series \(a pandas Series; pass series.to_frame\(\)"):
        table_to_storage(frame["n"])


# ------------------------------------------------------------------------------------------------ to_storage
def test_to_storage() -> None:
    assert BODY_REPRESENTATIONS == ("storage", "atlas_doc_format", "wiki", "markdown", "table")
    assert to_storage("<p>x</p>", "storage") == ("storage", "<p>x</p>")
    assert to_storage("h1. x", "wiki") == ("wiki", "h1. x")
    assert to_storage('{"type":"doc"}', "atlas_doc_format") == ("atlas_doc_format", '{"type":"doc"}')
    assert to_storage("*x*", "markdown") == ("storage", "<p><em>x</em></p>\n")
    assert to_storage([{"a": 1}], "table") == ("storage", table_to_storage([{"a": 1}]))
    with pytest.raises(ConfluenceConfigError, match="Unknown body representation 'html'.*markdown, table"):
        to_storage("x", "html")
    with pytest.raises(ConfluenceConfigError, match="storage body must be a string, not list.*'table'"):
        to_storage([{"a": 1}], "storage")


def test_importing_storage_imports_neither_markdown_it_nor_pandas() -> None:
    code = (
        "import sys, airflow_provider_confluence.content.storage_format as s; s.to_storage('x', 'storage'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('markdown_it', 'pandas', 'numpy', 'airflow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------- pages on the emulator
@pytest.fixture
def client(fake_atlassian: FakeAtlassian) -> Iterator[ConfluenceClient]:
    """A real client with a real token manager, on the emulator over loopback."""
    fake = fake_atlassian
    session = requests.Session()

    def refresh(refresh_token: str) -> oauth.TokenResponse:
        return oauth.refresh(
            session,
            token_url=fake.token_url,
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            refresh_token=refresh_token,
            timeout=10,
        )

    tokens = TokenManager(store=MemoryTokenStore(TokenState(refresh_token=fake.issue_grant())), refresh=refresh)
    yield ConfluenceClient(
        api_url=fake.api_url, cloud_id=fake.cloud_id, tokens=tokens, site_url=fake.site_url, session=session
    )
    session.close()


NASTY_MARKDOWN = "\n\n".join(
    [
        "# Report <script>alert(1)</script> & ]]>",
        "| col <b> | x |\n|---|---|\n| ]]> | \x01&nbsp; |",
        "```python\nprint(']]>') # <!-- & -->\r\n```",
        "[bad](javascript:alert(1)) [ok](https://x.org/?a=1&b=2)",
        '![img "alt"](https://img.example/a.png)',
        "\x00\x0b\ufffe end",
    ]
)


def test_pages_with_converted_bodies_are_accepted_and_read_back(
    client: ConfluenceClient, fake_atlassian: FakeAtlassian
) -> None:
    space_id = fake_atlassian.add_space("STO")["id"]
    bodies = {
        "markdown": to_storage(NASTY_MARKDOWN, "markdown"),
        "table": to_storage([{"<th>": value, "n": i} for i, value in enumerate(NASTY)], "table"),
        "json table": to_storage(json.dumps([{"a]]>": "\x00<x>"}]), "table"),
    }
    for title, (representation, value) in bodies.items():
        page = client.create_page(space_id=space_id, title=title, body=value, representation=representation)
        stored = client.get_page(page["id"], body_format="storage")["body"]["storage"]["value"]
        assert stored == value
    assert cells(bodies["table"][1])[1:] == [[xml_legal(v), str(i)] for i, v in enumerate(NASTY)]


@given(st.lists(TEXT, min_size=1, max_size=3))
@settings(PROPS, max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_any_cells_and_code_survive_the_emulator(
    client: ConfluenceClient, fake_atlassian: FakeAtlassian, texts: list[str]
) -> None:
    space_id = (
        next((s["id"] for s in fake_atlassian.spaces if s["key"] == "HYP"), None)
        or fake_atlassian.add_space("HYP")["id"]
    )
    body = table_to_storage([{"v": t} for t in texts]) + "".join(code_macro(t) for t in texts)
    page = client.create_page(space_id=space_id, title=f"p{next(_TITLES)}", body=body)
    stored = client.get_page(page["id"], body_format="storage")["body"]["storage"]["value"]
    assert cells(stored)[1:] == [[xml_legal(t)] for t in texts]
    assert code_text(stored) == [xml_legal(t).replace("\r\n", "\n").replace("\r", "\n") for t in texts]


_TITLES = itertools.count()
