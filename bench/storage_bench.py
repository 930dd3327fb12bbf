"""Rendering big tables (and a long Markdown document) to storage format: wall time and peak memory.

A script that prints figures, not a test: no assertions on time. Rows are a mix of what reports hold (text with
characters to escape, integers, floats, NaN, None, dates, booleans, nested values). Each size is rendered
``--runs`` times; the best wall time and the peak traced memory (``tracemalloc``, Python allocations only,
input rows excluded) are printed, with the time per cell so that linear scaling shows at a glance.

Usage: ``python bench/storage_bench.py [--rows 1000,10000,100000] [--columns 10] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from airflow_provider_confluence.content.storage_format import markdown_to_storage, table_to_storage

_DAY = dt.date(2024, 1, 1)


def make_rows(n: int, columns: int) -> list[dict[str, Any]]:
    """``n`` rows of ``columns`` cells cycling through the value kinds a report holds."""
    kinds: list[Callable[[int], Any]] = [
        lambda i: f'item <{i}> & ]]> "q"',
        lambda i: i,
        lambda i: i / 7,
        lambda i: math.nan if i % 5 == 0 else i * 1.5,
        lambda i: None if i % 3 == 0 else "ok",
        lambda i: _DAY + dt.timedelta(days=i % 365),
        lambda i: i % 2 == 0,
        lambda i: {"id": i, "tags": ["a", "b"]},
        lambda i: "é∑\U0001f600" * 3,
        lambda i: f"line 1\nline 2 {i}",
    ]
    return [{f"col{c}": kinds[c % len(kinds)](i) for c in range(columns)} for i in range(n)]


def measure(render: Callable[[], str], runs: int) -> tuple[float, int, int]:
    """Best wall seconds over ``runs``, peak traced bytes of one run, output length in characters."""
    best = math.inf
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        out = render()
        best = min(best, time.perf_counter() - start)
        del out
    gc.collect()
    tracemalloc.start()
    out = render()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak, len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000", help="comma-separated row counts (default 1000,10000)")
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(f"{'input':<32} {'best time':>10} {'us/cell':>8} {'peak MB':>8} {'output MB':>10}")
    for n in (int(value) for value in args.rows.split(",")):
        rows = make_rows(n, args.columns)
        cells = n * args.columns
        seconds, peak, size = measure(lambda rows=rows: table_to_storage(rows), args.runs)
        print(
            f"{f'{n:,} rows x {args.columns} cols (dicts)':<32} {seconds:>9.3f}s {seconds / cells * 1e6:>8.2f} "
            f"{peak / 1e6:>8.1f} {size / 1e6:>10.1f}"
        )
        try:
            import pandas as pd
        except ImportError:
            continue
        frame = pd.DataFrame(rows)
        seconds, peak, size = measure(lambda frame=frame: table_to_storage(frame), args.runs)
        print(
            f"{f'{n:,} rows x {args.columns} cols (DataFrame)':<32} {seconds:>9.3f}s "
            f"{seconds / cells * 1e6:>8.2f} {peak / 1e6:>8.1f} {size / 1e6:>10.1f}"
        )

    markdown_to_storage("warm-up")  # the first call imports markdown-it-py
    document = "\n\n".join(
        f"## Section {i}\n\nSome *text* with `code`, a [link](https://example.com/{i}) and <html> & ]]>.\n\n"
        f"| a | b |\n|---|---|\n| {i} | x |\n\n```python\nprint({i})\n```"
        for i in range(1000)
    )
    seconds, peak, size = measure(lambda: markdown_to_storage(document), args.runs)
    print(
        f"{f'Markdown, {len(document) / 1e6:.1f} MB source':<32} {seconds:>9.3f}s {'':>8} {peak / 1e6:>8.1f} "
        f"{size / 1e6:>10.1f}"
    )


if __name__ == "__main__":
    main()
