"""A real headless Chromium (Debian's, driven by Playwright) against a real API process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.embedded import Services, free_port

# Chromium as the machine's probe runs it: no sandbox as root, no calls home.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    assert path, "Chromium is missing: `make test` installs it (tools/ensure_chromium.sh)"
    return path


@pytest.fixture
def api_process(services: Services, database: None, tmp_path: Path) -> Iterator[str]:
    """`support-billing api` on a free port, on the test database; its base URL."""
    port = free_port()
    log = tmp_path / "api.log"
    env = {**os.environ, "APP_ENV": "test", "RATE_LIMIT_PER_MINUTE": "0", "LOG_LEVEL": "WARNING"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)
