"""A real ``support-billing api`` process on a free port, for attacks that need real sockets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from common.config import PROJECT_ROOT
from common.embedded import Services, free_port, wait_for_port


@dataclass(frozen=True)
class LiveApi:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        """Fail with the exit status and the log's tail if the process has died."""
        code = self.process.poll()
        if code is not None:
            tail = self.log.read_bytes()[-4000:].decode(errors="replace")
            raise AssertionError(f"the API process exited with {code}:\n{tail}")


@pytest.fixture
def live_api(
    services: Services, database: None, clean_db: None, tmp_path: Path
) -> Iterator[LiveApi]:
    """The API served by uvicorn in its own process, against the test database and emulator."""
    port = free_port()
    log = tmp_path / "api.log"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_SIZE": "10",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "api", "--port", str(port)],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        url = f"http://127.0.0.1:{port}"
        # uvicorn binds after the startup hooks ran: the pool and Redis are open by now.
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 200
        yield LiveApi(url=url, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
