"""The token broker of the plugin, served on loopback for a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from helpers.processes import free_port


@contextmanager
def running_broker() -> Iterator[str]:
    """The plugin's app behind uvicorn on loopback, in a thread, for as long as the block runs; its base URL."""
    import uvicorn
    from fastapi import FastAPI

    from airflow_provider_confluence.plugins.app import create_app

    root = FastAPI()
    root.mount("/confluence-oauth", create_app())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
