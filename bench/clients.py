"""The client side of rows 1-3 of ``make bench``, run by ``bench/run.py`` in a subprocess of its own.

The emulator runs in ``run.py``'s process; this process is the client, so each side gets a core and the
client's memory is measured alone. Counters are read from the emulator's admin endpoint
(``GET /_emulator/state``), which is not counted as an API call.

    python bench/clients.py list SPEC_JSON     rows 1 and 2: list every space with each implementation
    python bench/clients.py memory SPEC_JSON   row 3: stream every space with one implementation, sampling RSS

SPEC_JSON: ``{"state_url", "gateway", "access_token", "runs", "peer_runs", "impl", "expected"}``; the provider's connection
is in ``AIRFLOW_CONN_BENCH`` (token store ``memory``). Prints one line of JSON.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import requests

COUNTED = ("api_calls", "token_requests", "accessible_resources_calls", "throttled")


def counters(state_url: str) -> dict[str, int]:
    data = requests.get(state_url, timeout=30).json()["counters"]
    return {name: int(data.get(name, 0)) for name in COUNTED}


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in COUNTED}


# -- the implementations that list spaces ------------------------------------------------------------------


def floor_lister(gateway: str, token: str) -> Callable[[], Iterable[dict[str, Any]]]:
    """The floor: a minimal hand-written ``requests`` loop over the same pages (limit 250, follow ``next``)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def spaces() -> Iterable[dict[str, Any]]:
        url: str | None = f"{gateway}/wiki/api/v2/spaces?limit=250"
        while url:
            response = session.get(url, headers=headers, timeout=30)
            response.raise_for_status()
            body = response.json()
            yield from body["results"]
            link = body["_links"].get("next")
            url = gateway + link if link else None

    return spaces


def provider_lister() -> tuple[Callable[[], Iterable[dict[str, Any]]], Any]:
    """This provider: ``ConfluenceOAuthHook("bench").iter_spaces()`` (a generator, 250 per request)."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    hook = ConfluenceOAuthHook("bench")
    return hook.iter_spaces, hook


def peer(gateway: str, token: str) -> Any:
    """atlassian-python-api 5.x's Confluence Cloud v2 client, pointed at the gateway with a bearer token.

    ``Confluence(url, token=...)`` routes ``https://api.atlassian.com/ex/confluence/...`` URLs to its v2 client
    (``ConfluenceCloud``) by host name; on loopback the same class is chosen with ``api_version=2``.
    """
    from atlassian import Confluence

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Confluence(f"{gateway}/wiki", token=token, api_version=2)


def peer_lister(gateway: str, token: str, limit: int | None) -> Callable[[], Iterable[dict[str, Any]]]:
    client = peer(gateway, token)
    if limit is None:
        return lambda: client.get_spaces()  # its default: limit=25, every page collected into a list
    return lambda: client.get_spaces(limit=limit)


def peer_probes(gateway: str, token: str, state_url: str) -> dict[str, str]:
    """What the peer's other entry points do behind the gateway (recorded, not timed)."""
    from atlassian import Confluence

    probes: dict[str, str] = {}
    cases = {
        "v1 (api_version=1): get_spaces()": (f"{gateway}/wiki", {"api_version": 1}),
        "legacy Confluence(url, cloud=True): get_all_spaces(limit=250)": (f"{gateway}/wiki/api/v2", {"cloud": True}),
    }
    for label, (url, kwargs) in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = Confluence(url, token=token, **kwargs)
            before = counters(state_url)
            try:
                method = client.get_all_spaces if kwargs.get("cloud") else client.get_spaces
                items = list(method(limit=250) if kwargs.get("cloud") else method())
                outcome = f"{len(items)} spaces"
            except Exception as exc:  # noqa: BLE001 - the outcome is what we record
                status = getattr(getattr(exc, "response", None), "status_code", None)
                outcome = f"fails: HTTP {status} ({type(exc).__name__})"
            outcome += f" after {diff(counters(state_url), before)['api_calls']} request(s)"
        probes[label] = outcome
    return probes


# -- row 1 and 2 ---------------------------------------------------------------------------------------------


