"""Run the emulator in a background thread, for tests and for embedding in `make run`."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from stripe_emulator.app import App, create_app
from stripe_emulator.emulator import DEFAULT_WEBHOOK_SECRET, Emulator

API_KEY = "sk_test_emulator"
START_TIMEOUT = 10.0


class RunningEmulator:
    """A started emulator: `.url`, `.api_key`, `.webhook_secret`, `.stop()`; a context manager."""

    def __init__(
        self, app: App, server: uvicorn.Server, thread: threading.Thread, url: str
    ) -> None:
        self.app = app
        self.server = server
        self.thread = thread
        self.url = url
        self.api_key = API_KEY

    @property
    def emulator(self) -> Emulator:
        """Direct access to the state, for assertions in tests (read from the test thread)."""
        return self.app.emulator

    @property
    def webhook_secret(self) -> str:
        return self.app.emulator.state.webhook_secret

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        store = self.app.emulator.state.store
        if store is not None:
            store.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(
    port: int = 0,
    webhook_url: str | None = None,
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    host: str = "127.0.0.1",
    *,
    check_shapes: bool = False,
    data_dir: Path | None = None,
    webhook_time_scale: float = 1.0,
) -> RunningEmulator:
    """Serve an emulator on `host:port` (0 = any free port) from a daemon thread.

    `check_shapes`: compare every response and event with Stripe's types (`.emulator.shapes`).
    `data_dir`: keep (and start from) the state in a SQLite file there; else in memory.
    `webhook_time_scale`: compress Stripe's 3-day webhook retry schedule by this factor.
    """
    app = create_app(
        webhook_url,
        webhook_secret,
        check_shapes=check_shapes,
        data_dir=data_dir,
        webhook_time_scale=webhook_time_scale,
    )
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it
    # Nagle's algorithm holds back the response body ~40 ms behind the headers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        ws="none",
        loop="asyncio",
    )
    server = uvicorn.Server(config)

    def serve() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=serve, name=f"stripe-emulator-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the Stripe emulator did not start on {host}:{bound_port}")
        time.sleep(0.005)
    return RunningEmulator(app, server, thread, f"http://{bound_host}:{bound_port}")
