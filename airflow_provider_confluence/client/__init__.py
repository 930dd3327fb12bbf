"""The Confluence REST client: one ``requests`` session through the OAuth gateway, and nothing from Airflow.

* :mod:`~airflow_provider_confluence.client.confluence`: :class:`ConfluenceClient`, the transport, retries.
* :mod:`~airflow_provider_confluence.client.pages`: **where a page request is built**; spaces, labels,
  attachments, comments and search beside it, one module each.
* :mod:`~airflow_provider_confluence.client.pagination`: ``next`` links; :mod:`.responses`: error mapping.

``from airflow_provider_confluence.client import ConfluenceClient`` keeps working (the module was
``client.py`` until 0.2.0); the import is lazy so that the submodules stay cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    confluence = importlib.import_module(f"{__name__}.confluence")
    try:
        return getattr(confluence, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
