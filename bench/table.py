"""The printed table of ``make bench`` (Markdown): rows 1 to 6 from their own figures, P7 to P10 from the shape
every row module returns (``{"name", "goal", "figures", "met", "notes"}``, optionally ``"ours"`` and
``"reference"`` as ready-made text), and the machine's load beside each row."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: the rows of the second round, in the order they are printed, with the module that measures each
SECOND_ROUND = (
    ("P7", "row_p7_broker_load"),
    ("P8", "row_p8_request_cost"),
    ("P9", "row_p9_quota_slot"),
    ("P10", "row_p10_cold_start"),
)
#: what a row that did not run is called, and its goal (from the issue that asked for it)
NOT_RUN_NAMES = {
    "P7": (
        "The token broker under load: 64 processes x 100 token fetches",
        "0 errors, 1 refresh per expiry, p99 < 50 ms",
    ),
    "P8": ("HTTP requests per operation against the minimum", "every count = its minimum, or the notes say why"),
    "P9": ("Worker-slot seconds during a 30-minute quota wait", "deferring < 1% of holding; 0 failed, 0 duplicates"),
    "P10": ("Task cold start: process start to the first request", "at most HttpHook's time"),
}


def shown(label: str, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the name and goal of its label when it did not run (its module could not say them)."""
    if not row.get("not_run"):
        return row
    name, goal = NOT_RUN_NAMES.get(label, (row.get("name", ""), row.get("goal", "")))
    return {**row, "name": name, "goal": goal}


def yes(flag: bool | None) -> str:
    if flag is None:
        return "not run"
    return "yes" if flag else "NO"


def load_text(row: dict[str, Any] | None) -> str:
    """The 1-minute load average before and after the row, over the number of cores."""
    load = (row or {}).get("load")
    if not load:
        return ""
    return f"{load['before'][0]:.1f} → {load['after'][0]:.1f} ({load['cores']} cores)"


def figures_text(figures: dict[str, Any]) -> str:
    parts = []
    for name, value in figures.items():
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            continue  # detail for the JSON, not the table
        parts.append(f"{name}: {value}")
    return "; ".join(parts)


def generic_line(label: str, row: dict[str, Any]) -> str:
    """One table line of a row module's result (or of a row that did not run, with why)."""
    row = shown(label, row)
    if row.get("not_run"):
        return f"| {label} | {row['name']} | not run: {row['not_run']} | | {row['goal']} | not run | |"
    ours = row.get("ours") or figures_text(row.get("figures", {}))
    return (
        f"| {label} | {row.get('name', '')} | {ours} | {row.get('reference', '')} | {row.get('goal', '')} | "
        f"{yes(row.get('met'))} | {load_text(row)} |"
    )


def table(results: dict[str, Any]) -> str:
    lines = [
        "| # | Measure | This provider | Reference | Goal | Met | Load (1 min) before → after |",
        "|---|---|---|---|---|---|---|",
    ]
    lines.extend(first_round_lines(results))
    for label, _module in SECOND_ROUND:
        row = results.get(label.lower())
        if row is not None:
            lines.append(generic_line(label, row))
    return "\n".join(lines)


def notes(results: dict[str, Any]) -> list[str]:
    """The notes of the second-round rows (why a count is not its minimum, how a figure was taken)."""
    out = []
    for label, _module in SECOND_ROUND:
        row = results.get(label.lower())
        if row and row.get("notes") and not row.get("not_run"):
            text = row["notes"] if isinstance(row["notes"], str) else "\n  ".join(row["notes"])
            out.append(f"{label}: {text}")
    return out


def first_round_lines(results: dict[str, Any]) -> list[str]:
    """The lines of rows 1 to 6 (those that ran)."""
    lines: list[str] = []
    r = results.get("row1")
    if r:
        first = r["provider_first_use"]
        lines.append(
            f"| 1 | HTTP / token requests to list {r['spaces']:,} spaces | {r['provider']['requests']:.0f} / "
            f"{r['provider']['token_requests']:.0f} (first use: {first['requests']} / {first['token_requests']} "
            f"+ {first['accessible_resources']} accessible-resources) | minimum {r['minimum']['requests']} / 0; "
            f"atlassian-python-api 5.x v2 client: {r['peer_default']['requests']:.0f} / 0 at its defaults, "
            f"{r['peer_best']['requests']:.0f} / 0 with limit=250 (it never refreshes; the caller supplies the "
            f"token) | = minimum | {yes(r['goal_met'])} | {load_text(r)} |"
        )
    r = results.get("row2")
    if r:
        lines.append(
            f"| 2 | Wall time to list {results['row1']['spaces']:,} spaces (median of {r['runs']}) | "
            f"{r['provider_seconds'] * 1000:.0f} ms = **{r['ratio']:.2f}x** the floor (fastest runs: "
            f"{r['ratio_of_fastest']:.2f}x; client CPU: {r['client_cpu_ratio']:.2f}x) | floor (`requests` loop) "
            f"{r['floor_seconds'] * 1000:.0f} ms; atlassian-python-api {r['peer_best_seconds'] * 1000:.0f} ms "
            f"(limit=250), {r['peer_default_seconds'] * 1000:.0f} ms (default) | <= 1.15x | {yes(r['goal_met'])} | {load_text(r)} |"
        )
    r = results.get("row3")
    if r:
        lines.append(
            f"| 3 | Peak RSS above start while streaming {r['items']:,} spaces (pages of 250) | "
            f"{r['provider_peak_mb']:.1f} MB (flat) | atlassian-python-api get_spaces(limit=250): "
            f"{r['peer_peak_mb']:.0f} MB (collects a list) | < 30 MB, flat | {yes(r['goal_met'])} | {load_text(r)} |"
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
            f"{r['expiries']} | {yes(r['goal_met'])} | {load_text(r)} |"
        )
    r = results.get("row5")
    if r:
        lines.append(
            f"| 5 | Import of the operators module on top of `airflow.sdk` (median of {r['runs']}) | "
            f"{r['provider_ms']:.1f} ms | Jira provider's operators: {r['jira_ms']:.0f} ms | < 50 ms and < Jira | "
            f"{yes(r['goal_met'])} | {load_text(r)} |"
        )
    r = results.get("row6")
    if r:
        lines.append(
            f"| 6 | Creating {r['pages']} pages at R = {r['rate_per_second']} calls/s ({r['workers']} processes) | "
            f"{r['achieved_per_second']:.1f} calls/s = **{r['share_of_rate'] * 100:.0f}% of R**; "
            f"{r['failed_tasks']} failed tasks; {r['duplicate_pages']} duplicates; {r['pages_created']} pages in "
            f"{r['seconds']:.0f} s | {r['calls_answered_429']} answers were 429 | >= 90% of R, 0 failed, "
            f"0 duplicates | {yes(r['goal_met'])} | {load_text(r)} |"
        )
    return lines


if __name__ == "__main__":  # python bench/table.py bench/results/results.json: the table again, without measuring
    print(table(json.loads(Path(sys.argv[1]).read_text())))
