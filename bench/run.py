"""``make bench``: this provider measured against the physical minimum and against its peers.

A script that prints figures, not a test. All traffic goes to the offline emulator (``FakeAtlassian``) on
127.0.0.1, which runs in this process; clients run in subprocesses (one per core on a 2-core machine). Rows:

1. HTTP and token requests to list 10,000 spaces: the provider, the minimum, atlassian-python-api 5.x.
2. Wall time to list 10,000 spaces: the provider divided by a minimal ``requests`` loop (goal <= 1.15).
3. Peak RSS while streaming 100,000 spaces in pages of 250 (goal: flat, < 30 MB above the start).
4. Token requests when 32 processes make 50 calls each across 3 access-token expiries (goal: exactly 3),
   against requests-oauthlib's auto-refresh session saving to a shared file without a lock.
5. Import cost of the operators module on top of ``airflow.sdk`` (goal < 50 ms and < the Jira provider's).
6. Creating 500 pages under a rate limit of R calls per second (goal >= 90 % of R, no failed task, no
   duplicate page).

Usage: ``python bench/run.py [--rows 1,2,3,4,5,6] [--runs 7]``. Writes ``bench/results/results.json`` and
``bench/results/chart.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_ENV
from airflow_provider_confluence.testing import FakeAtlassian
from airflow_provider_confluence.testing.confluence import Space

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PY = sys.executable
MB = 1024 * 1024

# row parameters
SPACES = 10_000
PAGE_LIMIT = 250
STREAMED = 100_000
PROCESSES = 32
CALLS = (17, 17, 16)  # 50 calls per process, one phase per access-token expiry
LIFETIME = 12  # seconds an access token lives in row 4 (Atlassian: 3600)
LEEWAY = LIFETIME / 6  # Atlassian's 600 s reuse interval, scaled like the lifetime (600/3600)
PAGES = 500
RATE = 20  # calls per second in row 6
CREATORS = 8  # worker processes creating pages in row 6
IMPORT_RUNS = 9
PEER_RUNS = 5  # atlassian-python-api at its defaults makes 400 requests a run


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# -- machine -------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    packages = {}
    for name in (
        "apache-airflow",
        "airflow-provider-confluence",
        "atlassian-python-api",
        "requests",
        "requests-oauthlib",
        "apache-airflow-providers-atlassian-jira",
    ):
        try:
            packages[name] = version(name)
        except Exception:  # noqa: BLE001
            packages[name] = None
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory,
        "python": platform.python_version(),
        "os": platform.platform(),
        "airflow": packages["apache-airflow"],
        "packages": packages,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# -- helpers -------------------------------------------------------------------------------------------------


def access_token(fake: FakeAtlassian) -> str:
    """A token for the clients that do not refresh (the floor loop, atlassian-python-api)."""
    body = {
        "grant_type": "refresh_token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": fake.issue_grant(),
    }
    return str(requests.post(fake.token_url, json=body, timeout=30).json()["access_token"])


def seed_spaces(fake: FakeAtlassian, n: int) -> None:
    """Put ``n`` spaces straight into the emulator's model.

    ``FakeAtlassian.add_spaces`` checks each new key against every existing one (quadratic: minutes for
    100,000), so the bench writes the records directly. They are the same records ``add_space`` makes, without
    home pages, which space listings do not show.
    """
    model = fake._model
    with model.lock:
        now = fake.now()
        for index in range(1, n + 1):
            space = Space(model._next_space, f"B{index}", f"Space B{index}", "global", "current", now, ())
            model._spaces[space.id] = space
            model._next_space += 1


def emulator_port() -> int:
    """The one port every emulator of the run listens on: the provider sends credentials only to the hosts
    named in ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS``, which ``main`` sets to it for every process."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


EMULATOR_PORT = emulator_port()


def client_env(airflow_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore",
    }
    env.update(extra or {})
    return env


