"""Row P9 of ``make bench``: worker-slot seconds used while 20 tasks wait out an exhausted hourly quota
(``Retry-After: 1800``), deferring against holding the slot. Goal: deferring uses under 1% of what holding uses,
with 0 failed tasks and 0 duplicate pages.

The tasks run in ``bench/p9_jobs.py`` (one process per variant, against the run's metadata database), through
Airflow's in-process runner ``dag.test()``; see there for how the quota is exhausted and how time is kept.
"""

from __future__ import annotations

from typing import Any


def run(ctx: Any) -> dict[str, Any]:
    ctx.log("row P9: 20 tasks on an exhausted quota (Retry-After 1800 s): deferring vs holding the slot")
    env = ctx.db().env
    defer = ctx.run_json(["p9_jobs.py", str(ctx.port), "defer"], env, timeout=900)
    hold = ctx.run_json(["p9_jobs.py", str(ctx.port), "hold"], env, timeout=900)
    held = hold["slot_seconds_while_exhausted"]
    used = defer["slot_seconds_while_exhausted"]
    share = used / held if held else float("nan")
    clean = all(v["failed_tasks"] == 0 and v["duplicate_pages"] == 0 and v["missing_pages"] == 0 for v in (defer, hold))
    met = share < 0.01 and clean and defer["quota_rejections"] >= defer["tasks"]
    return {
        "name": f"Worker-slot seconds while {defer['tasks']} tasks wait out an exhausted quota (Retry-After 1800 s)",
        "goal": "deferring < 1% of holding; 0 failed tasks, 0 duplicate pages",
        "figures": {
            "defer_slot_seconds": used,
            "hold_slot_seconds": held,
            "share_of_holding": share,
            "defer_failed_tasks": defer["failed_tasks"],
            "defer_duplicate_pages": defer["duplicate_pages"],
            "hold_failed_tasks": hold["failed_tasks"],
            "hold_duplicate_pages": hold["duplicate_pages"],
            "defer": defer,
            "hold": hold,
        },
        "met": met,
        "ours": (
            f"deferring: **{used:.2f} slot-s** = {share * 100:.4f}% of holding; {defer['failed_tasks']} failed, "
            f"{defer['duplicate_pages']} duplicates, {defer['pages_created']} pages; "
            f"{defer['quota_rejections']} quota 429s"
        ),
        "reference": (
            f"holding the slot (sleep until retry_at): {held:,.0f} slot-s; {hold['failed_tasks']} failed, "
            f"{hold['duplicate_pages']} duplicates"
        ),
        "notes": (
            "Airflow 3's in-process runner (dag.test(): task runner, metadata database, the trigger run in line); "
            "the 20 tasks run one after the other, and the harness exhausts the quota at half past the hour before "
            "each starts. Slot time = each try's run_task_in_process, on the emulator's clock, overlapped with the "
            "windows from each 429 to the hour's reset. Deferring holds a slot from the 429 until the task has "
            "handed its trigger over; the wait itself passes in the triggerer."
        ),
    }
