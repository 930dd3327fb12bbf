"""What users install: the provider metadata, the wheel's contents, cheap and quiet imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from helpers.airflow_env import REPO, run_airflow

pytestmark = [pytest.mark.airflow2, pytest.mark.every_line]


def test_provider_info_validates_against_the_installed_airflow_schema():
    import airflow
    import jsonschema

    from airflow_provider_confluence.get_provider_info import get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "confluence_oauth"
    fields = conn_type["conn-fields"]
    assert fields["refresh_token"]["schema"]["format"] == "password"
    assert {"scopes", "auth_url", "grant_url", "api_url", "redirect_uri", "cloud_id", "state_store", "timeout"} <= set(
        fields
    )
    integration = info["integrations"][0]["integration-name"]
    assert info["sensors"] == [
        {"integration-name": integration, "python-modules": ["airflow_provider_confluence.sensors.confluence"]}
    ]
    assert info["triggers"] == [
        {
            "integration-name": integration,
            "python-modules": [
                "airflow_provider_confluence.triggers.confluence",
                "airflow_provider_confluence.triggers.rate_limit",
            ],
        }
    ]
    assert info["extra-links"] == ["airflow_provider_confluence.links.confluence.ConfluencePageLink"]
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"] == {
        "host": "Confluence site URL",
        "login": "Client ID (or e-mail for api_token)",
        "password": "Client secret (or API token for api_token)",
    }
    assert set(behaviour["hidden-fields"]) == {"schema", "port"}


def test_every_module_the_provider_info_names_imports():
    """A name in the provider info that does not import would be a broken entry in `airflow providers`."""
    import importlib

    from airflow_provider_confluence.get_provider_info import get_provider_info

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    handlers = [entry["handler"] for key in ("asset-uris", "dataset-uris") for entry in info[key]]
    for path in [
        *info["extra-links"],
        *info["notifications"],
        info["connection-types"][0]["hook-class-name"],
        *handlers,
    ]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_get_provider_info_imports_nothing_from_airflow():
    code = (
        "import sys; from airflow_provider_confluence.get_provider_info import get_provider_info; get_provider_info();"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_entry_points_are_registered():
    providers = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "airflow_provider_confluence.get_provider_info:get_provider_info" in providers
    plugins = {ep.value for ep in entry_points(group="pytest11")}
    assert "airflow_provider_confluence.testing.pytest_plugin" in plugins


def test_airflow_lists_the_provider_and_its_connection_type(airflow_db):
    listed = run_airflow("providers", "list", "--output", "json").stdout
    names = {p["package_name"] for p in json.loads(listed[listed.index("[") :])}
    assert "airflow-provider-confluence" in names
    hooks = run_airflow("providers", "hooks", "--output", "json").stdout
    assert "confluence_oauth" in hooks and "ConfluenceOAuthHook" in hooks
    links = run_airflow("providers", "links", "--output", "json").stdout
    assert "airflow_provider_confluence.links.confluence.ConfluencePageLink" in links


def test_the_deployment_settings_are_registered_with_their_defaults(airflow_db):
    """``[confluence]`` comes from the provider info: the broker is on with no configuration at all."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW__CONFLUENCE__")}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "config", "get-value", "confluence", "token_broker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "True"


def test_the_hook_form_for_airflow_2():
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    behaviour = ConfluenceOAuthHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["host"] == "Confluence site URL"
    assert behaviour["placeholders"]["grant_url"] == "https://auth.atlassian.com/oauth/token"
    try:
        widgets = ConfluenceOAuthHook.get_connection_form_widgets()
    except ImportError:
        pytest.skip("no Flask AppBuilder here (the Airflow 2 web UI)")
    assert widgets["refresh_token"].field_class.__name__ == "PasswordField"
    assert widgets["scopes"].field_class.__name__ == "StringField"


def test_the_wheel_holds_every_module(tmp_path):
    """A plain (non-editable) install must give a working provider: nothing left out of the wheel."""
    import shutil

    source = tmp_path / "src"
    shutil.copytree(
        REPO / "airflow_provider_confluence",
        source / "airflow_provider_confluence",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    package = REPO / "airflow_provider_confluence"
    expected = {p.relative_to(REPO).as_posix() for p in package.rglob("*.py")} | {
        "airflow_provider_confluence/py.typed"
    }
    templates = {p.relative_to(REPO).as_posix() for p in (package / "plugins" / "templates").glob("*.html")}
    assert expected - names == set() and len(templates) >= 5 and templates - names == set()
    entry_text = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[apache_airflow_provider]" in entry_text and "[pytest11]" in entry_text


#: Each runtime dependency of pyproject.toml, and the module of it that the provider imports.
RUNTIME_IMPORTS = {
    "apache-airflow": "airflow",
    "apache-airflow-providers-common-compat": "airflow.providers.common.compat",
    "jinja2": "jinja2",
    "markdown-it-py": "markdown_it",
    "pyjwt": "jwt",
    "requests": "requests",
}


def test_no_runtime_dependency_without_a_runtime_import():
    """Every dependency pyproject.toml declares is imported by the provider's own code (not only by its tests,
    the emulator or bench/), and the libraries the provider signs and renders with are declared."""
    import ast
    import re
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() for requirement in declared}
    assert names == set(RUNTIME_IMPORTS), "a dependency was added or dropped: update RUNTIME_IMPORTS"
    imported: set[str] = set()
    package = REPO / "airflow_provider_confluence"
    for path in package.rglob("*.py"):
        if "testing" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module)
    unused = {
        name
        for name, module in RUNTIME_IMPORTS.items()
        if not any(m == module or m.startswith(module + ".") for m in imported)
    }
    assert unused == set()
    assert "requests_oauthlib" not in imported and "oauthlib" not in imported


def test_importing_the_operators_opens_no_socket():
    """No network at import or DAG-parse time: importing with sockets disabled must work."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise RuntimeError('network at import time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import airflow_provider_confluence.operators.confluence\n"
        "import airflow_provider_confluence.hooks.confluence\n"
        "print('ok')\n"
    )
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_dag_parsing_does_not_load_the_http_stack():
    """DAG files import the operators constantly; the client, requests, Markdown and pandas load only when a
    task runs."""
    code = (
        "import sys, airflow\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_confluence.operators.confluence\n"
        "import airflow_provider_confluence.notifications.confluence\n"
        "new = set(sys.modules) - before\n"
        "heavy = ('requests', 'markdown_it', 'pandas', 'numpy')\n"
        "print(sorted(m for m in new if m.split('.')[0] in heavy or m.endswith(('.client.confluence', '.oauth', '.tokens'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
