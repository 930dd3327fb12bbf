"""Run the emulator standalone: ``python -m airflow_provider_confluence.testing --port 8765``.

It seeds one grant and ``--spaces`` demo spaces, prints ONE line of JSON to stdout
(``{"url", "conn", "cloud_id", "site_url", "state_url", "allowed_endpoint_hosts"}``; ``conn`` is an Airflow
connection dict, and every Airflow process that uses it needs ``AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS`` set
to ``allowed_endpoint_hosts``) and serves until SIGINT or SIGTERM, then exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from .emulator import DEFAULT_SITE, FakeAtlassian

DEMO_SPACES = (("DEMO", "Demo"), ("ENG", "Engineering"), ("OPS", "Operations"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_confluence.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument("--spaces", type=int, default=3, help="demo spaces to create (default 3)")
    parser.add_argument("--access-token-lifetime", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--site-url", default=DEFAULT_SITE, help=f"emulated site (default {DEFAULT_SITE})")
    parser.add_argument(
        "--quota-points",
        type=int,
        default=None,
        help="enforce the points-based hourly quota with this budget per app and site (default: off)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; return the exit code."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    fake = FakeAtlassian(
        site_url=args.site_url, access_token_lifetime=args.access_token_lifetime, host=args.host, port=args.port
    )
    fake.start()
    if args.quota_points is not None:
        fake.enable_quota(args.quota_points)
    try:
        for index in range(max(args.spaces, 0)):
            key, name = DEMO_SPACES[index] if index < len(DEMO_SPACES) else (f"S{index + 1}", f"Space {index + 1}")
            fake.add_space(key, name)
        line = {
            "url": fake.url,
            "conn": fake.connection(),
            "cloud_id": fake.cloud_id,
            "site_url": fake.site_url,
            "state_url": fake.url + "/_emulator/state",
            "allowed_endpoint_hosts": fake.allowed_endpoint_hosts,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
