"""The one chart of ``make bench``: a panel per row, drawn from ``results.json``.

python bench/chart.py bench/results/results.json bench/results/chart.png   (redraw without re-measuring)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OURS = "#0052cc"  # this provider
FLOOR = "#8c8c8c"  # the minimum / floor
PEER = "#de6b35"  # the peers
GOAL = "#2e7d32"


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str], fmt: str) -> None:
    bars = ax.bar(labels, values, color=colors)
    top = max(values) if values else 1
    for bar, value in zip(bars, values, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() + top * 0.02,
            fmt.format(value),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_ylim(0, top * 1.22 if top else 1)
    ax.tick_params(axis="x", labelsize=8.5)


def _goal(ax: Any, y: float, text: str) -> None:
    ax.axhline(y, color=GOAL, linestyle="--", linewidth=1.2)
    ax.text(ax.get_xlim()[1], y, f" {text}", color=GOAL, va="bottom", ha="right", fontsize=8.5)


def _missing(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=10.5)
    ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, color=FLOOR)
    ax.set_xticks([])
    ax.set_yticks([])


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from chart_second import draw_second_round

    fig, axes = plt.subplots(4, 3, figsize=(17, 21))
    (a1, a2, a3), (a4, a5, a6) = axes[:2]
    draw_second_round(axes[2:], results)
    apa = "atlassian-\npython-api"

    r1 = results.get("row1")
    title = "1. HTTP requests to list 10,000 spaces"
    if r1:
        _bars(
            a1,
            ["minimum\n(ceil(10000/250))", "this provider", f"{apa}\nlimit=250", f"{apa}\ndefaults (25)"],
            [
                r1["minimum"]["requests"],
                r1["provider"]["requests"],
                r1["peer_best"]["requests"],
                r1["peer_default"]["requests"],
            ],
            [FLOOR, OURS, PEER, PEER],
            "{:.0f}",
        )
        a1.set_title(f"{title}\ntoken requests: 0 for all while the token is valid", fontsize=10.5)
        a1.set_ylabel("HTTP requests")
    else:
        _missing(a1, title)

    r2 = results.get("row2")
    title = "2. Wall time to list 10,000 spaces (median)"
    if r2:
        _bars(
            a2,
            ["floor\n(requests loop)", "this provider", f"{apa}\nlimit=250", f"{apa}\ndefaults (25)"],
            [
                r2["floor_seconds"] * 1000,
                r2["provider_seconds"] * 1000,
                r2["peer_best_seconds"] * 1000,
                r2["peer_default_seconds"] * 1000,
            ],
            [FLOOR, OURS, PEER, PEER],
            "{:.0f} ms",
        )
        a2.set_title(f"{title}\nprovider / floor = {r2['ratio']:.2f} (goal <= 1.15)", fontsize=10.5)
        a2.set_ylabel("milliseconds")
    else:
        _missing(a2, title)

    r3 = results.get("row3")
    title = "3. Memory while streaming 100,000 spaces"
    if r3:
        for samples, label, color in (
            (r3["provider_samples"], "this provider (a generator)", OURS),
            (r3["peer_samples"], "atlassian-python-api get_spaces(limit=250)", PEER),
        ):
            a3.plot(
                [t for t, _ in samples], [b / (1024 * 1024) for _, b in samples], label=label, color=color, linewidth=2
            )
        _goal(a3, r3["goal_mb"], "goal: < 30 MB")
        a3.set_title(
            f"{title}\nprovider peak {r3['provider_peak_mb']:.1f} MB, peer {r3['peer_peak_mb']:.0f} MB above the start",
            fontsize=10.5,
        )
        a3.set_xlabel("seconds")
        a3.set_ylabel("RSS above the start (MB)")
        a3.legend(fontsize=8.5, loc="upper left")
    else:
        _missing(a3, title)

    r4 = results.get("row4")
    title = "4. 32 processes x 50 calls across 3 token expiries"
    if r4:
        p, n = r4["provider"], r4["naive"]
        groups = ["token requests", "invalid_grant", "failed calls"]
        mine = [p["token_requests"], p["invalid_grants"], p["failed_calls"]]
        theirs = [n["token_requests"], n["invalid_grants"], n["failed_calls"]]
        width = 0.38
        for offset, values, color, label in (
            (-width / 2, mine, OURS, "this provider (row lock, re-read)"),
            (width / 2, theirs, PEER, "requests-oauthlib auto-refresh, shared file, no lock"),
        ):
            xs = [i + offset for i in range(len(groups))]
            a4.bar(xs, values, width, color=color, label=label)
            for x, value in zip(xs, values, strict=True):
                a4.text(x, max(value, 0.6) * 1.15, f"{value}", ha="center", va="bottom", fontsize=9)
        a4.set_yscale("symlog", linthresh=1)
        a4.set_ylim(0, max(theirs + mine + [3]) * 8)
        a4.set_xticks(range(len(groups)), groups)
        a4.axhline(r4["expiries"], color=GOAL, linestyle="--", linewidth=1.2)
        a4.text(
            2.45,
            r4["expiries"] * 1.15,
            "goal: exactly 3 token requests",
            color=GOAL,
            fontsize=8.5,
            va="bottom",
            ha="right",
        )
        a4.set_title(
            f"{title}\n(log scale; {n['grant_revocations']} grant revoked by requests-oauthlib)", fontsize=10.5
        )
        a4.legend(fontsize=8.5, loc="upper left")
    else:
        _missing(a4, title)

    r5 = results.get("row5")
    title = "5. Import cost on top of airflow.sdk (median)"
    if r5:
        _bars(
            a5,
            ["this provider's\noperators", "Jira provider's\noperators"],
            [r5["provider_ms"], r5["jira_ms"]],
            [OURS, PEER],
            "{:.1f} ms",
        )
        a5.set_xlim(-0.6, 1.6)
        _goal(a5, r5["goal_ms"], "goal: < 50 ms")
        a5.set_title(f"{title}\npython -X importtime, fresh processes", fontsize=10.5)
        a5.set_ylabel("milliseconds")
    else:
        _missing(a5, title)

    r6 = results.get("row6")
    title = "6. Creating 500 pages under a rate limit (429 + Retry-After)"
    if r6:
        series = r6["processed_per_second"]
        a6.plot(range(len(series)), series, color=OURS, linewidth=1.5, label="calls processed per second")
        rate = r6["rate_per_second"]
        a6.axhline(rate, color=FLOOR, linestyle="-", linewidth=1, label=f"R = {rate} calls/s")
        a6.axhline(
            r6["achieved_per_second"],
            color=OURS,
            linestyle=":",
            linewidth=1.5,
            label=f"average: {r6['achieved_per_second']:.1f} calls/s",
        )
        a6.axhline(0.9 * rate, color=GOAL, linestyle="--", linewidth=1.2, label="goal: 90% of R")
        a6.set_ylim(0, rate * 2)
        a6.set_title(
            f"{title}\n{r6['share_of_rate'] * 100:.0f}% of R, {r6['failed_tasks']} failed tasks, "
            f"{r6['duplicate_pages']} duplicate pages",
            fontsize=10.5,
        )
        a6.set_xlabel("seconds since the start")
        a6.set_ylabel("calls per second")
        a6.legend(fontsize=8.5, loc="upper left", ncol=2)
    else:
        _missing(a6, title)

    info = results.get("machine", {})
    fig.suptitle(
        f"airflow-provider-confluence, make bench: {info.get('cores')} cores ({info.get('cpu')}), "
        f"{info.get('memory_gib')} GiB, Python {info.get('python')}, Airflow {info.get('airflow')}",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.975))
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
