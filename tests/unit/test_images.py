"""Images shown inside a page (content/images.py, the attachment-image markup, the unchanged-attachment check).

No sockets: sources are read from a temporary folder, the client runs over requests-mock, and the figure is a
duck-typed stand-in (a real Matplotlib figure is drawn in tests/integration/test_chart_report.py).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests_mock as rm

from airflow_provider_confluence.client.attachments import content_sha256, digest_comment, recorded_sha256
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.content.images import (
    figure_png,
    image_bytes,
    markdown_image_targets,
    prepare_images,
    sniff_media_type,
)
from airflow_provider_confluence.content.storage_format import attachment_image, markdown_to_storage
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.retry import RetryPolicy

pytestmark = pytest.mark.airflow2

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
GW = "https://api.example.test/ex/confluence/cloud-1"
LISTING = f"{GW}/wiki/api/v2/pages/9001/attachments"
UPLOAD = f"{GW}/wiki/rest/api/content/9001/child/attachment"


class FakeFigure:
    """Anything with a Matplotlib-like savefig: what the provider accepts as a figure."""

    def __init__(self, payload: bytes = PNG) -> None:
        self.payload = payload
        self.calls: list[dict[str, Any]] = []

    def savefig(self, target: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        target.write(self.payload)


# --------------------------------------------------------------------------------------------- sources
def test_every_kind_of_source_gives_the_image_bytes(tmp_path: Path) -> None:
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "a.png").write_bytes(PNG)
    encoded = base64.b64encode(PNG).decode()
    figure = FakeFigure()
    sources: dict[str, object] = {
        "bytes": PNG,
        "bytearray": bytearray(PNG),
        "base64": encoded,
        "base64 with line breaks": "\n".join([encoded[:10], encoded[10:]]),
        "data uri": f"data:image/png;base64,{encoded}",
        "text path": "charts/a.png",
        "Path": Path("charts") / "a.png",
        "figure": figure,
        "function": lambda: FakeFigure(),
    }
    for name, source in sources.items():
        assert image_bytes(source, name=name, image_dir=str(tmp_path)) == PNG, name
    assert figure.calls == [{"format": "png", "metadata": {"Software": None}}]


def test_a_figure_whose_savefig_takes_no_metadata_is_saved_without_it() -> None:
    class Plain:
        def savefig(self, target: Any, format: str) -> None:  # noqa: A002 - Matplotlib's name
            target.write(PNG)

    assert figure_png(Plain()) == PNG


@pytest.mark.parametrize(
    ("source", "words"),
    [
        (object(), "is a object"),
        (b"", "empty"),
        ("charts/a.png", "without image_dir"),
        ("data:image/png;base64,@@@", "invalid base64"),
    ],
)
def test_unusable_sources_are_refused_with_what_to_do(source: object, words: str) -> None:
    with pytest.raises(ConfluenceConfigError) as caught:
        image_bytes(source, name="x.png")
    assert words in str(caught.value)


def test_paths_that_escape_the_image_folder_are_refused(tmp_path: Path) -> None:
    base = tmp_path / "images"
    base.mkdir()
    (tmp_path / "secret.txt").write_bytes(b"do not publish")
    os.symlink(tmp_path / "secret.txt", base / "link.png")
    for escaping in ("../secret.txt", str(tmp_path / "secret.txt"), "link.png", "~/secret.txt"):
        with pytest.raises(ConfluenceConfigError) as caught:
            image_bytes(escaping, name="x", image_dir=str(base))
        assert "nothing was published" in str(caught.value), escaping
    with pytest.raises(ConfluenceConfigError, match="not a file"):
        image_bytes("missing.png", name="x", image_dir=str(base))


def test_the_image_folder_must_lie_under_the_deployments_attachment_roots(tmp_path: Path) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (other / "a.png").write_bytes(PNG)
    with pytest.raises(ConfluenceConfigError, match="attachment_roots"):
        image_bytes("a.png", name="a", image_dir=str(other), attachment_roots=str(allowed))
    (allowed / "a.png").write_bytes(PNG)
    assert image_bytes("a.png", name="a", image_dir=str(allowed), attachment_roots=str(allowed)) == PNG


def test_media_types_are_sniffed_from_the_bytes() -> None:
    assert [sniff_media_type(data) for data in (PNG, b"\xff\xd8\xff\xe0", b"GIF89a", b"<svg/>", b"a,b\n")] == [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/svg+xml",
        None,
    ]


# --------------------------------------------------------------------------------------------- Markdown
def test_relative_markdown_images_are_found_once_each_in_order() -> None:
    text = "![a](b.png) text ![c](<my chart.png>)\n\n| t |\n|---|\n| ![d](b.png) |\n\n![e](https://x.test/e.png) ![f](/f.png)"
    assert markdown_image_targets(text) == ["b.png", "my chart.png"]


def test_prepare_maps_each_markdown_target_to_its_attachment(tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "on-disk.png").write_bytes(PNG + b"disk")
    markdown = "![Volume](chart.png)\n\n![Disk](plots/on-disk.png)"
    prepared = prepare_images({"chart.png": FakeFigure()}, markdown=markdown, image_dir=str(tmp_path))
    assert dict(prepared.names) == {"chart.png": "chart.png", "plots/on-disk.png": "on-disk.png"}
    assert [(f.filename, f.media_type, f.data) for f in prepared.files] == [
        ("chart.png", "image/png", PNG),
        ("on-disk.png", "image/png", PNG + b"disk"),
    ]
    body = markdown_to_storage(markdown, attachments=prepared.names)
    assert '<ac:image ac:alt="Volume"><ri:attachment ri:filename="chart.png" /></ac:image>' in body
    assert '<ri:attachment ri:filename="on-disk.png" />' in body


def test_markdown_targets_are_read_relative_to_the_markdown_files_folder(tmp_path: Path) -> None:
    """How a mirror of a Markdown tree reuses it: the tree is image_dir, the file's folder is markdown_dir."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "reports" / "2026").mkdir(parents=True)
    (tmp_path / "shared" / "logo.png").write_bytes(PNG)
    (tmp_path.parent / "outside.png").write_bytes(PNG)
    prepared = prepare_images(
        None, markdown="![logo](../../shared/logo.png)", image_dir=str(tmp_path), markdown_dir="reports/2026"
    )
    assert [(f.filename, f.data) for f in prepared.files] == [("logo.png", PNG)]
    assert dict(prepared.names) == {"../../shared/logo.png": "logo.png"}
    with pytest.raises(ConfluenceConfigError, match="outside the image folder"):
        prepare_images(
            None, markdown="![x](../../../outside.png)", image_dir=str(tmp_path), markdown_dir="reports/2026"
        )


