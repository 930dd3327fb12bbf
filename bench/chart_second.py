"""The second round's panels of the ``make bench`` chart (P7 to P10) and the machine's load per row."""

from __future__ import annotations

from typing import Any

OURS = "#0052cc"
FLOOR = "#8c8c8c"
PEER = "#de6b35"
GOAL = "#2e7d32"


def _not_run(ax: Any, title: str, why: str) -> None:
    ax.set_title(title, fontsize=10.5)
    ax.text(0.5, 0.5, f"not run\n{why}", ha="center", va="center", transform=ax.transAxes, color=FLOOR, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def figures_panel(ax: Any, label: str, row: dict[str, Any] | None) -> None:
    """A row that has no panel of its own (P7, P10): its name, goal and scalar figures as text."""
    from table import shown

    row = shown(label, row) if row else row
    title = f"{label}. {(row or {}).get('name', '')}"[:70]
    if not row or row.get("not_run"):
        _not_run(ax, title, (row or {}).get("not_run", "not asked for"))
        return
    scalars = [f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in row["figures"].items()]
    scalars = [s for s in scalars if len(s) < 80][:14]
    met = {True: "met", False: "NOT met", None: "not run"}[row.get("met")]
    ax.text(
        0.02,
        0.98,
        "\n".join([f"goal: {row.get('goal', '')} ({met})", "", *scalars]),
        va="top",
        fontsize=8.5,
        transform=ax.transAxes,
        family="monospace",
    )
    ax.set_title(title, fontsize=10.5)
    ax.set_xticks([])
    ax.set_yticks([])


def p8_panel(ax: Any, row: dict[str, Any] | None) -> None:
    title = "P8. HTTP requests per operation"
    if not row or row.get("not_run"):
        _not_run(ax, title, (row or {}).get("not_run", "not asked for"))
        return
    figures = row["figures"]
    ops = [op for op in figures if isinstance(figures[op], dict) and "minimum" in figures[op]]
    width = 0.27
    series = (
        ("minimum", FLOOR, "minimum (by hand)"),
        ("ours", OURS, "this provider"),
        ("theirs", PEER, "atlassian-python-api 5.0.5"),
    )
    for index, (key, color, label) in enumerate(series):
        xs = [i + (index - 1) * width for i in range(len(ops))]
        values = [figures[op][key] for op in ops]
        ax.bar(xs, values, width, color=color, label=label)
        for x, value, op in zip(xs, values, ops, strict=True):
            failed = key == "theirs" and figures[op]["theirs_outcome"] != "ok"
            ax.text(
                x,
                value + 0.1,
                "x" if failed else f"{value}",
                ha="center",
                va="bottom",
                fontsize=8,
                color="#b00020" if failed else "black",
            )
    ax.set_xticks(range(len(ops)), ops, fontsize=8.5)
    ax.set_ylabel("HTTP requests")
    ax.set_ylim(0, max(figures[op][k] for op in ops for k in ("minimum", "ours", "theirs")) * 1.3)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"{title}\n(x: the peer's call failed after that many requests)", fontsize=10.5)


def p9_panel(ax: Any, row: dict[str, Any] | None) -> None:
    title = "P9. Worker-slot seconds during a 30-minute quota wait"
    if not row or row.get("not_run"):
        _not_run(ax, title, (row or {}).get("not_run", "not asked for"))
        return
    f = row["figures"]
    values = [f["hold_slot_seconds"], f["defer_slot_seconds"]]
    bars = ax.bar(
        ["holding the slot\n(sleep until retry_at)", "deferring\n(this provider)"], values, color=[PEER, OURS]
    )
    ax.set_yscale("log")
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value * 1.3, f"{value:,.2f} s", ha="center", fontsize=9)
    ax.axhline(f["hold_slot_seconds"] * 0.01, color=GOAL, linestyle="--", linewidth=1.2)
    ax.text(1.45, f["hold_slot_seconds"] * 0.012, "goal: < 1% of holding", color=GOAL, ha="right", fontsize=8.5)
    ax.set_ylim(max(min(values) / 10, 1e-3), max(values) * 20)
    ax.set_ylabel("slot-seconds (log scale)")
    ax.set_title(
        f"{title}\n{f['defer']['tasks']} tasks: {f['share_of_holding'] * 100:.3f}% of holding, "
        f"{f['defer_failed_tasks']} failed, {f['defer_duplicate_pages']} duplicates",
        fontsize=10.5,
    )


def load_panel(ax: Any, results: dict[str, Any]) -> None:
    """The 1-minute load average before and after each row (what else the 2 cores were doing)."""
    keys = ["row1", "row3", "row4", "row5", "row6", "p7", "p8", "p9", "p10"]
    names = ["1-2", "3", "4", "5", "6", "P7", "P8", "P9", "P10"]
    shown = [
        (n, results[k]["load"])
        for k, n in zip(keys, names, strict=True)
        if results.get(k, {}).get("load") and not results[k].get("not_run")
    ]
    if not shown:
        _not_run(ax, "Machine load per row", "no row ran")
        return
    xs = range(len(shown))
    ax.bar([x - 0.2 for x in xs], [load["before"][0] for _, load in shown], 0.4, color=FLOOR, label="before")
    ax.bar([x + 0.2 for x in xs], [load["after"][0] for _, load in shown], 0.4, color=OURS, label="after")
    cores = shown[0][1]["cores"]
    ax.axhline(cores, color=GOAL, linestyle="--", linewidth=1.2)
    ax.text(len(shown) - 0.5, cores, f" {cores} cores", color=GOAL, ha="right", va="bottom", fontsize=8.5)
    ax.set_xticks(list(xs), [n for n, _ in shown])
    ax.set_ylabel("1-minute load average")
    ax.legend(fontsize=8.5, loc="upper left")
    ax.set_title("Machine load before and after each row", fontsize=10.5)


def draw_second_round(axes: Any, results: dict[str, Any]) -> None:
    """Fill the chart's last two rows of panels: P7, P8, P9 / P10, the load, (empty)."""
    (a7, a8, a9), (a10, load, spare) = axes
    figures_panel(a7, "P7", results.get("p7"))
    p8_panel(a8, results.get("p8"))
    p9_panel(a9, results.get("p9"))
    figures_panel(a10, "P10", results.get("p10"))
    load_panel(load, results)
    spare.axis("off")
