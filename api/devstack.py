"""``support-billing run``: the whole development stack in one command, or nothing.

Starts (or uses) PostgreSQL and Redis, the Stripe emulator, migrates, seeds, then the
API and a worker, and prints the banner only once the API answers. A start that fails
says why in one line naming the variable to change, stops everything it started and
exits non-zero; children die with the launcher even when it is killed outright.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from common.config import EMULATOR_API_KEY, Settings
from common.embedded import Services, redact

API_START_TIMEOUT = 60.0


class StartFailed(click.ClickException):
    """A start that cannot go on; the message is the one line the user reads."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when the launcher dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Children:
    """The processes this launcher started, stopped together whatever happens."""

    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        child = subprocess.Popen(args, env=env, preexec_fn=preexec)  # noqa: S603 - our interpreter
        self.started.append((name, child))
        return child

    def dead(self) -> tuple[str, int] | None:
        for name, child in self.started:
            code = child.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        for _, child in self.started:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, child in self.started:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        self.started.clear()


def port_taken(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(settings: Settings) -> None:
    wanted = [("PORT", settings.host, settings.port)]
    if settings.uses_stripe_emulator:
        wanted.append(("STRIPE_EMULATOR_PORT", "127.0.0.1", settings.stripe_emulator_port))
    for variable, host, port in wanted:
        if port_taken(host, port):
            raise StartFailed(
                f"port {port} on {host} is already in use (another `make run`?); "
                f"stop that process or set {variable} to a free port"
            )


def explain(exc: BaseException, what: str, variable: str, url: str) -> str:
    """One line a person can act on, for a dependency that could not be used."""
    import asyncpg

    where = redact(url)
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return f"{what} refused the credentials in {variable} ({where}): {exc}"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{what} has no such database ({variable}={where}): {exc}"
    if isinstance(exc, ConnectionRefusedError | socket.gaierror | OSError | TimeoutError):
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return f"cannot reach {what} at {where} ({variable}): {reason}"
    return f"{what} at {where} ({variable}) cannot be used: {type(exc).__name__}: {exc}"


async def _check_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url, timeout=5)
    await connection.close()


async def _check_redis(url: str) -> None:
    from workers import queue

    redis = await queue.connect(url, wait=False)
    try:
        await redis.ping()
    finally:
        await redis.aclose()  # type: ignore[attr-defined] # redis-py's, untyped in arq


def check_dependencies(services: Services) -> None:
    import asyncio

    try:
        asyncio.run(_check_postgres(services.database_url))
    except Exception as e:
        raise StartFailed(explain(e, "PostgreSQL", "DATABASE_URL", services.database_url)) from e
    try:
        asyncio.run(_check_redis(services.redis_url))
    except Exception as e:
        raise StartFailed(explain(e, "Redis", "REDIS_URL", services.redis_url)) from e


def wait_until_answering(url: str, children: Children, timeout: float) -> None:
    """Until ``url`` answers 200 (the API is really serving), or a child exits."""
    deadline = time.monotonic() + timeout
    while True:
        dead = children.dead()
        if dead is not None:
            raise StartFailed(f"the {dead[0]} exited with code {dead[1]} while starting; see above")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=1) as answer,  # noqa: S310 - our own http URL
        ):
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise StartFailed(f"nothing answered at {url} within {timeout:.0f} s; see above")
        time.sleep(0.1)


