"""Row P10 of ``make bench``: task cold start, from the task process's start to its first request on the wire.

A fresh ``python`` process does what a task process does before its first Confluence request: it starts the
interpreter, imports ``airflow.sdk`` (the Task SDK that runs every Airflow 3 task), imports the hook's module,
builds the hook from a connection in an ``AIRFLOW_CONN_*`` variable, and makes one request. The parent records
``time.time()`` just before it starts the process; the emulator records ``time.time()`` when the request arrives
(before it is handled). The figure is the difference, median and 90th percentile of ``RUNS`` runs per client,
the clients interleaved (a different one first in each round) after one warm-up run each.

Every client has a valid token at hand and no reason for a second request:

* this provider: ``ConfluenceOAuthHook(...).get_space_id("DEMO")``; the connection has ``state_store=variable``
  and its ``cloud_id``, and the Variable ``confluence_oauth_token_state__<conn_id>`` (an ``AIRFLOW_VAR_*``
  variable, so no database) holds a valid access token: no token request, no accessible-resources call;
* ``HttpHook`` (apache-airflow-providers-http): ``run()`` of the same URL, the bearer token in the connection's
  extra (which the hook sends as headers);
* the Jira provider's ``JiraHook``: ``get_conn().myself()`` (its first request; the emulator answers 404, which
  does not matter here: only its arrival is timed).

The child is a task process as far as the hooks can tell: after ``import airflow.sdk`` it blocks the ORM as the
supervisor does in the process it forks for a task, and sets a stand-in for the supervisor's channel
(``task_runner.SUPERVISOR_COMMS``), so that connections and Variables are looked up the Task SDK's way (the
``AIRFLOW_CONN_*``/``AIRFLOW_VAR_*`` variables answer first, so the channel is never asked). Without that, a
plain script is not a task: this provider then reads the connection through Airflow core's lookup, which builds
an ORM ``Connection`` and so configures every mapper of Airflow's models (about 2.4 s here).

The child also prints its own ``time.time()`` at its first line, after ``import airflow.sdk`` and after the
hook's module, so the figure splits into interpreter start, Airflow, the hook's module, and the rest (reading
the connection and the token, building the client, sending). The goal is decided on the time after ``import
airflow.sdk``: before it, the three run the same code.

Run alone: ``.venv-bench/bin/python bench/row_p10_cold_start.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow_provider_confluence.auth.stores.support import variable_key
from airflow_provider_confluence.auth.token_codec import variable_value
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_ENV
from airflow_provider_confluence.testing import FakeAtlassian

RUNS = 15
GOAL = "at most HttpHook's time (median), on the part after `import airflow.sdk`, which the three share"
CONN_ID = "bench_p10"
CLIENTS = ("provider", "http", "jira")

# The task process. argv: client, URL of the space lookup (HttpHook), emulator URL (not used by the others).
CHILD = r"""
import time
t_main = time.time()
import json, sys
client, url = sys.argv[1], sys.argv[2]
import airflow.sdk
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.supervisor import block_orm_access
block_orm_access()  # as the supervisor does in the process it forks for a task


class Comms:  # the task's channel to its supervisor; AIRFLOW_CONN_* and AIRFLOW_VAR_* lookups never reach it
    def send(self, message):
        return None


task_runner.SUPERVISOR_COMMS = Comms()
t_sdk = time.time()
if client == "provider":
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    t_module = time.time()
    ConfluenceOAuthHook("bench_p10").get_space_id("DEMO")
elif client == "http":
    from airflow.providers.http.hooks.http import HttpHook
    t_module = time.time()
    HttpHook(method="GET", http_conn_id="bench_p10_http").run(url)
else:
    from airflow.providers.atlassian.jira.hooks.jira import JiraHook
    t_module = time.time()
    try:
        JiraHook(jira_conn_id="bench_p10_jira").get_conn().myself()
    except Exception:  # the emulator is not Jira: only the request's arrival counts
        pass
