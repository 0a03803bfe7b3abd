"""The first hour, as a newcomer lives it: `make run`, the demo, Ctrl-C, `make run` again.

Real processes all the way: the launcher starts its own stack (a fresh database on the
configured server, or an embedded one; its own Redis database, ports and DATA_DIR),
the demo drives it over HTTP, and the stack is stopped and started twice more.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from common.embedded import free_port

START_TIMEOUT = 120.0
BANNER = "Support Billing is running"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a fresh `make run`: its own database, Redis db, ports, DATA_DIR."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "APP_ENV", "PORT", "HOST", "DATA_DIR"))
    }
    env.update(
        APP_ENV="development",
        DATA_DIR=str(tmp_path / "data"),
        PORT=str(free_port()),
        STRIPE_EMULATOR_PORT=str(free_port()),
        LOG_LEVEL="WARNING",
        SLA_SWEEP_SECONDS="1",
    )
    created = None
    server = os.environ.get("DATABASE_URL")
    if server:
        created = f"sb_first_hour_{os.getpid()}"
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{created}"')
            await admin.execute(f'CREATE DATABASE "{created}"')
        finally:
            await admin.close()
        env["DATABASE_URL"] = _with_database(server, created)
    # Its own embedded Redis (in DATA_DIR, as on a bare machine): a Redis db shared with
    # another run of this test (a second checkout, a second engineer) would mix two stacks'
    # queues.
    env.pop("REDIS_URL", None)
    yield env
    if created and server:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.contextmanager
def make_run(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`support-billing run` until the banner; stopped with SIGINT (Ctrl-C) afterwards."""
    seen = log.read_text(errors="replace").count(BANNER) if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "run"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while log.read_text(errors="replace").count(BANNER) == seen:
            assert proc.poll() is None, f"make run exited {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, (
                f"no banner in {START_TIMEOUT} s:\n{log.read_text()}"
            )
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert proc.returncode == 0, log.read_text()[-3000:]


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stack_is_gone(env: dict[str, str]) -> None:
    for port in (int(env["PORT"]), int(env["STRIPE_EMULATOR_PORT"])):
        deadline = time.monotonic() + 10
        while _listening(port):
            assert time.monotonic() < deadline, f"something still listens on {port}"
            time.sleep(0.1)


def _cli(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _api(env: dict[str, str]) -> httpx.Client:
    key = (Path(env["DATA_DIR"]) / "dev-admin-key").read_text().strip()
    return httpx.Client(
        base_url=f"http://127.0.0.1:{env['PORT']}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _stripe(env: dict[str, str]) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{env['STRIPE_EMULATOR_PORT']}",
        headers={"Authorization": "Bearer sk_test_emulator"},
        timeout=30,
    )


def _state(env: dict[str, str]) -> dict[str, object]:
    """What a restart must keep: our rows and the Stripe objects behind them."""
    with _api(env) as api, _stripe(env) as stripe:
        customers = api.get("/v1/customers", params={"limit": 100}).json()["data"]
        demo = [c for c in customers if c["external_id"].startswith("demo-")]
        assert demo, customers
        cid = demo[0]["id"]
        for c in demo:  # every stored cus_… still names a Stripe customer
            assert stripe.get(f"/v1/customers/{c['stripe_customer_id']}").status_code == 200
        subscription = api.get(f"/v1/customers/{cid}/subscription").json()
        assert (
            stripe.get(f"/v1/subscriptions/{subscription['stripe_subscription_id']}").status_code
            == 200
        )
        return {
            "customers": sorted(c["id"] for c in customers),
            "subscription": (subscription["id"], subscription["status"], subscription["plan"]),
            "purchases": sorted(
                (p["id"], p["status"])
                for p in api.get(f"/v1/customers/{cid}/fast-track-purchases").json()["data"]
            ),
            "incidents": sorted(
                (i["id"], i["sla_status"])
                for i in api.get("/v1/incidents", params={"customer_id": cid}).json()["data"]
            ),
            "invoices": sorted(
                i["id"] for i in api.get("/v1/invoices", params={"customer_id": cid}).json()["data"]
            ),
            "customer": cid,
        }


def _buy_on_saved_card(env: dict[str, str], cid: str) -> None:
    with _api(env) as api:
        r = api.post(
            f"/v1/customers/{cid}/fast-track-purchases",
            json={"quantity": 1, "mode": "charge_saved_method"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "paid"


def test_make_run_the_demo_and_two_restarts_keep_everything(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    with make_run(stack_env, log):
        demo = _cli(stack_env, "demo")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        told = demo.stdout
        for step in ("checkout_url", "fast-track credits now: 3", "breached at", "credit note"):
            assert step in told, told
        assert re.search(r"\(\d+\.\d\d s after its deadline\)", told), told
        before = _state(stack_env)
    _stack_is_gone(stack_env)
    for _ in range(2):
        with make_run(stack_env, log):
            after = _state(stack_env)
            _buy_on_saved_card(stack_env, str(before["customer"]))
        _stack_is_gone(stack_env)
        # Everything the first run made is there, plus the purchase just made.
        assert {k: v for k, v in after.items() if k != "purchases"} == {
            k: v for k, v in before.items() if k != "purchases"
        }
        assert set(before["purchases"]) <= set(after["purchases"])  # type: ignore[arg-type]
        before = after
    assert log.read_text().count(BANNER) == 3


def test_a_start_on_a_taken_port_fails_in_one_line_and_leaves_nothing(
    stack_env: dict[str, str],
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack_env["PORT"])))
        squatter.listen()
        done = _cli(stack_env, "run", timeout=60)
    assert done.returncode != 0
    assert f"port {stack_env['PORT']}" in done.stderr and "set PORT" in done.stderr
    assert BANNER not in done.stdout
    _stack_is_gone({**stack_env, "PORT": str(free_port())})


def test_an_unreachable_database_fails_in_one_line_and_leaves_nothing(
    stack_env: dict[str, str],
) -> None:
    env = {**stack_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}
    done = _cli(env, "run", timeout=60)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: cannot reach PostgreSQL"), done.stderr
    assert "DATABASE_URL" in lines[-1]
    assert "Traceback" not in done.stderr
    _stack_is_gone(env)
