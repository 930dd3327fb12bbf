"""Reading ``docs/features.md`` (the feature table) and the vendored v2 OpenAPI document it is derived from."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FEATURES = REPO / "docs" / "features.md"
OPENAPI = REPO / "tests" / "data" / "confluence-v2.openapi.json"
V2_PREFIX = "/wiki/api/v2"
METHODS = ("get", "put", "post", "delete", "patch")

#: ``| `operationId` | `METHOD /path`<br>summary | covered: ... / not yet |``
ROW = re.compile(
    r"^\| `(?P<op>[A-Za-z0-9]+)` \| `(?P<method>[A-Z]+) (?P<path>/[^`]*)`(?:<br>[^|]*)? \| (?P<cell>.+?) \|$"
)
SUMMARY_ROW = re.compile(r"^\| \[(?P<tag>[^\]]+)\]\(#[^)]+\) \| (?P<total>\d+) \| (?P<covered>\d+) \|$")


@dataclass(frozen=True)
class Row:
    tag: str
    operation_id: str
    method: str
    path: str
    cell: str

    @property
    def covered(self) -> bool:
        return self.cell.startswith("covered: ")


@dataclass(frozen=True)
class Operation:
    tag: str
    operation_id: str
    method: str
    path: str


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return loaded


def operations() -> list[Operation]:
    """Every operation of the document, with its first tag."""
    return [
        Operation((op.get("tags") or ["Other"])[0], op["operationId"], method.upper(), path)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def operation_of_route(route: str) -> Operation:
    """The operation of a recorded route such as ``GET /wiki/api/v2/pages/{id}``."""
    method, path = route.split(" ", 1)
    assert path.startswith(V2_PREFIX), route
    wanted = (method.upper(), path[len(V2_PREFIX) :])
    return next(op for op in operations() if (op.method, op.path) == wanted)


def rows() -> list[Row]:
    """The rows of the per-area tables, each with the ``### Area`` heading it is under."""
    found: list[Row] = []
    tag = ""
    for line in FEATURES.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            tag = line[4:].strip()
        elif match := ROW.match(line):
            found.append(Row(tag, match["op"], match["method"], match["path"], match["cell"]))
    return found


def summary() -> dict[str, tuple[int, int]]:
    """``{area: (operations, covered)}`` of the summary table."""
    text = FEATURES.read_text(encoding="utf-8")
    return {
        m["tag"]: (int(m["total"]), int(m["covered"])) for line in text.splitlines() if (m := SUMMARY_ROW.match(line))
    }
