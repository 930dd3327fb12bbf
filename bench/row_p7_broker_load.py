"""Row P7 of ``make bench``: the token broker of a real ``airflow api-server`` under load.

``PROCESSES`` worker processes, forked from one parent that has imported Airflow and blocked its ORM as the
Task SDK's supervisor does, each fetch an access token ``FETCHES`` times through the broker, for a
``confluence_oauth`` connection held in PostgreSQL. Access tokens live ``LIFETIME`` seconds on the emulator, so
they expire many times during the run. Each fetch is a task's first fetch: a new ``ConfluenceOAuthHook`` (its
token source is built, untimed), then ``get_access_token()`` timed (one signed request to the broker, which
reads the connection row and refreshes under ``SELECT ... FOR UPDATE`` when the token is due), then
``get_access_token()`` again, timed: the cached token. The latency the broker adds is each first fetch minus
the process's median cached fetch. Each worker stops after ``BUDGET`` seconds; the fetches it did not start are
reported as skipped, so that an overloaded server still gives a figure in bounded time.

First one process alone makes ``FETCHES`` fetches through the broker: its service time without queueing. Then
``SWEEP``'s concurrencies, to show where the p99 goal stops holding, then the ``PROCESSES`` workers. A closed
loop of N clients that each wait for their answer obeys Little's law: the mean time in the system is N divided
by the throughput, so with N = 64 and a server on the same 2 cores the queue, not the broker's work, is most of
the latency. The comparison is the same run with ``state_store=variable`` (no broker: each process
reads the Variable from PostgreSQL and refreshes under a host file lock; its processes may use the ORM, as on
Airflow 2.11, with a NullPool as Airflow 2.11's task command gives them), after the API server has been stopped.

Refreshes per expiry: the emulator logs every refresh with the life left to the newest access token. A refresh
is due when that is at most the leeway (a quarter of the lifetime); one made while a fresh token was there is
an extra refresh in the same expiry window.

Run alone: ``.venv-bench/bin/python bench/row_p7_broker_load.py`` (needs CONFLUENCE_TEST_PG_URL; ``make
services`` starts PostgreSQL). Internal commands: ``spawn MODE N SPEC_JSON`` and ``read-variable KEY``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PY = sys.executable
PROCESSES = 64
FETCHES = 100
LIFETIME = 2.0  # seconds an access token lives on the emulator
LEEWAY = LIFETIME / 4  # the token manager refreshes this long before expiry (a quarter of a short lifetime)
GOAL_P99_MS = 50.0
API_WORKERS = 1  # Airflow's default ([api] workers)
GOAL = f"0 errors, exactly 1 refresh per expiry, p99 added latency < {GOAL_P99_MS:.0f} ms"
START_TIMEOUT = 300.0
BUDGET = 150.0  # seconds a worker keeps fetching; fetches not started by then are counted as skipped
SWEEP = (4, 16)  # concurrencies between one process alone and PROCESSES: where the p99 goal stops holding
# Airflow 2's task command gives each task process a NullPool ("have to re-configure ORM with the NullPool,
# otherwise, each run command may leave behind multiple open sleeping connections ... which could easily exceed
# the database connection limit"); the Variable-store workers are configured the same way.
NULL_POOL = {"AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_ENABLED": "False"}


# -- the worker processes ----------------------------------------------------------------------------------


def fetch_loop(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec["fetches"]`` first fetches of a new hook, each followed by a cached fetch; errors are counted."""
    from worker import wait_for

    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    folder, ident = Path(spec["dir"]), spec["id"]
    (folder / f"ready-{ident}").touch()
    wait_for(folder / "go")
    fetched: list[float] = []
    cached: list[float] = []
    errors: Counter[str] = Counter()
    sent = mismatched = 0
    started = time.time()
    deadline, skipped = started + spec["budget_s"], 0
    for _ in range(spec["fetches"]):
        if time.time() > deadline:  # the run is bounded: what is left is counted, not made
            skipped += 1
            continue
        hook = ConfluenceOAuthHook(spec["conn_id"])
        try:
            source = hook.token_manager
            t0 = time.perf_counter()
            token = source.get_access_token()
            t1 = time.perf_counter()
            again = source.get_access_token()
            t2 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - every failure is counted, as a failed task would be
            errors[type(exc).__name__] += 1
            continue
        finally:
            hook.session.close()
        sent += int(getattr(source, "requests_sent", 0))
        mismatched += again != token
        fetched.append(t1 - t0)
        cached.append(t2 - t1)
    ended = time.time()
    # The baseline is this process's median cached fetch: a second fetch that came too close to the expiry (or
    # after it, behind a slow broker) went to the network again, and is counted in cached_differs.
    baseline = statistics.median(cached) if cached else 0.0
    added = [value - baseline for value in fetched]
    return {
        "fetch_s": fetched,
        "cached_s": cached,
        "added_s": added,
        "errors": dict(errors),
        "broker_requests": sent,
        "cached_differs": mismatched,
        "skipped": skipped,
        "started": started,
        "ended": ended,
    }


