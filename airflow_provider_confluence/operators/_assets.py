"""The page a create or update operator changed, as an Airflow asset event (a dataset event on Airflow 2).

Airflow emits an event for every Asset listed directly in a task's outlets whenever the task succeeds, whether
or not the page changed, and offers no way to withhold it. An asset alias is different: it emits only the events
the task adds to it at run time. So the operators list an alias (``asset_alias``, default ``confluence_pages``)
among their outlets and add the page's asset to it only when they wrote a new version or created the page;
an unchanged re-run adds nothing and no event is emitted. (Airflow 3: ``AssetAlias``; Airflow 2.10+:
``DatasetAlias``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_confluence.assets.confluence import DEFAULT_PAGE_ALIAS, confluence_pages_alias
from airflow_provider_confluence.assets.uri import SCHEME, page_asset_uri
from airflow_provider_confluence.exceptions import ConfluenceConfigError

#: The fields of the operators' result carried as the asset event's extra.
EVENT_FIELDS = ("id", "title", "space_id", "version", "url", "action")


def with_page_alias(kwargs: dict[str, Any], asset_alias: str | None) -> dict[str, Any]:
    """``kwargs`` of ``BaseOperator`` with the page alias added to ``outlets`` (unless ``asset_alias`` is None).

    :raises ConfluenceConfigError: ``outlets`` lists a ``confluence://`` asset directly (Airflow would emit its
        event after every run, changed or not), or ``asset_alias`` is not a non-empty string.
    """
    given = kwargs.get("outlets")
    outlets = [] if given is None else list(given) if isinstance(given, Iterable) else [given]
    for outlet in outlets:
        uri = getattr(outlet, "uri", None)
        if isinstance(uri, str) and uri.lower().startswith(f"{SCHEME}:"):
            raise ConfluenceConfigError(
                f"outlets lists the page asset {uri!r} directly: Airflow would emit its event after every run, "
                "also when the page did not change. Leave it out; the operator emits it through its asset alias "
                f"({DEFAULT_PAGE_ALIAS!r} unless asset_alias= says otherwise) only when the page changed, and a DAG "
                "scheduled on the asset is triggered all the same."
            )
    if asset_alias is None:
        return kwargs
    if not isinstance(asset_alias, str) or not asset_alias.strip():
        raise ConfluenceConfigError(
            f"asset_alias={asset_alias!r} must be an alias name such as {DEFAULT_PAGE_ALIAS!r}, or None for no "
            "asset events."
        )
    return {**kwargs, "outlets": [*outlets, confluence_pages_alias(asset_alias)]}


def emit_page_event(operator: Any, context: Any, summary: dict[str, Any], site_url: str) -> str | None:
    """Add the page's asset event to the operator's alias when ``summary["changed"]``; return its URI, else None."""
    alias_name = getattr(operator, "asset_alias", None)
    events = context.get("outlet_events") if hasattr(context, "get") else None
    if not alias_name or events is None:  # no alias, or not in a task run (``execute`` called directly)
        return None
    if not summary.get("changed"):
        operator.log.info("No asset event: page %s did not change.", summary.get("id"))
        return None
    from airflow_provider_confluence.version_compat import Asset, ensure_alias_registered

    ensure_alias_registered(alias_name)
    uri = page_asset_uri(site_url, str(summary["id"]))
    extra = {field: summary.get(field) for field in EVENT_FIELDS}
    events[confluence_pages_alias(alias_name)].add(Asset(uri), extra=extra)
    operator.log.info("Asset event for %s (%s) through the alias %r.", uri, summary.get("action"), alias_name)
    return uri
