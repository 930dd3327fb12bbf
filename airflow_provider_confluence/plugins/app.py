"""The FastAPI app that the plugin mounts at ``/confluence-oauth`` in the Airflow 3 API server.

It includes one router per module named in :data:`ROUTERS` (each a module of this package with a ``router``
attribute). Adding a router is one line: its module's name in :data:`ROUTERS`. A router module that is not
there is skipped, one that fails to import is logged and skipped, so that one broken router never takes the
others (the token broker above all) down with it.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

#: Modules of ``airflow_provider_confluence.plugins`` whose ``router`` is included, in this order.
ROUTERS: tuple[str, ...] = ("broker", "consent")


def create_app() -> FastAPI:
    """A new app with every router of :data:`ROUTERS` that can be imported."""
    from fastapi import FastAPI

    app = FastAPI(
        title="Confluence OAuth (airflow-provider-confluence)",
        description="The token broker of Airflow 3 task workers, and the Confluence OAuth pages.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    for name in ROUTERS:
        module_name = f"{__package__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                log.debug("No %s module; its router is not included.", module_name)
                continue
            log.exception("The %s router of the Confluence plugin failed to import; it is left out.", name)
            continue
        except Exception:
            log.exception("The %s router of the Confluence plugin failed to import; it is left out.", name)
            continue
        app.include_router(module.router)
    return app


@cache
def get_app() -> FastAPI:
    """The app of this process (built once; Airflow may ask for the plugin's apps more than once)."""
    return create_app()
