"""What every exception of :mod:`airflow_provider_confluence.exceptions` can do, written once.

- **Pickling.** Airflow moves exceptions between processes (executors, callbacks). The default pickling of an
  exception calls ``cls(*exc.args)``, which breaks on keyword-only arguments. :class:`ErrorSupport` records the
  arguments each error was built with (by name, from its ``__init__`` signature, so a new subclass cannot
  forget) and :meth:`~ErrorSupport.__reduce__` rebuilds from them.
- **Trigger events.** A trigger event carries only JSON: :meth:`~ErrorSupport.to_event` gives the class name and
  the arguments; :meth:`~ErrorSupport.from_event` rebuilds the same class, looked up in a registry of the
  provider's own error classes (never a name imported from the event; an unknown name gives ``ConfluenceError``).
- **Response headers.** An API error keeps Atlassian's trace id and an allow-list of diagnostic headers, never
  ``Authorization``, cookies or anything else (:func:`kept_headers`).

This module imports nothing from Airflow.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping
from typing import Any, Self, TypeVar

__all__ = ["KEPT_HEADERS", "TRACE_HEADER", "ErrorSupport", "kept_headers", "trace_id_of"]

_PACKAGE = "airflow_provider_confluence"

#: The response header that holds Atlassian's trace id ("Atl-Traceid", which Atlassian support asks for:
#: https://support.atlassian.com/rovo/kb/identify-and-share-atl-traceid-with-atlassian-support-for-troubleshooting/).
TRACE_HEADER = "Atl-Traceid"

#: The response headers an error keeps: diagnostics only (the trace id, content type, and the rate-limit headers
#: of https://developer.atlassian.com/cloud/confluence/rate-limiting/). Nothing that can hold a credential.
KEPT_HEADERS: tuple[str, ...] = (
    TRACE_HEADER,
    "Content-Type",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-NearLimit",
    "X-RateLimit-FillRate",
    "X-RateLimit-Interval-Seconds",
    "RateLimit-Reason",
    "Beta-Retry-After",
    "Beta-RateLimit",
    "Beta-RateLimit-Policy",
    "X-Beta-RateLimit-Reason",
    "X-Beta-RateLimit-NearLimit",
)
_CANONICAL = {name.lower(): name for name in KEPT_HEADERS}
_MAX_HEADER = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TRACE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")

#: Every error class of the provider, by name: the only classes :meth:`ErrorSupport.from_event` builds.
_REGISTRY: dict[str, type[ErrorSupport]] = {}
_SIGNATURES: dict[type, inspect.Signature] = {}

E = TypeVar("E", bound="ErrorSupport")


def kept_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The allow-listed headers of an answer, under their usual spelling, each value cleaned and capped.

    :param headers: an answer's headers (any mapping; names compared case-insensitively).
    """
    kept: dict[str, str] = {}
    for name, value in (headers or {}).items():
        canonical = _CANONICAL.get(str(name).strip().lower())
        if canonical is not None and value is not None:
            kept[canonical] = _CONTROL.sub(" ", str(value)).strip()[:_MAX_HEADER]
    return kept


def trace_id_of(headers: Mapping[str, Any] | None) -> str | None:
    """Atlassian's trace id in ``headers`` (``Atl-Traceid``, any case), or None when absent or malformed."""
    value = kept_headers(headers).get(TRACE_HEADER, "").strip()
    return value if _TRACE_ID.match(value) else None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return str(value)


def _signature(cls: type) -> inspect.Signature:
    found = _SIGNATURES.get(cls)
    if found is None:
        found = _SIGNATURES[cls] = inspect.signature(cls.__init__)  # type: ignore[misc]
    return found


def _rebuild(cls: type[E], kwargs: dict[str, Any]) -> E:
    """Unpickle: build the error again from the arguments it was built with."""
    return cls(**kwargs)


class ErrorSupport(Exception):
    """Mixin of :class:`~airflow_provider_confluence.exceptions.ConfluenceError`: pickling and trigger events.

    Subclasses take named arguments only (no ``*args``, no positional-only parameters), so that every error can
    be rebuilt from a dict of them; a class that breaks this rule fails when it is defined. Those arguments are
    what a pickle and a trigger event carry: never pass an error a secret, a response or a request body (an
    argument that is cleaned in ``__init__``, like the headers of an API error, is recorded cleaned with
    :meth:`_remember`).
    """

    _init_kwargs: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for param in list(_signature(cls).parameters.values())[1:]:
            if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL):
                raise TypeError(
                    f"{cls.__qualname__}.__init__ must take named arguments only (not {param}), "
                    "so that the error pickles and fits in a trigger event."
                )
        if cls.__module__ == _PACKAGE or cls.__module__.startswith(_PACKAGE + "."):
            known = _REGISTRY.get(cls.__name__)
            if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
                raise TypeError(
                    f"Two error classes are named {cls.__name__}: trigger events could not tell them apart."
                )
            _REGISTRY[cls.__name__] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = super().__new__(cls, *args, **kwargs)
        try:
            bound = _signature(cls).bind(None, *args, **kwargs)
        except TypeError:
            recorded: dict[str, Any] = {}  # __init__ raises the real TypeError
        else:
            bound.apply_defaults()
            recorded = {}
            for name, value in list(bound.arguments.items())[1:]:
                if _signature(cls).parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                else:
                    recorded[name] = value
        self._init_kwargs = recorded
        return self

    def _remember(self, **kwargs: Any) -> None:
        """Record what an argument became (say, headers after the allow-list), for pickling and events."""
        self._init_kwargs.update(kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        state = {name: value for name, value in self.__dict__.items() if name != "_init_kwargs"}
        return _rebuild, (type(self), dict(getattr(self, "_init_kwargs", {}))), state or None

    def to_event(self) -> dict[str, Any]:
        """The error as JSON for a trigger event: ``{"error_type", "message", "kwargs"}``.

        ``kwargs`` are the arguments it was built with (facts, never a token: the error's own attributes).
        """
        kwargs = getattr(self, "_init_kwargs", {})
        return {
            "error_type": type(self).__name__,
            "message": str(self),
            "kwargs": {str(name): _jsonable(value) for name, value in kwargs.items()},
        }

    @classmethod
    def from_event(cls, event: Any) -> ErrorSupport:
        """The error a :meth:`to_event` dict stands for, of the same class (``ConfluenceError`` when unknown).

        Accepts the events of 0.1 triggers too (facts at the top level, no ``kwargs``). Never raises.

        :param event: the trigger event's payload.
        """
        root = _REGISTRY["ConfluenceError"]
        if not isinstance(event, Mapping):
            return root(f"Unexpected trigger event {str(event)[:200]!r}.")
        if "error_type" not in event and "message" not in event:
            return root(f"Unexpected trigger event {str(dict(event))[:200]!r}.")
        name = str(event.get("error_type") or "ConfluenceError")
        message = str(event.get("message") or "The Confluence trigger failed without a message.")
        target = _REGISTRY.get(name)
        if target is None:
            return root(f"{name}: {message}")
        kwargs = event.get("kwargs")
        if not isinstance(kwargs, Mapping):  # a 0.1 event: {"error_type", "message", "status_code", ...}
            params = list(_signature(target).parameters)[1:]
            kwargs = {param: event[param] for param in params if param in event}
        try:
            return target(**{str(key): value for key, value in kwargs.items()})
        except Exception:  # arguments that do not fit the class (a hand-made or damaged event)
            return root(f"{name}: {message}")