def spawn(mode: str, count: int, spec: dict[str, Any]) -> None:
    """(Broker) block the ORM and make the connection's first fetch, then fork ``count`` workers with
    ``worker.py``'s ``spawn`` (which imports once and forks, as Airflow's executors do)."""
    import worker

    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    if mode == "broker":
        from airflow.sdk.execution_time.supervisor import block_orm_access

        block_orm_access()
        warm = ConfluenceOAuthHook(spec["conn_id"])
        warm.get_access_token()  # the first token and the cloud id, kept in the connection row by the broker
        warm.session.close()
    worker.MODES["p7"] = (fetch_loop, "airflow_provider_confluence.hooks.confluence")
    worker.spawn("p7", count, spec)


def read_variable(key: str) -> None:
    from airflow.models.variable import Variable

    print(Variable.get(key))


# -- the parent ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def ms_percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": statistics.median(values) * 1000, "p99_ms": cuts[98] * 1000, "max_ms": max(values) * 1000}


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a process started in a session of its own, with every child it forked."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@contextmanager
def api_server(env: dict[str, str], home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real ``airflow api-server`` with the provider's plugin (from the installed wheel's entry point); yields
    the broker's URL and the environment of its task workers."""
    import requests

    port = free_port()
    env = {
        **env,
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": str(API_WORKERS),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # Airflow's default: the server logs every request
    }
    (home / "plugins").mkdir(exist_ok=True)
    log_path = home / "api-server.out"
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            [PY, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(home),
            start_new_session=True,
        )
    broker = f"http://127.0.0.1:{port}/confluence-oauth/token"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # healthy, and the plugin's broker answers (an unsigned request gets a JSON 422)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no token broker in the API server:\n{log_path.read_text()[-4000:]}")
            try:
                if requests.post(broker, json={}, timeout=2).status_code == 422:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        yield broker, env
    finally:
        stop(proc)


def deployment_key(broker: str, env: dict[str, str]) -> str:
    """The deployment's broker key, which the API server creates at the first request (refused, unsigned)."""
    import requests

    from airflow_provider_confluence.auth.broker.protocol import GATE_VARIABLE, signed_request

    requests.post(broker, json=signed_request("x", "x", timestamp=int(time.time())), timeout=30)
    return helper(env, "read-variable", GATE_VARIABLE).strip()