def run_list(spec: dict[str, Any]) -> dict[str, Any]:
    state_url, gateway, token, expected = spec["state_url"], spec["gateway"], spec["access_token"], spec["expected"]
    provider, hook = provider_lister()
    listers: dict[str, Callable[[], Iterable[dict[str, Any]]]] = {
        "provider": provider,
        "floor": floor_lister(gateway, token),
        "peer_best": peer_lister(gateway, token, 250),
        "peer_default": peer_lister(gateway, token, None),
    }
    out: dict[str, Any] = {name: {"seconds": [], "cpu_seconds": [], "counts": []} for name in listers}

    def one(name: str) -> None:
        before = counters(state_url)
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        n = 0
        for _item in listers[name]():
            n += 1
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        counted = diff(counters(state_url), before)
        if n != expected:
            raise SystemExit(f"{name} listed {n} spaces, not {expected}")
        out[name]["seconds"].append(elapsed)
        out[name]["cpu_seconds"].append(cpu)
        out[name]["counts"].append(counted)

    # The provider's first use: no access token yet and no cloud id (what a task's first call pays).
    one("provider")
    out["provider_first_use"] = {"seconds": out["provider"]["seconds"].pop(), "counts": out["provider"]["counts"].pop()}
    out["provider"]["cpu_seconds"].pop()
    for name in listers:  # warm-up round, discarded: connections open, code paths hot
        one(name)
        for key in ("seconds", "cpu_seconds", "counts"):
            out[name][key].pop()
    # Paired rounds, the order alternating, so that drift and noise from other processes hit both alike.
    for index in range(spec["runs"]):
        for name in ("provider", "floor") if index % 2 == 0 else ("floor", "provider"):
            one(name)
    for _ in range(spec["peer_runs"]):
        for name in ("peer_best", "peer_default"):
            one(name)
    out["provider_client_request_count"] = hook.get_conn().request_count
    out["peer_probes"] = peer_probes(gateway, token, state_url)
    return out


# -- row 3 -------------------------------------------------------------------------------------------------


def run_memory(spec: dict[str, Any]) -> dict[str, Any]:
    import psutil

    state_url, gateway, token, expected = spec["state_url"], spec["gateway"], spec["access_token"], spec["expected"]
    process = psutil.Process()
    if spec["impl"] == "provider":
        lister, hook = provider_lister()
        hook.get_access_token()  # warm: token, cloud id, imports; as a running task would be
        _ = hook.get_conn().cloud_id
        spaces: Callable[[], Iterable[dict[str, Any]]] = lister
    else:
        client = peer(gateway, token)
        spaces = lambda: client.get_spaces(limit=250)  # noqa: E731 - its public call returns one list
    gc.collect()
    start_rss = process.memory_info().rss
    hwm_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = counters(state_url)
    samples: list[tuple[float, int]] = []  # (seconds, bytes above the start), every 50 ms from a thread
    stop = threading.Event()
    started = time.perf_counter()

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append((time.perf_counter() - started, process.memory_info().rss - start_rss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    peak = start_rss
    n = 0
    for _item in spaces():
        n += 1
        if n % 250 == 0:  # after each page of results, when the most is held
            peak = max(peak, process.memory_info().rss)
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    rss = process.memory_info().rss
    peak = max(peak, rss, start_rss + max((b for _, b in samples), default=0))
    hwm_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if hwm_after > hwm_before:  # the kernel's high-water mark catches a spike between two samples
        peak = max(peak, hwm_after)
    if n != expected:
        raise SystemExit(f"{spec['impl']} listed {n} spaces, not {expected}")
    return {
        "items": n,
        "seconds": elapsed,
        "start_rss": start_rss,
        "peak_above_start": peak - start_rss,
        "end_above_start": rss - start_rss,
        "samples": samples,
        "counts": diff(counters(state_url), before),
    }


if __name__ == "__main__":
    mode, raw = sys.argv[1], sys.argv[2]
    spec = json.loads(raw)
    result = run_list(spec) if mode == "list" else run_memory(spec)
    sys.stdout.write(json.dumps(result) + "\n")