def test_a_markdown_image_nothing_provides_fails_before_anything_is_sent() -> None:
    with pytest.raises(ConfluenceConfigError, match="'missing.png', which images does not provide"):
        prepare_images({"chart.png": PNG}, markdown="![a](chart.png) ![b](missing.png)")


def test_two_images_with_one_attachment_name_are_refused() -> None:
    with pytest.raises(ConfluenceConfigError, match="both be attached as 'c.png'"):
        prepare_images({"a/c.png": PNG, "b/c.png": PNG + b"other"})


def test_without_images_the_markdown_is_converted_as_before() -> None:
    assert not prepare_images(None, markdown="![a](chart.png)")
    assert markdown_to_storage("![a](chart.png)") == '<p><img src="chart.png" alt="a" /></p>\n'


def test_the_attachment_image_markup_escapes_what_it_is_given() -> None:
    assert attachment_image('a"<b>.png', alt="x & y", title="t") == (
        '<ac:image ac:alt="x &amp; y" ac:title="t"><ri:attachment ri:filename="a&quot;&lt;b&gt;.png" /></ac:image>'
    )


def test_the_provider_never_imports_matplotlib() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_confluence.content.images, airflow_provider_confluence.content.publish_images\n"
        "import airflow_provider_confluence.operators.confluence\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------------------- the unchanged check
class Tokens:
    def get_access_token(self) -> str:
        return "at-IMAGES-token"

    def refresh_rejected(self, rejected_token: str) -> str:
        return "at-IMAGES-token-2"

    def access_token_expired(self) -> bool:
        return False


@pytest.fixture
def client() -> ConfluenceClient:
    return ConfluenceClient(
        api_url="https://api.example.test",
        cloud_id="cloud-1",
        tokens=Tokens(),
        site_url="https://acme.atlassian.net",
        retry=RetryPolicy(rng=random.Random(3)),
        sleep=lambda _: None,
    )


def listed(comment: str = "", size: int = len(PNG)) -> dict[str, Any]:
    return {
        "id": "att5",
        "title": "chart.png",
        "comment": comment,
        "fileSize": size,
        "version": {"number": 3},
        "downloadLink": "/download/attachments/9001/chart.png?version=3",
    }


UPLOADED = {"results": [{"id": "att5", "title": "chart.png", "version": {"number": 4}}]}


def test_the_digest_is_recorded_in_the_comment_and_read_back() -> None:
    digest = hashlib.sha256(PNG).hexdigest()
    assert content_sha256(PNG) == digest
    assert recorded_sha256({"comment": digest_comment(digest)}) == digest
    assert recorded_sha256({"extensions": {"comment": digest_comment(digest)}}) == digest
    assert recorded_sha256({"comment": "made by hand"}) is None


def test_same_bytes_by_recorded_digest_upload_nothing(client: ConfluenceClient) -> None:
    with rm.Mocker() as mock:
        mock.get(LISTING, json={"results": [listed(digest_comment(content_sha256(PNG)))]})
        attachment, uploaded = client.sync_attachment("9001", filename="chart.png", data=PNG)
    assert (uploaded, attachment["id"]) == (False, "att5")
    assert [r.method for r in mock.request_history] == ["GET"]


def test_other_bytes_are_uploaded_with_their_digest(client: ConfluenceClient) -> None:
    with rm.Mocker() as mock:
        mock.get(LISTING, json={"results": [listed(digest_comment("0" * 64))]})
        mock.put(UPLOAD, json=UPLOADED)
        _, uploaded = client.sync_attachment("9001", filename="chart.png", data=PNG, media_type="image/png")
    assert uploaded is True
    assert f"sha256:{content_sha256(PNG)}".encode() in mock.request_history[-1].body


def test_an_attachment_without_a_digest_is_compared_by_size_then_by_its_bytes(client: ConfluenceClient) -> None:
    with rm.Mocker() as mock:  # another size: uploaded without downloading
        mock.put(UPLOAD, json=UPLOADED)
        assert client.sync_attachment("9001", filename="c.png", data=PNG, existing=listed(size=1), listed=True)[1]
        assert [r.method for r in mock.request_history] == ["PUT"]
    with rm.Mocker() as mock:  # the same size: downloaded once, found equal, not uploaded
        mock.get(f"{GW}/wiki/download/attachments/9001/chart.png", content=PNG)
        assert not client.sync_attachment("9001", filename="c.png", data=PNG, existing=listed(), listed=True)[1]
        assert [r.method for r in mock.request_history] == ["GET"]
