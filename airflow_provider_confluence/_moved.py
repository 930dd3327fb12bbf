"""Old import paths of modules that moved, kept working as deprecated aliases.

Until 0.2.0 the package was flat (``airflow_provider_confluence.storage``, ``.publish``, ``.settings``, ...).
Those paths still import, with a :class:`DeprecationWarning` that names the new one. An alias module forwards
every attribute to the new module, so ``from airflow_provider_confluence.settings import ConnectionSettings``
returns the very class ``airflow_provider_confluence.config.connection`` defines.

A meta-path finder is used rather than one stub file per old module: one table, and no files at the top of the
package that a newcomer would mistake for the real ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

PACKAGE = "airflow_provider_confluence"

#: Old module (under the package) -> new module.
MOVED: dict[str, str] = {
    "_compat": "version_compat",
    "settings": "config.connection",
    "deployment": "config.deployment",
    "endpoints": "config.endpoints",
    "local_files": "config.local_files",
    "oauth": "auth.oauth",
    "tokens": "auth.tokens",
    "consent_state": "auth.consent_state",
    "rotation_journal": "auth.stores.journal",
    "stores": "auth.stores.choice",
    "store_support": "auth.stores.support",
    "connection_store": "auth.stores.connection",
    "broker": "auth.broker.client",
    "broker_protocol": "auth.broker.protocol",
    "pages": "client.pages",
    "spaces": "client.spaces",
    "labels": "client.labels",
    "attachments": "client.attachments",
    "comments": "client.comments",
    "search": "client.search",
    "next_links": "client.pagination",
    "responses": "client.responses",
    "storage": "content.storage_format",
    "publish": "content.publish",
    "summaries": "content.summaries",
    "plugins.status": "auth.status",
    "sensors.page_check": "triggers.page_check",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default: a fresh module, filled in by exec_module

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(
            f"{module.__name__} moved to {self.target}; import it from there (the old path goes in 1.0).",
            DeprecationWarning,
            stacklevel=2,
        )
        target = importlib.import_module(self.target)

        def forward(name: str) -> Any:
            return getattr(target, name)

        module.__getattr__ = forward  # type: ignore[method-assign]
        module.__dir__ = lambda: dir(target)  # type: ignore[method-assign]
        module.__doc__ = target.__doc__


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PACKAGE + "."):
            return None
        new = MOVED.get(fullname[len(PACKAGE) + 1 :])
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(f"{PACKAGE}.{new}"))


def install() -> None:
    """Register the finder once (importing the package does it)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