def helper(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PY, str(BENCH / "row_p7_broker_load.py"), *args], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"row_p7_broker_load.py {args[0]} failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def put_connection(env: dict[str, str], conn_id: str, connection: dict[str, Any]) -> None:
    result = subprocess.run(
        [PY, str(BENCH / "worker.py"), "put-connection", conn_id, json.dumps(connection)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"put-connection failed:\n{result.stderr[-3000:]}")


def race(mode: str, count: int, env: dict[str, str], folder: Path, conn_id: str, fake: Any) -> dict[str, Any]:
    """Start ``count`` workers, release them together, and sum up what they and the emulator saw."""
    folder.mkdir(parents=True)
    spec = {"dir": str(folder), "conn_id": conn_id, "fetches": FETCHES, "budget_s": BUDGET}
    with open(folder / "workers.log", "w") as log:
        proc = subprocess.Popen(
            [PY, str(BENCH / "row_p7_broker_load.py"), "spawn", mode, str(count), json.dumps(spec)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while sum(1 for _ in folder.glob("ready-*")) < count:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{mode} workers did not start:\n{(folder / 'workers.log').read_text()[-3000:]}")
            time.sleep(0.05)
        fake.reset_counters()
        before = load()
        (folder / "go").touch()
        proc.communicate(timeout=1800)
        after = load()
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} workers failed:\n{(folder / 'workers.log').read_text()[-3000:]}")
    finally:
        stop(proc)
    outputs = [json.loads((folder / f"result-{i}.json").read_text()) for i in range(count)]
    return summarize(outputs, fake, before, after)


def summarize(outputs: list[dict[str, Any]], fake: Any, before: list[float], after: list[float]) -> dict[str, Any]:
    fetched = [x for o in outputs for x in o["fetch_s"]]
    cached = [x for o in outputs for x in o["cached_s"]]
    added = [x for o in outputs for x in o["added_s"]]
    errors = sum((Counter(o["errors"]) for o in outputs), Counter())
    span = max(o["ended"] for o in outputs) - min(o["started"] for o in outputs)
    counters, log = fake.counters, fake.refresh_log
    ok = [e for e in log if e["ok"]]
    due = [e for e in ok if e["latest_access_remaining"] is None or e["latest_access_remaining"] <= LEEWAY + 0.05]
    return {
        "processes": len(outputs),
        "fetches": len(fetched),
        "skipped": sum(o["skipped"] for o in outputs),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(span, 2),
        "fetches_per_second": len(fetched) / span,
        "broker_requests": sum(o["broker_requests"] for o in outputs),
        "added": ms_percentiles(added),
        "fetch": ms_percentiles(fetched),
        "cached": ms_percentiles(cached),
        "cached_differs": sum(o["cached_differs"] for o in outputs),
        "refreshes": len(ok),
        "expiry_windows": len(due),
        "extra_refreshes": len(ok) - len(due),
        "refreshes_per_expiry": len(ok) / len(due) if due else None,
        "expiries_possible": round(span / (LIFETIME - LEEWAY), 1),
        "invalid_grants": counters["invalid_grants"],
        "stale_refresh_reuses": counters["stale_refresh_reuses"],
        "grant_revocations": counters["grant_revocations"],
        "load_average_before": before,
        "load_average_after": after,
    }


def brief(figures: dict[str, Any]) -> dict[str, Any]:
    """A sweep point: latency, throughput, errors, refreshes, and what Little's law says the mean must be."""
    return {
        "processes": figures["processes"],
        "added_p50_ms": figures["added"]["p50_ms"],
        "added_p99_ms": figures["added"]["p99_ms"],
        "fetches_per_second": figures["fetches_per_second"],
        "littles_law_mean_ms": 1000 * figures["processes"] / figures["fetches_per_second"],
        "errors": figures["errors"],
        "skipped": figures["skipped"],
        "extra_refreshes": figures["extra_refreshes"],
        "goal_met": goal_met(figures),
    }


def goal_met(figures: dict[str, Any]) -> bool:
    return bool(
        figures["errors"] == 0
        and figures["skipped"] == 0
        and figures["extra_refreshes"] == 0
        and figures["invalid_grants"] == 0
        and figures["stale_refresh_reuses"] == 0
        and figures["added"]["p99_ms"] < GOAL_P99_MS
    )


def run(ctx: Any = None) -> dict[str, Any]:
    """Row P7. ``ctx`` (run.py's ``BenchContext``) gives the run's PostgreSQL database (``db()``) and a scratch
    folder (``work``); without it (run alone) the row makes its own, and drops them after."""
    from common import MetadataDb

    from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_ENV
    from airflow_provider_confluence.testing import FakeAtlassian

    own_work = ctx is None
    work = Path(ctx.work) if ctx is not None else Path(tempfile.mkdtemp(prefix="apc-p7-"))
    home = work / "p7-home"
    home.mkdir(parents=True, exist_ok=True)
    db = ctx.db() if ctx is not None else None
    own_db = db is None
    figures: dict[str, Any] = {
        "processes": PROCESSES,
        "fetches_per_process": FETCHES,
        "access_token_lifetime_s": LIFETIME,
        "api_server_workers": API_WORKERS,
        "load_average_at_start": load(),
    }
    try:
        if own_db:
            db = MetadataDb(home)
        if db.kind != "postgresql":
            raise RuntimeError("row P7 needs PostgreSQL (CONFLUENCE_TEST_PG_URL; `make services` starts it)")
        figures["database"] = db.kind
        with FakeAtlassian(access_token_lifetime=LIFETIME) as fake:
            base = {
                **db.env,
                ALLOWED_HOSTS_ENV: fake.allowed_endpoint_hosts,
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            }
            conn_id = "confluence_p7"
            connection = fake.connection(conn_id, broker_secret=secrets.token_urlsafe(32))  # state_store=auto
            put_connection(base, conn_id, connection)
            with api_server(base, home) as (broker, server_env):
                from airflow_provider_confluence.auth.broker.protocol import GATE_VARIABLE

                workers = {
                    **base,
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": server_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"],
                    f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection),  # what the execution API gives
                    f"AIRFLOW_VAR_{GATE_VARIABLE.upper()}": deployment_key(broker, server_env),
                }
                # alone first: a server that has just been flooded may still work off requests given up on
                figures["broker_alone"] = race("broker", 1, workers, work / "p7-alone", conn_id, fake)
                figures["sweep"] = {
                    str(n): brief(race("broker", n, workers, work / f"p7-sweep-{n}", conn_id, fake)) for n in SWEEP
                }
                figures["broker"] = race("broker", PROCESSES, workers, work / "p7-broker", conn_id, fake)
            variable_id = "confluence_p7_variable"
            put_connection(base, variable_id, fake.connection(variable_id, state_store="variable"))
            figures["variable"] = race(
                "variable", PROCESSES, {**base, **NULL_POOL}, work / "p7-variable", variable_id, fake
            )
    finally:
        if own_db and db is not None:
            db.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    figures["load_average_at_end"] = load()
    b, v = figures["broker"], figures["variable"]
    return {
        **cells(figures),
        "name": "P7 the broker under load",
        "goal": GOAL,
        "figures": figures,
        "met": goal_met(b),
        "notes": (
            f"{PROCESSES} processes x {FETCHES} fetches through one `airflow api-server` ({API_WORKERS} worker), "
            f"PostgreSQL, {LIFETIME:.0f}-second tokens. Broker: added p50 {b['added']['p50_ms']:.1f} ms, p99 "
            f"{b['added']['p99_ms']:.1f} ms, {b['fetches_per_second']:.1f} fetches/s, {b['errors']} errors, "
            f"{b['skipped']} fetches skipped after {BUDGET:.0f} s, "
            f"{b['refreshes']} refreshes in {b['expiry_windows']} expiry windows. One process alone: p99 "
            f"{figures['broker_alone']['added']['p99_ms']:.1f} ms (service time without queueing). {sweep_text(figures)} "
            f"Variable store "
            f"(host lock, no broker): added p50 {v['added']['p50_ms']:.1f} ms, p99 {v['added']['p99_ms']:.1f} ms, "
            f"{v['fetches_per_second']:.1f} fetches/s, {v['errors']} errors, {v['skipped']} skipped, {v['refreshes']} refreshes in "
            f"{v['expiry_windows']} expiry windows."
        ),
    }


