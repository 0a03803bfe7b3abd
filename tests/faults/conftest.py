"""Fault-suite fixtures: servers we own, stacks of real processes, the closing report.

The suite is marked ``faults`` and left out of ``make test`` (``-m 'not faults'`` in
pyproject's addopts); ``make test-faults`` runs it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults import books
from tests.faults.harness import ACTIVE, ExternalPostgres, OwnPostgres, OwnRedis, PgServer, Stack

RESULTS: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def faults_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hfaults-run-"))
    yield root
    if not os.environ.get("FAULTS_KEEP"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def own_pg() -> AsyncIterator[OwnPostgres]:
    """A PostgreSQL cluster of the suite's own: the only one a test may stop or restart."""
    server = OwnPostgres()
    server.start()
    yield server
    if not server.running:
        with contextlib.suppress(Exception):
            server.start()
    await server.drop_template()
    server.destroy()


@pytest.fixture(scope="session")
async def machine_pg(own_pg: OwnPostgres) -> AsyncIterator[PgServer]:
    """The machine's PostgreSQL (``DATABASE_URL``) for tests that only kill connections;
    the suite's own cluster when none is configured."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield own_pg
        return
    server = ExternalPostgres(url)
    yield server
    await server.drop_template()


StackFactory = Callable[..., Any]


@contextlib.asynccontextmanager
async def running_stack(
    name: str,
    pg: PgServer,
    root: Path,
    *,
    apis: int = 1,
    workers: int = 1,
    env: dict[str, str] | None = None,
    webhooks: bool = True,
) -> AsyncIterator[tuple[Stack, OwnRedis]]:
    """A stack on ``pg`` with a Redis of its own, stopped (and its database dropped) after."""
    redis = OwnRedis(root / "redis")
    redis.start()
    stack = Stack(name, pg, redis.url, root, env)
    ACTIVE.append(stack)
    try:
        await stack.start(apis=apis, workers=workers, webhooks=False)
        if webhooks:
            # Set only now: events of seeding would otherwise queue behind an API not yet up.
            assert stack.emulator is not None
            await stack.emulator.set_webhook_url(f"{stack.apis[0].url}/v1/stripe/webhook")
        yield stack, redis
    finally:
        ACTIVE.remove(stack)
        if pg_is_down(pg):
            with contextlib.suppress(Exception):
                pg.start()  # type: ignore[attr-defined]
        await stack.stop()
        redis.stop()


@pytest.fixture(scope="session")
async def shared_stack(machine_pg: PgServer, faults_root: Path) -> AsyncIterator[Stack]:
    """Two API processes and two workers with the default environment, for the tests that
    neither restart a server nor kill a process (each cleans up its own faults)."""
    async with running_stack("shared", machine_pg, faults_root / "shared", apis=2, workers=2) as (
        stack,
        _,
    ):
        yield stack


@pytest.fixture
async def stack(shared_stack: Stack) -> AsyncIterator[Stack]:
    """The shared stack, its emulator's faults cleared and webhooks restored after the test."""
    yield shared_stack
    assert shared_stack.emulator is not None
    await shared_stack.emulator.clear_faults()
    await shared_stack.emulator.set_webhook_url(f"{shared_stack.apis[0].url}/v1/stripe/webhook")


def pg_is_down(pg: PgServer) -> bool:
    return isinstance(pg, OwnPostgres) and not pg.running


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record one line of the closing table (faults x load x lost x doubled x lateness)."""

    def record(
        fault: str,
        load: str,
        tally: books.Tally | None = None,
        late: books.Lateness | None = None,
        *,
        lost: int = 0,
        doubled: int = 0,
    ) -> None:
        lost += (tally.lost if tally else 0) + (len(late.not_breached) if late else 0)
        doubled += (tally.doubled if tally else 0) + (len(late.doubled) if late else 0)
        row = {
            "test": request.node.name,
            "fault": fault,
            "load": load,
            "lost": lost,
            "doubled": doubled,
            "p50": late.p50 if late else math.nan,
            "p99": late.p99 if late else math.nan,
            "max": late.max if late else math.nan,
        }
        RESULTS.append(row)
        print(
            f"\n[faults] {row['test']}: fault={fault} load={load} lost={lost} doubled={doubled}"
            + (f" {late.line()}" if late else "")
        )

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call" and rep.failed and not any(r["test"] == item.name for r in RESULTS):
        # The closing table lists every scenario, also one that failed before counting.
        RESULTS.append(
            {
                "test": item.name,
                "fault": "(failed before counting: see the failure)",
                "load": "-",
                "lost": "?",
                "doubled": "?",
            }
        )
    if rep.failed and ACTIVE:
        for stack in ACTIVE:
            rep.sections.append((f"service logs of stack {stack.name}", stack.logs(60)))
    return rep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.section("fault suite: faults x load x lost x doubled x lateness")
        terminalreporter.write_line(books.table(RESULTS))
        target = os.environ.get("FAULTS_REPORT")
        if target:
            Path(target).write_text(books.table(RESULTS) + "\n")
