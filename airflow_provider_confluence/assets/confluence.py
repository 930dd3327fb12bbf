"""Assets for DAGs: the Asset (Dataset on Airflow 2) of a Confluence page, and the alias operators emit through.

A downstream DAG is scheduled on a page with ``schedule=[confluence_page_asset(site, page_id)]``, or on every page
the operators change with ``schedule=[confluence_pages_alias()]``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_confluence.assets.uri import page_asset_uri
from airflow_provider_confluence.version_compat import Asset, AssetAlias

#: The asset alias the create and update operators emit through unless told otherwise (``asset_alias=``).
DEFAULT_PAGE_ALIAS = "confluence_pages"


def confluence_page_asset(site_url: str, page_id: str | int) -> Any:
    """The Asset (Dataset on Airflow 2) of a page: ``confluence://<site host>/pages/<page id>``.

    :param site_url: the Confluence site as in the connection's Host, ``https://your-site.atlassian.net``.
    :param page_id: the page's numeric id.
    :raises ValueError: the site has no host or the id is not a number (on both Airflow lines, before Airflow
        sees the URI).
    """
    return Asset(page_asset_uri(site_url, page_id))


def confluence_pages_alias(name: str = DEFAULT_PAGE_ALIAS) -> Any:
    """The asset alias (dataset alias on Airflow 2) the operators add a page's event to when they change it."""
    return AssetAlias(name)
