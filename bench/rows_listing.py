"""Rows 1 to 3 of ``make bench`` (first round): listing spaces, against the minimum and atlassian-python-api.

1. HTTP and token requests to list 10,000 spaces: the provider, the minimum, atlassian-python-api 5.x.
2. Wall time to list 10,000 spaces: the provider divided by a minimal ``requests`` loop (goal <= 1.15).
3. Peak RSS while streaming 100,000 spaces in pages of 250 (goal: flat, < 30 MB above the start).

The client side runs in ``bench/clients.py`` (a process of its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import (
    EMULATOR_PORT,
    MB,
    access_token,
    client_env,
    log,
    median,
    run_json,
    seed_spaces,
)

from airflow_provider_confluence.testing import FakeAtlassian

# row parameters
SPACES = 10_000
PAGE_LIMIT = 250
STREAMED = 100_000
PEER_RUNS = 5  # atlassian-python-api at its defaults makes 400 requests a run


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
