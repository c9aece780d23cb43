"""Run the server in a background thread on a free local port (tests, benchmarks, notebooks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Iterator

from avatar.config import LIVE

START_TIMEOUT = 60.0  # seconds for the server to bind (the voice warm-up runs first)


def free_port(host: str = LIVE.host) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def background_server(app, host: str = LIVE.host, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` while the ``with`` block runs; yields its http:// URL."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           ws_max_size=LIVE.max_message_bytes + 1024))
    thread = threading.Thread(target=server.run, name="avatar-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
