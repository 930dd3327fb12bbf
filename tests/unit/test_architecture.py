"""The package's architecture, checked: where Airflow versions are told apart, and the old import paths.

The import layers themselves are import-linter contracts (``[tool.importlinter]`` in pyproject.toml), run by
``make lint``.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import airflow_provider_confluence
from airflow_provider_confluence._moved import MOVED, PACKAGE

SOURCE = Path(airflow_provider_confluence.__file__).resolve().parent


def _modules() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if p.name != "version_compat.py")


def _reads_airflow_version(tree: ast.AST) -> list[str]:
    """What in a module tells Airflow versions apart: version flags, ``airflow.version``, a version lookup."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith("AIRFLOW_V_"):
            found.append(node.id)
        elif isinstance(node, ast.alias) and node.name.startswith("AIRFLOW_V_"):
            found.append(node.name)
        elif isinstance(node, ast.ImportFrom) and node.module in {"airflow.version", "packaging.version"}:
            found.append(f"from {node.module} import ...")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "__version__"
            and getattr(node.value, "id", "") == "airflow"
        ):
            found.append("airflow.__version__")
        elif isinstance(node, ast.Constant) and node.value == "apache-airflow":
            found.append("the distribution's version")
    return found


def test_only_version_compat_tells_airflow_versions_apart() -> None:
    offenders = {
        str(path.relative_to(SOURCE)): found
        for path in _modules()
        if (found := _reads_airflow_version(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_check_sees_a_version_branch() -> None:
    tree = ast.parse(
        "from airflow_provider_confluence.version_compat import AIRFLOW_V_3_0_PLUS\nif AIRFLOW_V_3_0_PLUS: pass"
    )
    assert _reads_airflow_version(tree) == ["AIRFLOW_V_3_0_PLUS", "AIRFLOW_V_3_0_PLUS"]


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_import_path_still_works_and_says_where_the_module_went(old: str, new: str) -> None:
    old_name, new_name = f"{PACKAGE}.{old}", f"{PACKAGE}.{new}"
    sys.modules.pop(old_name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alias = importlib.import_module(old_name)
    moved = importlib.import_module(new_name)
    public = [name for name in vars(moved) if not name.startswith("_")]
    assert public and all(getattr(alias, name) is getattr(moved, name) for name in public)
    assert any(issubclass(w.category, DeprecationWarning) and new_name in str(w.message) for w in caught)


def test_the_old_client_module_path_still_gives_the_client() -> None:
    from airflow_provider_confluence.client import ConfluenceClient
    from airflow_provider_confluence.client.confluence import ConfluenceClient as moved

    assert ConfluenceClient is moved


def test_no_module_of_the_old_flat_layout_is_left_at_the_top() -> None:
    top = {p.stem for p in SOURCE.glob("*.py")}
    assert top & {old for old in MOVED if "." not in old} == set()
