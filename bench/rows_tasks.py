"""Rows 4 to 6 of ``make bench`` (first round): tokens across processes, import cost, pages under a rate limit.

4. Token requests when 32 processes make 50 calls each across 3 access-token expiries (goal: exactly 3),
   against requests-oauthlib's auto-refresh session saving to a shared file without a lock.
5. Import cost of the operators module on top of ``airflow.sdk`` (goal < 50 ms and < the Jira provider's).
6. Creating 500 pages under a rate limit of R calls per second (goal >= 90 % of R, no failed task, no
   duplicate page).

The worker side runs in ``bench/worker.py``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from common import (
    EMULATOR_PORT,
    PY,
    MetadataDb,
    Workers,
    client_env,
    log,
    median,
    run_json,
)

from airflow_provider_confluence.testing import FakeAtlassian

# row parameters
PROCESSES = 32
CALLS = (17, 17, 16)  # 50 calls per process, one phase per access-token expiry
LIFETIME = 12  # seconds an access token lives in row 4 (Atlassian: 3600)
LEEWAY = LIFETIME / 6  # Atlassian's 600 s reuse interval, scaled like the lifetime (600/3600)
PAGES = 500
RATE = 20  # calls per second in row 6
CREATORS = 8  # worker processes creating pages in row 6
IMPORT_RUNS = 9


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