def cells(figures: dict[str, Any]) -> dict[str, str]:
    """The row's table cells (``ours``, ``reference``) from its figures."""
    b, a, v = figures["broker"], figures["broker_alone"], figures["variable"]
    return {
        "ours": (
            f"broker, {b['processes']} processes: added p50 {b['added']['p50_ms']:,.0f} ms, p99 "
            f"{b['added']['p99_ms']:,.0f} ms; {b['fetches_per_second']:.1f} fetches/s; {b['errors']} errors; "
            f"{b['skipped']} fetches skipped after the budget; {b['refreshes']} refreshes / {b['expiry_windows']} "
            f"expiries. One process alone: p99 {a['added']['p99_ms']:.0f} ms, {a['errors']} errors. "
            f"{sweep_text(figures)}"
        ),
        "reference": (
            f"Variable store, one host, {v['processes']} processes: added p50 {v['added']['p50_ms']:,.0f} ms, p99 "
            f"{v['added']['p99_ms']:,.0f} ms; {v['errors']} errors {v['error_kinds'] or ''}; {v['refreshes']} "
            f"refreshes / {v['expiry_windows']} expiries"
        ),
    }


def sweep_text(figures: dict[str, Any]) -> str:
    """The sweep in a sentence (empty for a run recorded before the sweep existed)."""
    points = [figures["sweep"][key] for key in sorted(figures.get("sweep", {}), key=int)]
    if not points:
        return ""
    each = "; ".join(
        f"{p['processes']} processes: p99 {p['added_p99_ms']:,.0f} ms, {p['fetches_per_second']:.0f}/s" for p in points
    )
    held = [1] if goal_met(figures["broker_alone"]) else []
    held += [p["processes"] for p in points if p["goal_met"]]
    where = (
        "at no concurrency measured"
        if not held
        else ("for one process alone" if max(held) == 1 else f"up to {max(held)} processes")
    )
    return f"Sweep: {each}; the p99 goal holds {where}."


