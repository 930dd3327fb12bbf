"""Row P8 of ``make bench``: the HTTP requests of each operation, against the minimum derived by hand, and the
same jobs done with atlassian-python-api 5.0.5. Under points-based quotas, requests are money.

The jobs run in ``bench/p8_jobs.py`` (a process of its own, with the emulator, against the run's metadata
database so that a task finds the token and cloud id the previous one saved). The minimum of each operation, and
why, is :data:`MINIMUM`; the counts are API requests (token and accessible-resources requests are counted apart,
and are 0 for a connection in use).
"""

from __future__ import annotations

from typing import Any

#: operation -> (what it does, the minimum, the requests of the minimum and why none can be left out)
MINIMUM: dict[str, tuple[str, int, str]] = {
    "create": (
        "create a page with 2 labels under a parent given by title (space by key; a re-run must not duplicate)",
        5,
        "GET v2 spaces?keys (POST /pages needs the space id); GET v2 pages?space-id&title=<parent> (its id); "
        "GET v2 pages?space-id&title=<title> (is it there already: v2 reads the page store, CQL a search index that "
        "lags, so a lookup by CQL can miss a page made a moment ago and duplicate it); POST v2 pages; POST v1 "
        "content/{id}/label with both labels in one body (v2 has no label write)",
    ),
    "rerun": (
        "the same task re-run with nothing changed",
        4,
        "space id, parent id, the page by title with its storage body and version (one GET: compare, and find "
        "nothing to write), GET v2 pages/{id}/labels (are both labels there); no write",
    ),
    "replace": (
        "replace the body (page by id)",
        2,
        "GET v2 pages/{id}?body-format=storage (the version to follow, and an unchanged body writes nothing); "
        "PUT v2 pages/{id}",
    ),
    "append": (
        "append a line (page by id)",
        2,
        "GET v2 pages/{id}?body-format=storage (the body to extend, and its version); PUT v2 pages/{id}",
    ),
    "attachment": (
        "upload an attachment that is unchanged (page by id)",
        2,
        "GET v2 pages/{id}/attachments?filename (is it there, its size); the attachment records carry no checksum, "
        "so equal sizes need GET of the file to compare; nothing uploaded",
    ),
    "search": (
        "a CQL search that returns one page",
        1,
        "GET v1 search?cql (one page of results, no next link); v2 has no CQL search",
    ),
    "poke": (
        "a sensor poke that finds nothing (page by space key and title)",
        2,
        "GET v2 spaces?keys (the space id), GET v2 pages?space-id&title (not there). A CQL search would do it in "
        "1, but reads the search index, which lags behind the page store: the sensor would fire late",
    ),
}
OPERATIONS = tuple(MINIMUM)
#: where the provider's requests are not the minimum's, though the count may be: why
DIFFERENCES: dict[str, str] = {
    "attachment": (
        "same count, not the same requests: the provider reads the page (GET v2 pages/{id}: its link, and a clear "
        "error for a wrong id) and uploads again (PUT v1 child/attachment: a new attachment version on every run) "
        "instead of comparing first. Comparing would cost the same 2 requests and write nothing; it changes what "
        "the operator does, so it is left for its own change"
    ),
}
#: what the peer's failures come from, as the emulator models Confluence Cloud
PEER_FAILURES = (
    'atlassian-python-api: update_page() sends the body as {"storage": {"value"}}, which the emulator refuses '
    '(400; Confluence\'s v2 PUT documents {"representation", "value"}), so replace and append fail after '
    "their 2 requests; attach_content() looks the file up with the v1 GET content/{id}/child/attachment, gone "
    "behind the gateway (410), and then POSTs, which refuses a name already there (400); its v2 search() calls "
    "api/v2/search and add_page_labels() POSTs to api/v2/pages/{id}/labels, neither of which exists (404)"
)


def run(ctx: Any) -> dict[str, Any]:
    ctx.log("row P8: request count of 7 operations, this provider and atlassian-python-api 5.0.5")
    env = ctx.db().env
    out = ctx.run_json(["p8_jobs.py", str(ctx.port)], env, timeout=600)
    provider, peer = out["provider"], out["peer"]
    figures: dict[str, Any] = {}
    lines = []
    met = True
    for op in OPERATIONS:
        label, minimum, why = MINIMUM[op]
        ours, theirs = provider[op], peer[op]
        equal = ours["requests"] == minimum and ours["token_requests"] == 0 and ours["accessible_resources"] == 0
        met = met and equal
        figures[op] = {
            "difference": DIFFERENCES.get(op),
            "operation": label,
            "minimum": minimum,
            "minimum_why": why,
            "ours": ours["requests"],
            "ours_token_requests": ours["token_requests"],
            "ours_calls": ours["calls"],
            "theirs": theirs["requests"],
            "theirs_outcome": theirs["outcome"],
            "theirs_calls": theirs["calls"],
        }
        theirs_text = f"{theirs['requests']}" + ("" if theirs["outcome"] == "ok" else " (fails)")
        mark = "†" if op in DIFFERENCES else ""
        lines.append(f"{op} {minimum} / **{ours['requests']}**{mark} / {theirs_text}")
    figures["peer_probes"] = {k: v for k, v in peer.items() if k not in OPERATIONS}
    notes = [f"{op}: minimum {MINIMUM[op][1]}: {MINIMUM[op][2]}." for op in OPERATIONS]
    notes += [f"† {op}: {why}." for op, why in DIFFERENCES.items()]
    notes.append(PEER_FAILURES + ".")
    for name, probe in figures["peer_probes"].items():
        notes.append(f"atlassian-python-api {name}: {probe['requests']} request(s), {probe['outcome']}")
    return {
        "name": "HTTP requests per operation: minimum / **this provider** / atlassian-python-api 5.0.5",
        "goal": "every count = its minimum, or the notes say why",
        "figures": figures,
        "met": met,
        "ours": "; ".join(lines),
        "reference": "atlassian-python-api 5.0.5 (its v2 client; its v1 client for labels, attachments, CQL)",
        "notes": notes,
    }
