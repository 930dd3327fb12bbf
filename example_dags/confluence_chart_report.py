"""Publish a report page that shows a chart drawn with Matplotlib, next to the table of its figures.

Needs a ``confluence_default`` connection of type ``confluence_oauth`` (see the README) whose grant has the
attachment scopes (``read:attachment:confluence read:content-details:confluence write:attachment:confluence``),
a space whose key is the ``space_key`` param, and Matplotlib on the workers (the provider does not install it).

The chart travels through XCom as base64 text; the operator uploads it as the attachment ``daily-volume.png``
before it writes the body that shows it. A re-run with the same figures uploads nothing and writes no page
version.
"""

from __future__ import annotations

from typing import Any

import pendulum

from airflow_provider_confluence.operators.confluence import ConfluenceCreatePageOperator

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.decorators import task


def volume_rows() -> list[dict[str, Any]]:
    """Stand-in for the real query: orders and refunds per day for a week."""
    orders = [1180, 1254, 1302, 1221, 1408, 1530, 1497]
    refunds = [31, 29, 40, 35, 33, 52, 47]
    return [
        {"day": f"2026-05-{day:02d}", "orders": o, "refunds": r}
        for day, o, r in zip(range(1, 8), orders, refunds, strict=True)
    ]


def volume_chart(rows: list[dict[str, Any]]) -> Any:
    """The chart, as a Matplotlib figure (``Figure`` directly, not pyplot: no global state in a worker)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3), dpi=100)
    axes = figure.subplots()
    days = [row["day"][5:] for row in rows]
    axes.bar(days, [row["orders"] for row in rows], color="#0c66e4", label="orders")
    axes.plot(days, [row["refunds"] * 10 for row in rows], color="#e2483d", marker="o", label="refunds x 10")
    axes.set_title("Daily volume")
    axes.legend(loc="upper left")
    figure.tight_layout()
    return figure


def report_markdown(rows: list[dict[str, Any]]) -> str:
    """The page: a headline, the chart, and the table of the figures it shows."""
    lines = [
        f"Orders this week: **{sum(row['orders'] for row in rows)}**.",
        "",
        "![Daily volume](daily-volume.png)",
        "",
        "| day | orders | refunds |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {row['day']} | {row['orders']} | {row['refunds']} |" for row in rows]
    return "\n".join(lines)


with DAG(
    dag_id="confluence_chart_report",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"space_key": "DEMO"},
    tags=["confluence", "example"],
) as dag:

    @task
    def collect_volume() -> list[dict[str, Any]]:
        return volume_rows()

    @task
    def draw_chart(rows: list[dict[str, Any]]) -> str:
        """Draw the chart and hand it on as base64 PNG (XCom carries text, not bytes)."""
        from airflow_provider_confluence.content.images import figure_png_base64

        return figure_png_base64(volume_chart(rows))

    @task
    def write_report(rows: list[dict[str, Any]]) -> str:
        return report_markdown(rows)

    rows = collect_volume()
    ConfluenceCreatePageOperator(
        task_id="publish_chart_report",
        space_key="{{ params.space_key }}",
        title="Order volume",
        body=write_report(rows),
        representation="markdown",
        images={"daily-volume.png": draw_chart(rows)},  # the name the Markdown shows -> the chart's PNG
        labels=["chart-report"],
        if_exists="update",  # a re-run changes the page only when the figures changed
    )