def show(figures: dict[str, Any]) -> None:
    for label in ("broker", "broker_alone", "variable"):
        f = figures[label]
        print(
            f"  {label:12s} {f['processes']:2d} processes: added p50 {f['added']['p50_ms']:7.1f} ms, p99 "
            f"{f['added']['p99_ms']:7.1f} ms (fetch p50 {f['fetch']['p50_ms']:.1f}, p99 {f['fetch']['p99_ms']:.1f}, "
            f"max {f['fetch']['max_ms']:.0f}; cached p50 {f['cached']['p50_ms'] * 1000:.1f} us); "
            f"{f['fetches']} fetches, {f['fetches_per_second']:.1f}/s over {f['seconds']} s, {f['skipped']} skipped "
            f"(budget {BUDGET:.0f} s); {f['errors']} errors "
            f"{f['error_kinds'] or ''}; {f['refreshes']} refreshes / {f['expiry_windows']} expiry windows "
            f"({f['extra_refreshes']} extra, {f['invalid_grants']} invalid_grant); load {f['load_average_before']} "
            f"-> {f['load_average_after']}"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "spawn":
        spawn(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "read-variable":
        read_variable(sys.argv[2])
        return 0
    global PROCESSES, FETCHES, BUDGET
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--fetches", type=int, default=FETCHES)
    parser.add_argument("--budget", type=float, default=BUDGET, help="seconds each worker keeps fetching")
    args = parser.parse_args()
    PROCESSES, FETCHES, BUDGET = args.processes, args.fetches, args.budget
    result = run()
    print(f"{result['name']} (goal: {result['goal']}): met = {result['met']}")
    show(result["figures"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
