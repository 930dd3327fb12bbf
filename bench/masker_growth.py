"""What a long-lived process pays for every secret it registers with Airflow's secrets masker (not a test).

Airflow's ``SecretsMasker`` keeps every registered value as an escaped pattern in a set and, on each NEW value,
recompiles one alternation of all of them (``add_mask``: ``re.compile("|".join(self.patterns))``, ``re2`` on
Airflow 2). Nothing removes a pattern except ``reset_masker()``, which drops all of them. So a process that
registers every rotated token pays, per new token, a compile of everything registered so far, and, per
redaction (a log record in a task or the triggerer; the HTTP access log's query values, API models and action
log in the API server), a scan with that alternation.

For 10, 100 and 1000 registered tokens this prints the time of one more ``add_mask`` (median of a few), of
redacting one access-log-like line, and the characters the patterns hold. Then it runs the token broker's own
path (``token_manager_for`` as the broker builds it, a memory store and a stub refresh) for ``--refreshes``
rotations in this process and prints how many patterns each of Airflow's maskers gained.

Run: ``.venv/bin/python bench/masker_growth.py`` (Airflow 3) or ``.venv-airflow2/bin/python bench/masker_growth.py``.
``--token-chars`` sets the token length (Atlassian's access tokens are JWTs of about 1,000 characters or more).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

LINE = (
    "request finished method=POST path=/confluence-oauth/token query= status_code=200 duration_us=5123 "
    "client_addr=127.0.0.1:53124 conn_id=confluence_default store=connection "
    "request=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjb25uX2lkIjoiY29uZmx1ZW5jZV9kZWZhdWx0In0.c2lnbmF0dXJl"
)


SHAPE = {"name": "jwt"}


def token(chars: int) -> str:
    """A random token of about ``chars`` characters: JWT-shaped (a shared ``eyJ...`` header, as Atlassian's access
    tokens have), or plain URL-safe random text (as the emulator's), after ``--shape``."""
    if SHAPE["name"] == "random":
        return secrets.token_urlsafe(chars)[:chars]
    body = base64.urlsafe_b64encode(secrets.token_bytes(chars)).decode().rstrip("=")[: max(chars - 40, 8)]
    return f"eyJhbGciOiJSUzI1NiJ9.{body}.{secrets.token_urlsafe(12)}"


def new_masker() -> Any:
    """A fresh ``SecretsMasker`` of this Airflow, configured like a deployment's (default sensitive names)."""
    try:
        from airflow._shared.secrets_masker.secrets_masker import DEFAULT_SENSITIVE_FIELDS, SecretsMasker
    except ImportError:  # Airflow 2
        from airflow.utils.log.secrets_masker import DEFAULT_SENSITIVE_FIELDS, SecretsMasker

    masker = SecretsMasker()
    masker.sensitive_variables_fields = list(DEFAULT_SENSITIVE_FIELDS)
    return masker


def fill(masker: Any, count: int, chars: int) -> None:
    """Give ``masker`` ``count`` registered tokens quickly: one compile instead of ``count`` (bench only)."""
    for _ in range(count):
        masker.patterns.add(re.escape(token(chars)))
    masker.replacer = re.compile("|".join(masker.patterns))


def timed(call: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def growth(sizes: list[int], chars: int, adds: int) -> None:
    print(f"SecretsMasker, {SHAPE['name']} tokens of {len(token(chars))} characters; a {len(LINE)}-character line")
    print(f"{'registered':>10}  {'add_mask (ms)':>13}  {'redact a line (ms)':>18}  {'pattern chars':>13}")
    for size in sizes:
        masker = new_masker()
        fill(masker, size, chars)
        fresh = [token(chars) for _ in range(adds)]
        add_ms = statistics.median(timed(partial(masker.add_mask, secret), 1) for secret in fresh) * 1000
        redact_ms = timed(partial(masker.redact, LINE), 50) * 1000
        held = sum(len(p) for p in masker.patterns)
        print(f"{len(masker.patterns):>10}  {add_ms:>13.2f}  {redact_ms:>18.3f}  {held:>13,}")


def broker_path(refreshes: int, chars: int) -> None:
    """Rotate ``refreshes`` times through a TokenManager built as the broker builds it (and, for comparison, with
    ``mask_secret``, as the hook builds it in a task); count what Airflow's maskers gained."""
    from airflow_provider_confluence.version_compat import mask_secret

    try:
        from airflow_provider_confluence.plugins.broker_masking import not_registered
    except ImportError:  # before the fix, the broker registered every token
        not_registered = mask_secret
    for label, on_secret in (("with mask_secret (a task's hook)", mask_secret), ("as the broker", not_registered)):
        _rotations(label, on_secret, refreshes, chars)


def _rotations(label: str, on_secret: Callable[[str], None], refreshes: int, chars: int) -> None:
    import requests

    from airflow_provider_confluence.auth.manager import token_manager_for
    from airflow_provider_confluence.auth.oauth import TokenResponse
    from airflow_provider_confluence.auth.tokens import MemoryTokenStore, TokenState
    from airflow_provider_confluence.config.connection import ConnectionSettings

    maskers = _airflow_maskers()
    before = {name: len(m.patterns) for name, m in maskers.items()}
    settings = ConnectionSettings.from_connection_fields(
        "bench_conn", host="https://bench.atlassian.net", login="client-id", password=token(40), extra="{}"
    )
    store = MemoryTokenStore(TokenState(refresh_token=token(chars)))
    clock = [1_000_000.0]
    start = time.perf_counter()
    for _ in range(refreshes):
        # A new manager per request, as the broker builds one; the token expired since the last request.
        manager = token_manager_for(settings, store, session=requests.Session(), on_secret=on_secret)
        manager._refresh = lambda _rt: TokenResponse(  # type: ignore[method-assign]
            access_token=token(chars), refresh_token=token(chars), expires_in=3600.0, scope=None
        )
        manager._clock = lambda: clock[0]  # type: ignore[method-assign]
        manager.get_access_token()
        clock[0] += 3600.0
    spent = time.perf_counter() - start
    gained = {name: len(m.patterns) - before[name] for name, m in maskers.items()}
    print(
        f"{label}: {refreshes} rotations in {spent:.2f} s ({spent / refreshes * 1000:.1f} ms each); "
        + ", ".join(f"{name} masker +{count} patterns" for name, count in gained.items())
    )


def _airflow_maskers() -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        from airflow._shared.secrets_masker import _secrets_masker as core

        found["core"] = core()
    except ImportError:
        from airflow.utils.log.secrets_masker import _secrets_masker as core2

        found["core"] = core2()
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker as sdk

        found["task sdk"] = sdk()
    except ImportError:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="registered tokens to measure at")
    parser.add_argument("--token-chars", type=int, default=1200)
    parser.add_argument("--adds", type=int, default=5, help="add_mask calls timed at each size")
    parser.add_argument("--shape", choices=("jwt", "random"), default="jwt", help="what the tokens look like")
    parser.add_argument("--refreshes", type=int, default=100, help="rotations through the broker's path")
    args = parser.parse_args()
    SHAPE["name"] = args.shape
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    import logging

    import airflow

    logging.getLogger("airflow_provider_confluence").setLevel(logging.WARNING)  # one info line per rotation
    print(f"Airflow {airflow.__version__}, load {os.getloadavg()[0]:.2f}")
    growth([int(s) for s in args.sizes.split(",")], args.token_chars, args.adds)
    if args.refreshes > 0:
        broker_path(args.refreshes, args.token_chars)


if __name__ == "__main__":
    main()