def run_json(args: list[str], env: dict[str, str], timeout: float) -> Any:
    result = subprocess.run([PY, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=str(BENCH))
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- rows 1 and 2 --------------------------------------------------------------------------------------------


def rows_1_2(home: Path, runs: int) -> dict[str, Any]:
    log(f"rows 1-2: listing {SPACES:,} spaces, {runs} runs per implementation")
    with FakeAtlassian(port=EMULATOR_PORT) as fake:
        fake.add_spaces(SPACES)  # the public seeding (with home pages), fine at this size
        conn = fake.connection("bench", state_store="memory")
        spec = {
            "state_url": fake.url + "/_emulator/state",
            "gateway": f"{fake.api_url}/ex/confluence/{fake.cloud_id}",
            "access_token": access_token(fake),
            "runs": runs,
            "peer_runs": PEER_RUNS,
            "expected": SPACES,
        }
        env = client_env(home, {"AIRFLOW_CONN_BENCH": json.dumps(conn)})
        out = run_json(["clients.py", "list", json.dumps(spec)], env, timeout=600)
    minimum = -(-SPACES // PAGE_LIMIT)

    def summary(name: str) -> dict[str, Any]:
        counts = out[name]["counts"]
        return {
            "requests": median([c["api_calls"] for c in counts]),
            "token_requests": median([c["token_requests"] for c in counts]),
            "other_requests": median([c["accessible_resources_calls"] for c in counts]),
            "seconds_median": median(out[name]["seconds"]),
            "seconds": out[name]["seconds"],
            "cpu_seconds_median": median(out[name]["cpu_seconds"]),
            "counts_all_equal": all(c == counts[0] for c in counts),
        }

    impls = {name: summary(name) for name in ("provider", "floor", "peer_best", "peer_default")}
    first = out["provider_first_use"]["counts"]
    row1 = {
        "spaces": SPACES,
        "minimum": {"requests": minimum, "token_requests": 0},
        "provider": {"requests": impls["provider"]["requests"], "token_requests": impls["provider"]["token_requests"]},
        "provider_first_use": {
            "requests": first["api_calls"],
            "token_requests": first["token_requests"],
            "accessible_resources": first["accessible_resources_calls"],
        },
        "peer_default": {
            "requests": impls["peer_default"]["requests"],
            "token_requests": impls["peer_default"]["token_requests"],
            "how": "ConfluenceCloud(gateway + '/wiki', token=..., api_version=2).get_spaces()",
        },
        "peer_best": {
            "requests": impls["peer_best"]["requests"],
            "token_requests": impls["peer_best"]["token_requests"],
            "how": "ConfluenceCloud(gateway + '/wiki', token=..., api_version=2).get_spaces(limit=250)",
        },
        "peer_probes": out["peer_probes"],
        "goal_met": impls["provider"]["requests"] == minimum and impls["provider"]["token_requests"] == 0,
    }
    pairs = zip(impls["provider"]["seconds"], impls["floor"]["seconds"], strict=True)
    ratio = median([mine / floor for mine, floor in pairs])
    row2 = {
        "runs": runs,
        "method": "median of the ratios of paired runs (provider and floor back to back, order alternating)",
        "ratio_of_medians": impls["provider"]["seconds_median"] / impls["floor"]["seconds_median"],
        "ratio_of_fastest": min(impls["provider"]["seconds"]) / min(impls["floor"]["seconds"]),
        "client_cpu_ratio": impls["provider"]["cpu_seconds_median"] / impls["floor"]["cpu_seconds_median"],
        "provider_seconds": impls["provider"]["seconds_median"],
        "floor_seconds": impls["floor"]["seconds_median"],
        "peer_best_seconds": impls["peer_best"]["seconds_median"],
        "peer_default_seconds": impls["peer_default"]["seconds_median"],
        "ratio": ratio,
        "all_seconds": {name: impls[name]["seconds"] for name in impls},
        "goal": 1.15,
        "goal_met": ratio <= 1.15,
    }
    return {"row1": row1, "row2": row2}


# -- row 3 ---------------------------------------------------------------------------------------------------


def row_3(home: Path, runs: int) -> dict[str, Any]:
    log(
        f"row 3: streaming {STREAMED:,} spaces ({STREAMED // PAGE_LIMIT} pages of {PAGE_LIMIT}); provider x{runs}, "
        "peer x1"
    )
    measured: dict[str, list[dict[str, Any]]] = {"provider": [], "peer": []}
    with FakeAtlassian(port=EMULATOR_PORT) as fake:
        seed_spaces(fake, STREAMED)
        conn = fake.connection("bench", state_store="memory")
        spec = {
            "state_url": fake.url + "/_emulator/state",
            "gateway": f"{fake.api_url}/ex/confluence/{fake.cloud_id}",
            "access_token": access_token(fake),
            "expected": STREAMED,
        }
        env = client_env(home, {"AIRFLOW_CONN_BENCH": json.dumps(conn)})
        for impl, times in (("provider", runs), ("peer", 1)):
            for _ in range(times):
                measured[impl].append(run_json(["clients.py", "memory", json.dumps({**spec, "impl": impl})], env, 600))
    provider = sorted(measured["provider"], key=lambda r: r["peak_above_start"])[len(measured["provider"]) // 2]
    peer = measured["peer"][0]
    peak_mb = provider["peak_above_start"] / MB
    return {
        "items": STREAMED,
        "method": "RSS of the client process (psutil) after every page of 250 items and every 50 ms from a "
        "thread, plus the kernel's high-water mark (getrusage ru_maxrss) when it rose; minus the RSS "
        "after imports, the first token and the cloud id (a running task's state)",
        "provider_peak_mb": peak_mb,
        "provider_peaks_mb": [r["peak_above_start"] / MB for r in measured["provider"]],
        "provider_end_mb": provider["end_above_start"] / MB,
        "provider_requests": provider["counts"]["api_calls"],
        "provider_seconds": provider["seconds"],
        "provider_samples": provider["samples"],
        "peer_peak_mb": peer["peak_above_start"] / MB,
        "peer_samples": peer["samples"],
        "peer_how": "ConfluenceCloud(...).get_spaces(limit=250): its public call collects every page into a list",
        "goal_mb": 30,
        "goal_met": peak_mb < 30,
    }


# -- the metadata database of rows 4 and 6 -------------------------------------------------------------------


class MetadataDb:
    """A fresh, migrated Airflow metadata database: PostgreSQL when reachable, else SQLite (host file lock)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.kind = "sqlite"
        self._admin_url: str | None = None
        self._name = f"apc_bench_{os.getpid()}"
        url = os.environ.get("CONFLUENCE_TEST_PG_URL")
        sql_url = f"sqlite:///{home}/airflow.db"
        if url:
            try:
                import psycopg2

                admin = psycopg2.connect(url, connect_timeout=5)
                admin.autocommit = True
                with admin.cursor() as cursor:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{self._name}"')
                    cursor.execute(f'CREATE DATABASE "{self._name}"')
                admin.close()
                parts = urlsplit(url)
                sql_url = urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{self._name}", "", ""))
                self.kind = "postgresql"
                self._admin_url = url
            except Exception as exc:  # noqa: BLE001 - fall back, and say so
                log(f"PostgreSQL at CONFLUENCE_TEST_PG_URL is not usable ({type(exc).__name__}); using SQLite")
        from cryptography.fernet import Fernet

        self.env = client_env(
            home,
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_url,
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            },
        )
        result = subprocess.run(
            [PY, "-m", "airflow", "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=str(home),
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stderr[-3000:]}")

    def close(self) -> None:
        if self._admin_url:
            import psycopg2

            admin = psycopg2.connect(self._admin_url)
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self._name,)
                )
                cursor.execute(f'DROP DATABASE IF EXISTS "{self._name}"')
            admin.close()


class Workers:
    """``count`` worker processes (forked by one ``worker.py spawn``), released phase by phase through files."""

    def __init__(self, folder: Path, env: dict[str, str], mode: str, count: int, spec: dict[str, Any]) -> None:
        self.folder = folder
        self.count = count
        self.log = open(folder / "workers.log", "w")  # noqa: SIM115
        command = [PY, "worker.py", "spawn", mode, str(count), json.dumps({**spec, "dir": str(folder)})]
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=str(BENCH), start_new_session=True
        )

    def wait_files(self, prefix: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for _ in self.folder.glob(prefix + "*")) < self.count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"workers stalled at {prefix!r} (exit {self.proc.returncode}); their log:\n"
                    + (self.folder / "workers.log").read_text()[-3000:]
                )
            time.sleep(0.02)

    def go(self, phase: int) -> None:
        (self.folder / f"go-{phase}").touch()

    def results(self, timeout: float) -> list[dict[str, Any]]:
        out, _ = self.proc.communicate(timeout=timeout)
        self.log.close()
        if self.proc.returncode != 0:
            raise RuntimeError("workers failed:\n" + (self.folder / "workers.log").read_text()[-3000:])
        return list(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        """Stop the spawner and the workers it forked (its own process group), if still running."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()


# -- row 4 ---------------------------------------------------------------------------------------------------


def last_ok_refresh(fake: FakeAtlassian) -> float:
    times = [entry["at"] for entry in fake.refresh_log if entry["ok"]]
    return max(times) if times else 0.0


def race(
    fake: FakeAtlassian, env: dict[str, str], folder: Path, spec: dict[str, Any], mode: str, since: float
) -> dict[str, Any]:
    """Run the phased workers; before each phase, wait until the newest access token has expired."""
    workers = Workers(folder, env, mode, PROCESSES, spec)
    try:
        workers.wait_files("ready-", timeout=300)
        phases = []
        for phase in range(1, len(CALLS) + 1):
            expired_at = max(last_ok_refresh(fake), since) + LIFETIME + 0.3
            time.sleep(max(0.0, expired_at - time.time()))
            started = time.monotonic()
            workers.go(phase)
            workers.wait_files(f"done-{phase}-", timeout=120)
            phases.append(round(time.monotonic() - started, 2))
        outputs = workers.results(timeout=60)
    finally:
        workers.kill()
    counters = fake.counters
    return {
        "token_requests": counters["token_requests"],
        "refreshes": counters["refreshes"],
        "invalid_grants": counters["invalid_grants"],
        "stale_refresh_reuses": counters["stale_refresh_reuses"],
        "grant_revocations": counters["grant_revocations"],
        "api_calls": counters["api_calls"],
        "calls": sum(o["calls"] for o in outputs),
        "failed_calls": sum(o["failures"] for o in outputs),
        "errors": dict(sum((Counter(o["errors"]) for o in outputs), Counter())),
        "phase_seconds": phases,
    }


def row_4(db: MetadataDb, work: Path) -> dict[str, Any]:
    log(
        f"row 4: {PROCESSES} processes x {sum(CALLS)} calls across {len(CALLS)} expiries "
        f"(access tokens live {LIFETIME} s, reuse interval {LEEWAY:.0f} s); {db.kind} metadata database"
    )
    results: dict[str, Any] = {
        "processes": PROCESSES,
        "calls_per_process": sum(CALLS),
        "expiries": len(CALLS),
        "access_token_lifetime_s": LIFETIME,
        "reuse_interval_s": LEEWAY,
        "database": db.kind,
    }
    with FakeAtlassian(access_token_lifetime=LIFETIME, rotation_leeway=LEEWAY, port=EMULATOR_PORT) as fake:
        fake.add_space("DEMO")
        # this provider: the connection store (a row lock in the shared database)
        conn_id = "confluence_bench"
        run_json(["worker.py", "put-connection", conn_id, json.dumps(fake.connection(conn_id))], db.env, 120)
        run_json(["worker.py", "warm", conn_id, "DEMO"], db.env, 120)  # the grant's first token, saved
        since = last_ok_refresh(fake)
        fake.reset_counters()
        folder = work / "row4-provider"
        folder.mkdir()
        spec = {"calls": list(CALLS), "conn_id": conn_id}
        results["provider"] = race(fake, db.env, folder, spec, "provider", since)
        log(f"  provider: {results['provider']['token_requests']} token requests")

        # requests-oauthlib's auto-refresh session, the token in a shared file without a lock
        fake.reset_counters()
        token_file = work / "naive-token.json"
        body = {
            "grant_type": "refresh_token",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "refresh_token": fake.issue_grant(),
        }
        token = requests.post(fake.token_url, json=body, timeout=30).json()
        token["expires_at"] = time.time() + float(token["expires_in"])
        token_file.write_text(json.dumps(token))
        since = time.time()
        fake.reset_counters()
        folder = work / "row4-naive"
        folder.mkdir()
        gateway = f"{fake.api_url}/ex/confluence/{fake.cloud_id}"
        spec = {
            "calls": list(CALLS),
            "token_file": str(token_file),
            "grant_url": fake.token_url,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "gateway": gateway,
        }
        results["naive"] = race(fake, db.env, folder, spec, "naive", since)
        log(
            f"  requests-oauthlib: {results['naive']['token_requests']} token requests, "
            f"{results['naive']['invalid_grants']} invalid_grant"
        )
    provider = results["provider"]
    results["goal_met"] = (
        provider["token_requests"] == len(CALLS) and provider["invalid_grants"] == 0 and provider["failed_calls"] == 0
    )
    return results


# -- row 5 ---------------------------------------------------------------------------------------------------

OURS = "airflow_provider_confluence.operators.confluence"
JIRA = "airflow.providers.atlassian.jira.operators.jira"


def import_cost(module: str, env: dict[str, str]) -> float:
    """Milliseconds ``module`` adds on top of ``import airflow.sdk`` (its cumulative line of -X importtime)."""
    result = subprocess.run(
        [PY, "-X", "importtime", "-c", f"import airflow.sdk; import {module}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{result.stderr[-2000:]}")
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == module:
            return int(line.split("|")[1]) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def row_5(home: Path) -> dict[str, Any]:
    log(f"row 5: import cost on top of airflow.sdk, {IMPORT_RUNS} fresh processes each")
    env = client_env(home)
    import_cost(OURS, env), import_cost(JIRA, env)  # warm the file cache and the bytecode
    ours, jira = [], []
    for index in range(IMPORT_RUNS):
        for module, bucket in ((OURS, ours), (JIRA, jira))[:: 1 if index % 2 else -1]:
            bucket.append(import_cost(module, env))
    return {
        "runs": IMPORT_RUNS,
        "provider_ms": median(ours),
        "jira_ms": median(jira),
        "provider_all_ms": ours,
        "jira_all_ms": jira,
        "goal_ms": 50,
        "goal_met": median(ours) < 50 and median(ours) < median(jira),
    }


# -- row 6 ---------------------------------------------------------------------------------------------------


def row_6(db: MetadataDb, work: Path) -> dict[str, Any]:
    log(f"row 6: {PAGES} pages from {CREATORS} worker processes under {RATE} calls/s (429 + Retry-After)")
    with FakeAtlassian(port=EMULATOR_PORT) as fake:
        fake.add_space("BENCH")
        conn_id = "confluence_create"
        run_json(["worker.py", "put-connection", conn_id, json.dumps(fake.connection(conn_id))], db.env, 120)
        space_id = run_json(["worker.py", "warm", conn_id, "BENCH"], db.env, 120)["space_id"]
        folder = work / "row6"
        folder.mkdir()
        titles = [f"Bench page {i}" for i in range(1, PAGES + 1)]
        spec = {
            "per_worker": [{"titles": titles[i::CREATORS]} for i in range(CREATORS)],
            "space_id": space_id,
            "conn_id": conn_id,
        }
        workers = Workers(folder, db.env, "create", CREATORS, spec)
        try:
            workers.wait_files("ready-", timeout=300)
            fake.reset_counters()
            fake.rate_limit(RATE, retry_after=1)  # a bucket of one second's worth
            started = time.time()
            workers.go(1)
            workers.wait_files("done-1-", timeout=600)
            elapsed = time.time() - started
            outputs = workers.results(timeout=60)
        finally:
            workers.kill()
        fake.rate_limit(None)
        counters = fake.counters
        requests_log = fake.requests
        created = [p["title"] for p in fake.pages if p["title"].startswith("Bench page ")]
    ok_calls = counters["api_calls"] - counters["throttled"]
    per_second = Counter(int(r["at"] - started) for r in requests_log if r["status"] != 429 and r["at"] >= started)
    achieved = ok_calls / elapsed
    failed = sum(o["failed"] for o in outputs)
    duplicates = len(created) - len(set(created))
    return {
        "pages": PAGES,
        "rate_per_second": RATE,
        "workers": CREATORS,
        "seconds": elapsed,
        "calls_processed": ok_calls,
        "calls_answered_429": counters["throttled"],
        "achieved_per_second": achieved,
        "share_of_rate": achieved / RATE,
        "pages_per_second": len(set(created)) / elapsed,
        "failed_tasks": failed,
        "errors": dict(sum((Counter(o["errors"]) for o in outputs), Counter())),
        "pages_created": len(created),
        "duplicate_pages": duplicates,
        "retry_after": 1,
        "processed_per_second": [per_second.get(s, 0) for s in range(int(elapsed) + 1)],
        "goal_met": achieved >= 0.9 * RATE and failed == 0 and duplicates == 0 and len(set(created)) == PAGES,
    }


# -- report --------------------------------------------------------------------------------------------------


def yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def table(results: dict[str, Any]) -> str:
    lines = ["| # | Measure | This provider | Reference | Goal | Met |", "|---|---|---|---|---|---|"]
    r = results.get("row1")
    if r:
        first = r["provider_first_use"]
        lines.append(
            f"| 1 | HTTP / token requests to list {r['spaces']:,} spaces | {r['provider']['requests']:.0f} / "
            f"{r['provider']['token_requests']:.0f} (first use: {first['requests']} / {first['token_requests']} "
            f"+ {first['accessible_resources']} accessible-resources) | minimum {r['minimum']['requests']} / 0; "
            f"atlassian-python-api 5.x v2 client: {r['peer_default']['requests']:.0f} / 0 at its defaults, "
            f"{r['peer_best']['requests']:.0f} / 0 with limit=250 (it never refreshes; the caller supplies the "
            f"token) | = minimum | {yes(r['goal_met'])} |"
        )
    r = results.get("row2")
    if r:
        lines.append(
            f"| 2 | Wall time to list {results['row1']['spaces']:,} spaces (median of {r['runs']}) | "
            f"{r['provider_seconds'] * 1000:.0f} ms = **{r['ratio']:.2f}x** the floor (fastest runs: "
            f"{r['ratio_of_fastest']:.2f}x; client CPU: {r['client_cpu_ratio']:.2f}x) | floor (`requests` loop) "
            f"{r['floor_seconds'] * 1000:.0f} ms; atlassian-python-api {r['peer_best_seconds'] * 1000:.0f} ms "
            f"(limit=250), {r['peer_default_seconds'] * 1000:.0f} ms (default) | <= 1.15x | {yes(r['goal_met'])} |"
        )
    r = results.get("row3")
    if r:
        lines.append(
            f"| 3 | Peak RSS above start while streaming {r['items']:,} spaces (pages of 250) | "
            f"{r['provider_peak_mb']:.1f} MB (flat) | atlassian-python-api get_spaces(limit=250): "
            f"{r['peer_peak_mb']:.0f} MB (collects a list) | < 30 MB, flat | {yes(r['goal_met'])} |"
        )
    r = results.get("row4")
    if r:
        p, n = r["provider"], r["naive"]
        lines.append(
            f"| 4 | Token requests: {r['processes']} processes x {r['calls_per_process']} calls across "
            f"{r['expiries']} expiries | **{p['token_requests']}**; {p['invalid_grants']} invalid_grant; "
            f"{p['failed_calls']} failed calls ({r['database']} row lock) | requests-oauthlib auto-refresh, "
            f"shared file, no lock: {n['token_requests']} token requests, {n['invalid_grants']} invalid_grant, "
            f"{n['grant_revocations']} grant revoked, {n['failed_calls']} of {n['calls']} calls failed | exactly "
            f"{r['expiries']} | {yes(r['goal_met'])} |"
        )
    r = results.get("row5")
    if r:
        lines.append(
            f"| 5 | Import of the operators module on top of `airflow.sdk` (median of {r['runs']}) | "
            f"{r['provider_ms']:.1f} ms | Jira provider's operators: {r['jira_ms']:.0f} ms | < 50 ms and < Jira | "
            f"{yes(r['goal_met'])} |"
        )
    r = results.get("row6")
    if r:
        lines.append(
            f"| 6 | Creating {r['pages']} pages at R = {r['rate_per_second']} calls/s ({r['workers']} processes) | "
            f"{r['achieved_per_second']:.1f} calls/s = **{r['share_of_rate'] * 100:.0f}% of R**; "
            f"{r['failed_tasks']} failed tasks; {r['duplicate_pages']} duplicates; {r['pages_created']} pages in "
            f"{r['seconds']:.0f} s | {r['calls_answered_429']} answers were 429 | >= 90% of R, 0 failed, "
            f"0 duplicates | {yes(r['goal_met'])} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1,2,3,4,5,6", help="rows to run (1 and 2 run together)")
    parser.add_argument("--runs", type=int, default=21, help="paired runs of row 2 (row 3 runs 3 times)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for results.json and chart.png")
    args = parser.parse_args()
    rows = {int(r) for r in args.rows.split(",") if r.strip()}
    os.environ[ALLOWED_HOSTS_ENV] = f"127.0.0.1:{EMULATOR_PORT}"  # before any process environment is built
    started = time.monotonic()
    info = machine()
    log(
        f"machine: {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, Python {info['python']}, "
        f"Airflow {info['airflow']}"
    )
    results: dict[str, Any] = {"machine": info, "command": "make bench"}
    work = Path(tempfile.mkdtemp(prefix="apc-bench-"))
    home = work / "airflow-home"
    home.mkdir()
    db: MetadataDb | None = None
    try:
        if rows & {1, 2}:
            results.update(rows_1_2(home, args.runs))
        if 3 in rows:
            results["row3"] = row_3(home, runs=3)
        if 5 in rows:
            results["row5"] = row_5(home)
        if rows & {4, 6}:
            db = MetadataDb(home)
            if 4 in rows:
                results["row4"] = row_4(db, work)
            if 6 in rows:
                results["row6"] = row_6(db, work)
    finally:
        if db is not None:
            db.close()
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from chart import draw

    draw(results, out / "chart.png")
    print()
    print(
        f"Measured on: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, Python {info['python']}, "
        f"Airflow {info['airflow']}"
    )
    print(table(results))
    print()
    if "row1" in results:
        for label, outcome in results["row1"]["peer_probes"].items():
            print(f"atlassian-python-api, {label}: {outcome}")
    print(
        f"Load average (1, 5, 15 min) at the start: {info['load_average_at_start']}, at the end: "
        f"{info['load_average_at_end']}; other work on the machine makes the timings of rows 2 and 6 noisier."
    )
    print(f"\nWrote {out / 'results.json'} and {out / 'chart.png'} in {results['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