print("P10-MARKS " + json.dumps({"main": t_main, "sdk": t_sdk, "module": t_module}))
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


@contextmanager
def arrivals() -> Iterator[list[float]]:
    """``time.time()`` of every request the emulators of this block receive, taken before it is handled."""
    from airflow_provider_confluence.testing import server

    seen: list[float] = []
    original = server.Router.dispatch

    def dispatch(self: Any, req: Any) -> Any:
        seen.append(time.time())
        return original(self, req)

    server.Router.dispatch = dispatch  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        server.Router.dispatch = original  # type: ignore[method-assign]


def environment(fake: FakeAtlassian) -> tuple[dict[str, str], str]:
    """The child's environment (three connections, the cached token state) and the URL HttpHook asks for."""
    access = fake.issue_access_token()
    refresh = fake.issue_grant()
    now = time.time()
    state = TokenState(
        refresh_token=refresh,
        access_token=access,
        expires_at=now + 3600,
        cloud_id=fake.cloud_id,
        rotated_at=now,
    )
    ours = fake.connection(CONN_ID, refresh_token=refresh, state_store="variable", cloud_id=fake.cloud_id)
    host, port = fake.url.removeprefix("http://").split(":")
    path = f"/ex/confluence/{fake.cloud_id}/wiki/api/v2/spaces?keys=DEMO"
    http = {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
    http["extra"] = {"Authorization": f"Bearer {access}", "Accept": "application/json"}  # type: ignore[assignment]
    jira = {"conn_type": "jira", "host": fake.url, "login": "bench@example.com", "password": "not-a-token"}
    env = {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME") or tempfile.mkdtemp(prefix="apc-p10-home-"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore",
        ALLOWED_HOSTS_ENV: fake.allowed_endpoint_hosts,
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(ours),
        f"AIRFLOW_VAR_{variable_key(CONN_ID).upper()}": variable_value(state, refresh),
        f"AIRFLOW_CONN_{CONN_ID.upper()}_HTTP": json.dumps(http),
        f"AIRFLOW_CONN_{CONN_ID.upper()}_JIRA": json.dumps(jira),
    }
    return env, path


def cold_start(client: str, url: str, env: dict[str, str], seen: list[float], python: str) -> dict[str, float]:
    """One task process: seconds from its start to its first request's arrival, and the child's marks."""
    before = len(seen)
    started = time.time()
    result = subprocess.run(
        [python, "-c", CHILD, client, url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"P10 {client} failed:\n{result.stderr[-3000:]}")
    line = next(x for x in reversed(result.stdout.splitlines()) if x.startswith("P10-MARKS "))
    marks = json.loads(line.split(" ", 1)[1])
    if len(seen) == before:
        raise RuntimeError(f"P10 {client}: no request reached the emulator")
    first = seen[before]
    return {
        "total": first - started,
        "interpreter": marks["main"] - started,
        "airflow_sdk": marks["sdk"] - marks["main"],
        "module": marks["module"] - marks["sdk"],
        "to_request": first - marks["module"],
        "after_sdk": first - marks["sdk"],
        "requests": float(len(seen) - before),
    }


def cells(figures: dict[str, Any]) -> dict[str, str]:
    """The row's table cells (``ours``, ``reference``) from its figures."""

    def text(client: dict[str, Any]) -> str:
        return (
            f"after airflow.sdk: median {client['after_sdk_median_ms']:.0f} ms (p90 {client['after_sdk_p90_ms']:.0f}); "
            f"from process start: {client['median_ms']:,.0f} ms"
        )

    return {
        "ours": f"{text(figures['provider'])}; {figures['runs']} runs",
        "reference": f"HttpHook: {text(figures['http'])}. Jira provider: {text(figures['jira'])}",
    }


def run(ctx: Any = None) -> dict[str, Any]:
    """Row P10. ``ctx`` (run.py's ``BenchContext``) gives ``python`` (the interpreter of the task processes) and
    ``quick`` (fewer runs); run alone, the row uses this interpreter."""
    runs = 5 if ctx is not None and ctx.quick else RUNS
    python = str(ctx.python if ctx is not None else sys.executable)
    load_before = [round(x, 2) for x in os.getloadavg()]
    measured: dict[str, list[dict[str, float]]] = {client: [] for client in CLIENTS}
    with arrivals() as seen, FakeAtlassian() as fake:
        fake.add_space("DEMO")
        env, url = environment(fake)
        for client in CLIENTS:  # warm-up: bytecode and the file cache
            cold_start(client, url, env, seen, python)
        for index in range(runs):
            order = CLIENTS[index % 3 :] + CLIENTS[: index % 3]
            for client in order:
                measured[client].append(cold_start(client, url, env, seen, python))
    load_after = [round(x, 2) for x in os.getloadavg()]

    def summary(client: str) -> dict[str, Any]:
        rows = measured[client]
        out: dict[str, Any] = {
            "median_ms": statistics.median(r["total"] for r in rows) * 1000,
            "p90_ms": percentile([r["total"] for r in rows], 0.9) * 1000,
            "requests_per_run": max(r["requests"] for r in rows),
        }
        out["after_sdk_median_ms"] = statistics.median(r["after_sdk"] for r in rows) * 1000
        out["after_sdk_p90_ms"] = percentile([r["after_sdk"] for r in rows], 0.9) * 1000
        for part in ("interpreter", "airflow_sdk", "module", "to_request"):
            out[f"{part}_median_ms"] = statistics.median(r[part] for r in rows) * 1000
        out["all_ms"] = [round(r["total"] * 1000, 1) for r in rows]
        return out

    figures = {client: summary(client) for client in CLIENTS}
    figures["runs"] = runs
    figures["load_average_before"] = load_before
    figures["load_average_after"] = load_after
    ours, http = figures["provider"], figures["http"]
    figures["met_total"] = ours["median_ms"] <= http["median_ms"]
    figures["met_after_sdk"] = ours["after_sdk_median_ms"] <= http["after_sdk_median_ms"]
    return {
        **cells(figures),
        "name": "P10 task cold start",
        "goal": GOAL,
        "figures": figures,
        "met": figures["met_after_sdk"],
        "notes": (
            f"From the task process's start to its first request's arrival at the emulator, median of {runs} "
            "fresh processes per client, interleaved. Each imports airflow.sdk, then the hook's module, builds the "
            "hook from an AIRFLOW_CONN_* variable and makes one request with a valid token at hand (ours: "
            "state_store=variable, the state in an AIRFLOW_VAR_* variable, cloud_id in the extra), its ORM blocked "
            "and a stand-in for the supervisor's channel, as in a real Airflow 3 task. The goal is decided on the "
            "time after `import airflow.sdk`: the interpreter and airflow.sdk are the same code for the three "
            "clients, and on a loaded 2-core machine their spread (seconds) swamps the difference; the totals are "
            "reported beside it (met_total). The parts are medians of each part, so they need not add up."
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per client")
    args = parser.parse_args()
    result = run({"runs_p10": args.runs})
    figures = result["figures"]
    print(f"{result['name']} (goal: {result['goal']}): met = {result['met']}")
    for client in CLIENTS:
        f = figures[client]
        print(
            f"  {client:9s} median {f['median_ms']:7.1f} ms, p90 {f['p90_ms']:7.1f} ms; after airflow.sdk: median "
            f"{f['after_sdk_median_ms']:6.1f} ms, p90 {f['after_sdk_p90_ms']:6.1f} ms | interpreter "
            f"{f['interpreter_median_ms']:6.1f}, airflow.sdk {f['airflow_sdk_median_ms']:6.1f}, module "
            f"{f['module_median_ms']:6.1f}, to the request {f['to_request_median_ms']:6.1f} ms; "
            f"{f['requests_per_run']:.0f} request(s)"
        )
    print(f"  load average before {figures['load_average_before']}, after {figures['load_average_after']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
