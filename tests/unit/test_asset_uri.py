"""The ``confluence://<site host>/pages/<id>`` asset URI: normalising, refusing, and its provider-info entries."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

import pytest

from airflow_provider_confluence.assets.uri import page_asset_uri, page_id_of, sanitize_uri
from airflow_provider_confluence.get_provider_info import get_provider_info

pytestmark = pytest.mark.airflow2


def normalised(uri: str) -> str:
    return sanitize_uri(urlsplit(uri)).geturl()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("confluence://your-site.atlassian.net/pages/123", "confluence://your-site.atlassian.net/pages/123"),
        ("confluence://Your-Site.Atlassian.NET/pages/123", "confluence://your-site.atlassian.net/pages/123"),
        ("confluence://your-site.atlassian.net:443/pages/123/", "confluence://your-site.atlassian.net/pages/123"),
        ("confluence://your-site.atlassian.net:80/pages/123", "confluence://your-site.atlassian.net/pages/123"),
        ("confluence://127.0.0.1:8443/pages/9", "confluence://127.0.0.1:8443/pages/9"),
        ("confluence://[::1]:8443/pages/9", "confluence://[::1]:8443/pages/9"),
    ],
)
def test_spellings_of_one_page_normalise_to_one_uri(given: str, expected: str) -> None:
    assert normalised(given) == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("confluence://your-site.atlassian.net/pages/Reports", "names no numeric page id"),
        ("confluence://your-site.atlassian.net/pages/", "names no numeric page id"),
        ("confluence://your-site.atlassian.net/wiki/spaces/DEMO/pages/1", "names no numeric page id"),
        ("confluence://your-site.atlassian.net/pages/1/2", "names no numeric page id"),
        ("confluence:///pages/1", "names no site host"),
        ("confluence://your-site.atlassian.net/pages/1?version=2", "has a query"),
        ("confluence://your-site.atlassian.net:https/pages/1", "port that is not a number"),
    ],
)
def test_a_uri_that_names_no_page_is_refused_with_the_form_to_use(given: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        sanitize_uri(urlsplit(given))
    assert problem in str(refused.value)
    assert "confluence://<site host>/pages/<numeric page id>" in str(refused.value)


def test_page_asset_uri_takes_the_connections_site_url() -> None:
    assert page_asset_uri("https://Your-Site.atlassian.net", "42") == "confluence://your-site.atlassian.net/pages/42"
    assert page_asset_uri("your-site.atlassian.net", 42) == "confluence://your-site.atlassian.net/pages/42"
    assert page_asset_uri("http://127.0.0.1:8765", 7) == "confluence://127.0.0.1:8765/pages/7"
    assert page_id_of("confluence://your-site.atlassian.net/pages/42/") == "42"
    with pytest.raises(ValueError, match="names no numeric page id"):
        page_asset_uri("https://your-site.atlassian.net", "42 OR 1=1")


@pytest.mark.parametrize("key", ["asset-uris", "dataset-uris"])
def test_provider_info_registers_the_scheme_and_its_importable_normaliser(key: str) -> None:
    """Airflow 3 reads ``asset-uris``, Airflow 2 ``dataset-uris``: both name the same handler."""
    (entry,) = get_provider_info()[key]
    assert entry["schemes"] == ["confluence"]
    module, _, name = entry["handler"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is sanitize_uri
