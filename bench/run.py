"""``make bench``: this provider measured against the physical minimum and against its peers.

A script that prints figures, not a test. All traffic goes to the offline emulator (``FakeAtlassian``) on
127.0.0.1; clients run in subprocesses. Rows 1 to 6 (the first round, ``rows_listing.py`` and ``rows_tasks.py``)
run again in every run, so that every ratio comes from one run on one machine. The second round's rows are modules
``bench/row_p7_broker_load.py``, ``row_p8_request_cost.py``, ``row_p9_quota_slot.py`` and
``row_p10_cold_start.py``, each with ``run(ctx) -> {"name", "goal", "figures", "met", "notes"}`` (``ctx`` is a
:class:`common.BenchContext`); a module that is not there is shown as "not run", with why.

The machine's load (``os.getloadavg()`` before and after each row, and the number of cores) is recorded beside
each row's figures.

Usage: ``python bench/run.py [--rows 1,2,3,4,5,6,P7,P8,P9,P10] [--runs 21]``. Writes
``bench/results/results.json`` and ``bench/results/chart.png``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import EMULATOR_PORT, RESULTS, BenchContext, log, machine
from rows_listing import row_3, rows_1_2
from rows_tasks import row_4, row_5, row_6
from table import SECOND_ROUND, notes, table

from airflow_provider_confluence.config.endpoints import ALLOWED_HOSTS_ENV

ALL_ROWS = "1,2,3,4,5,6,P7,P8,P9,P10"


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measured(results: dict[str, Any], keys: list[str], action: Callable[[], dict[str, Any]]) -> None:
    """Run ``action`` (returning ``{key: row}``), and put the load before and after beside each of its rows."""
    before, started = load_now(), time.monotonic()
    produced = action()
    load = {
        "before": before,
        "after": load_now(),
        "cores": os.cpu_count(),
        "seconds": round(time.monotonic() - started, 1),
    }
    for key in keys:
        if key in produced:
            results[key] = {**produced[key], "load": load}


def second_round_row(module_name: str, ctx: BenchContext) -> dict[str, Any]:
    """Run a row module's ``run(ctx)``; a module that is absent, or that fails, gives a "not run" row saying why."""
    if not (ctx.bench / f"{module_name}.py").exists():
        return {"name": module_name, "goal": "", "met": None, "not_run": f"bench/{module_name}.py is not in this tree"}
    try:
        module = importlib.import_module(module_name)
        row = module.run(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken row must not lose the others' figures
        log(f"{module_name} failed:\n{traceback.format_exc()}")
        return {"name": module_name, "goal": "", "met": None, "not_run": f"it failed: {type(exc).__name__}: {exc}"}
    if not isinstance(row, dict) or not {"name", "goal", "figures", "met"} <= set(row):
        return {"name": module_name, "goal": "", "met": None, "not_run": "its run(ctx) did not return the row shape"}
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=ALL_ROWS, help="rows to run (1 and 2 run together)")
    parser.add_argument("--runs", type=int, default=21, help="paired runs of row 2 (row 3 runs 3 times)")
    parser.add_argument("--out", default=str(RESULTS), help="folder for results.json and chart.png")
    args = parser.parse_args()
    rows = {r.strip().upper() for r in args.rows.split(",") if r.strip()}
    os.environ[ALLOWED_HOSTS_ENV] = f"127.0.0.1:{EMULATOR_PORT}"  # before any process environment is built
    started = time.monotonic()
    info = machine()
    log(
        f"machine: {info['cores']} cores, {info['cpu']}, {info['memory_gib']} GiB, Python {info['python']}, "
        f"Airflow {info['airflow']}, load {info['load_average_at_start']}"
    )
    results: dict[str, Any] = {"machine": info, "command": "make bench", "rows_asked": sorted(rows)}
    work = Path(tempfile.mkdtemp(prefix="apc-bench-"))
    home = work / "airflow-home"
    home.mkdir()
    ctx = BenchContext(home=home, work=work, port=EMULATOR_PORT)
    try:
        if rows & {"1", "2"}:
            measured(results, ["row1", "row2"], lambda: rows_1_2(home, args.runs))
        if "3" in rows:
            measured(results, ["row3"], lambda: {"row3": row_3(home, runs=3)})
        if "5" in rows:
            measured(results, ["row5"], lambda: {"row5": row_5(home)})
        if "4" in rows:
            measured(results, ["row4"], lambda: {"row4": row_4(ctx.db(), work)})
        if "6" in rows:
            measured(results, ["row6"], lambda: {"row6": row_6(ctx.db(), work)})
        for label, module_name in SECOND_ROUND:
            if label in rows:
                log(f"row {label}: {module_name}")
                key = label.lower()
                measured(
                    results, [key], lambda module_name=module_name, key=key: {key: second_round_row(module_name, ctx)}
                )
    finally:
        ctx.close()
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = load_now()
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
    for line in notes(results):
        print(line)
    if "row1" in results:
        for label, outcome in results["row1"]["peer_probes"].items():
            print(f"atlassian-python-api, {label}: {outcome}")
    print(
        f"Load average (1, 5, 15 min) at the start: {info['load_average_at_start']}, at the end: "
        f"{info['load_average_at_end']} "
        f"on {info['cores']} cores; each row's 1-minute load before and after is in the table's last column. Other "
        "work on the machine makes the timings of rows 2 and 6 noisier."
    )
    print(f"\nWrote {out / 'results.json'} and {out / 'chart.png'} in {results['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
