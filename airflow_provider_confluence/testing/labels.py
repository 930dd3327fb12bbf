"""Page labels of the emulated site: pure logic, no HTTP.

Confluence labels are site-wide objects (one id per prefix and name) attached to content. Names are stored
lower-cased; a name that is empty, longer than 255 characters, or holds whitespace or one of
``!#&()*,.:;<>?@[]^`` is refused with a v1 400, as ``POST /wiki/rest/api/content/{id}/label`` does. Adding a
label a page already has is a no-op. A page's labels keep the order they were added in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._http import v1_bad_request

#: the characters Confluence refuses in a label name (besides whitespace)
FORBIDDEN_CHARS = "!#&()*,.:;<>?@[]^"
MAX_NAME = 255
#: the prefixes a label may be added with (``system`` labels are Confluence's own)
PREFIXES = ("global", "my", "team")


@dataclass(frozen=True)
class Label:
    """A label: its site-wide id, prefix and lower-cased name."""

    id: int
    prefix: str
    name: str

    def v2_json(self) -> dict[str, Any]:
        """The v2 ``Label`` shape."""
        return {"id": str(self.id), "name": self.name, "prefix": self.prefix}

    def v1_json(self) -> dict[str, Any]:
        """The v1 label shape (``label`` repeats the name)."""
        return {"prefix": self.prefix, "name": self.name, "id": str(self.id), "label": self.name}


def check_name(name: Any) -> str:
    """Return ``name`` lower-cased; raise a v1 400 when Confluence would refuse it."""
    if not isinstance(name, str) or not name.strip():
        raise v1_bad_request("Label name must be a non-empty string")
    bad = sorted({char for char in name if char in FORBIDDEN_CHARS or char.isspace()})
    if bad:
        shown = ", ".join("space" if char == " " else repr(char) for char in bad)
        raise v1_bad_request(f"Label '{name}' contains invalid characters: {shown}")
    if len(name) > MAX_NAME:
        raise v1_bad_request(f"Label '{name[:40]}...' is longer than {MAX_NAME} characters")
    return name.lower()


def parse_label_body(payload: Any) -> list[tuple[str, str]]:
    """Read the body of ``POST .../label`` (a list of ``{"prefix", "name"}`` or one such object).

    :return: ``(prefix, lower-cased name)`` pairs; raise a v1 400 for anything Confluence would refuse.
    """
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise v1_bad_request("At least one label is required")
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            raise v1_bad_request("Each label must be an object with a name (and optionally a prefix)")
        prefix = item.get("prefix") or "global"
        if prefix not in PREFIXES:
            raise v1_bad_request(f"Label prefix '{prefix}' is not one of {', '.join(PREFIXES)}")
        pairs.append((str(prefix), check_name(item.get("name"))))
    return pairs


class LabelStore:
    """The labels of every page.

    :param lock: the emulator's one lock.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._ids: dict[tuple[str, str], int] = {}
        self._by_page: dict[int, list[Label]] = {}
        self._next_id = 4587521

    def add(self, page_id: int, pairs: Iterable[tuple[str, str]]) -> list[Label]:
        """Attach labels (already checked) to a page, skipping those it has; return all its labels after."""
        with self._lock:
            have = self._by_page.setdefault(page_id, [])
            for prefix, name in pairs:
                if any(label.prefix == prefix and label.name == name for label in have):
                    continue
                label_id = self._ids.get((prefix, name))
                if label_id is None:
                    label_id = self._ids[(prefix, name)] = self._next_id
                    self._next_id += 1
                have.append(Label(label_id, prefix, name))
            return list(have)

    def of(self, page_id: int, prefix: str | None = None) -> list[Label]:
        """A page's labels in the order they were added (only those with ``prefix`` when given)."""
        with self._lock:
            return [label for label in self._by_page.get(page_id, []) if prefix is None or label.prefix == prefix]

    def names(self, page_id: int) -> list[str]:
        """A page's label names, in the order they were added."""
        return [label.name for label in self.of(page_id)]

    def remove(self, page_id: int, name: str) -> bool:
        """Detach the label ``name`` (any prefix) from a page; False when the page did not have it."""
        with self._lock:
            have = self._by_page.get(page_id, [])
            kept = [label for label in have if label.name != name]
            if len(kept) == len(have):
                return False
            self._by_page[page_id] = kept
            return True
