"""Install, migrate and serve the dj-stripe peer (Django under gunicorn, one process).

The peer has a uv project of its own (``bench/peers/djstripe/``: Django, dj-stripe,
psycopg, gunicorn; dj-stripe pins ``stripe<16``), its own database on the same
PostgreSQL server, and the project's Stripe emulator as its Stripe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from bench import setup
from common.config import PROJECT_ROOT
from common.embedded import free_port, wait_for_port

HERE = Path(__file__).resolve().parent / "djstripe"
THREADS = 8  # gunicorn gthread: one process, eight request threads


def uv() -> str:
    found = shutil.which("uv") or str(PROJECT_ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        raise RuntimeError("uv not found (run `make install` first)")
    return found


def install() -> Path:
    """``uv sync`` of the peer's own lock; returns its interpreter."""
    subprocess.run(  # noqa: S603 - uv with fixed arguments
        [uv(), "sync", "--frozen", "--quiet", "--project", str(HERE)],
        check=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_LINK_MODE": "copy"},
    )
    return HERE / ".venv" / "bin" / "python"


def version(distribution: str) -> str:
    """A package's version in the peer's virtualenv ("absent" before ``install``)."""
    wanted = distribution.replace("-", "_").lower()
    for info in HERE.glob(".venv/lib/python*/site-packages/*.dist-info"):
        name, _, rest = info.name.removesuffix(".dist-info").partition("-")
        if name.lower() == wanted:
            return rest
    return "absent"


def database_url(server_url: str, name: str) -> str:
    """A fresh database ``name`` on the server of ``server_url``."""
    base, _, _ = server_url.rpartition("/")

    async def recreate() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    return f"{base}/{name}"


def _env(db_url: str, stripe_base: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJSTRIPE_DATABASE_URL": db_url,
        "STRIPE_API_BASE": stripe_base,
        "PYTHONPATH": str(HERE),
        "VIRTUAL_ENV": str(HERE / ".venv"),
    }


def prepare(python: Path, db_url: str, stripe_base: str, secret: str) -> subprocess.Popen[str]:
    """Start migrating (about a minute on 2 cores) in the background; ``finish`` waits."""
    return subprocess.Popen(  # noqa: S603 - the peer's interpreter and script
        [str(python), str(HERE / "prepare.py"), secret],
        cwd=HERE,
        env=_env(db_url, stripe_base),
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(preparing: subprocess.Popen[str]) -> str:
    """The webhook endpoint's path once migrations are done."""
    out, _ = preparing.communicate(timeout=600)
    if preparing.returncode != 0:
        raise RuntimeError("dj-stripe peer: prepare.py failed")
    return out.strip().splitlines()[-1]


@contextlib.contextmanager
def serve(python: Path, db_url: str, stripe_base: str) -> Iterator[setup.Api]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - the peer's gunicorn
        [
            str(python.parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            str(THREADS),
            "--log-level",
            "warning",
            "wsgi:application",
        ],
        cwd=HERE,
        env=_env(db_url, stripe_base),
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        yield setup.Api(port, proc)  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(20)


def counts(python: Path, db_url: str, stripe_base: str) -> tuple[int, int, int]:
    """(stored, valid, processed) webhook triggers."""
    out = subprocess.run(  # noqa: S603 - the peer's interpreter and script
        [str(python), str(HERE / "counts.py")],
        cwd=HERE,
        env=_env(db_url, stripe_base),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    stored, valid, processed = (int(x) for x in out)
    return stored, valid, processed