def dev_admin_key(settings: Settings) -> str | None:
    """The development admin key: made at the first start, shown at every start.

    Development only (kept in DATA_DIR, mode 0600, never in production); the key can
    be revoked like any other (`support-billing keys revoke`).
    """
    if settings.environment != "development":
        return None
    path = settings.data_dir / "dev-admin-key"
    if path.exists():
        return path.read_text().strip() or None
    from api.cli import _run
    from common import apikeys
    from common.audit import acting_as

    async def create() -> tuple[Any, str]:
        with acting_as("cli:run"):
            return await apikeys.create_key("development admin (make run)", "admin")

    _, secret = _run(create)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def start_emulator(settings: Settings, children: Children) -> dict[str, str]:
    port = settings.stripe_emulator_port
    secret = settings.webhook_secret
    children.start(
        "Stripe emulator",
        [
            sys.executable,
            "-m",
            "stripe_emulator",
            "--port",
            str(port),
            "--webhook-url",
            f"http://{settings.host}:{settings.port}/v1/stripe/webhook",
            "--webhook-secret",
            secret,
            "--data-dir",  # Stripe ids kept in DATA_DIR stay valid across restarts
            str(settings.data_dir / "stripe_emulator"),
        ],
        dict(os.environ),
    )
    wait_until_answering(f"http://127.0.0.1:{port}/_emulator/health", children, 30)
    return {
        "STRIPE_API_BASE": f"http://127.0.0.1:{port}",
        "STRIPE_API_KEY": EMULATOR_API_KEY,
        "STRIPE_WEBHOOK_SECRET": secret,
    }


@contextlib.contextmanager
def stopping_on_signals(children: Children) -> Iterator[Callable[[], bool]]:
    """SIGTERM/SIGINT end the wait; installed explicitly (a launcher started in the
    background inherits SIGINT ignored)."""
    stop = False

    def on_signal(signum: int, _: Any) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield lambda: stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def banner(
    settings: Settings, services: Services, env: dict[str, str], key: str | None, took: float
) -> None:
    base = f"http://{settings.host}:{settings.port}"
    cli = Path(sys.executable).with_name("support-billing")
    lines = [
        "",
        f"Support Billing is running ({took:.1f}s)",
        f"  API       {base}   (ready: {base}/ready)",
        f"  API docs  {base}/schema   (OpenAPI JSON: {base}/schema/openapi.json)",
        *(f"  {line}" for line in services.describe()),
    ]
    if settings.uses_stripe_emulator:
        lines.append(f"  stripe: emulator at {env['STRIPE_API_BASE']}")
    if key:
        lines.append(f"  admin key (development): {key}")
        lines.append(f'  try:  curl -H "Authorization: Bearer {key}" {base}/v1/plans')
    lines += [
        f"  more keys:  make key ROLE=helpdesk   (or {cli} keys create --role helpdesk --name me)",
        "  the tour:   make demo   (in another terminal)",
        "  Ctrl-C stops everything; `make run` again keeps all data; `make reset` starts afresh",
    ]
    click.echo("\n".join(lines))


def reset_plan(settings: Settings) -> list[str]:
    """What ``support-billing reset`` would forget, in words."""
    lines = []
    if settings.database_url is None:
        lines.append(f"the embedded PostgreSQL under {settings.data_dir / 'postgres'}")
    else:
        lines.append(f"every table of {redact(settings.database_url)} (schema public)")
    if settings.redis_url is not None:
        lines.append(f"the jobs in {redact(settings.redis_url)} (FLUSHDB)")
    lines.append(f"the Stripe emulator's objects and the development key under {settings.data_dir}")
    return lines


def reset(settings: Settings) -> list[str]:
    """Forget all state: the data directory, or the configured database's schema."""
    import asyncio
    import shutil

    done = []
    if settings.database_url is not None:

        async def drop() -> None:
            import asyncpg

            connection = await asyncpg.connect(settings.database_url, timeout=5)
            try:
                await connection.execute(
                    "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"
                )
            finally:
                await connection.close()

        asyncio.run(drop())
        done.append("database emptied (`make run` migrates it again)")
    if settings.redis_url is not None:

        async def flush() -> None:
            from workers import queue

            redis = await queue.connect(settings.redis_url or "", wait=False)
            try:
                await redis.flushdb()
            finally:
                await redis.aclose()  # type: ignore[attr-defined] # redis-py's, untyped in arq

        asyncio.run(flush())
        done.append("Redis database flushed")
    if settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
        done.append(f"{settings.data_dir} removed")
    return done
