"""Fixtures: one emulator server for the session, reset before each test, driven by the SDK."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest
import stripe

from stripe_emulator.state import State
from stripe_emulator.store import Store
from stripe_emulator.testing import RunningEmulator, start_emulator

from .helpers import make_client

# Stripe's 3-day webhook retry schedule, compressed: the first retry waits 6 ms.
WEBHOOK_TIME_SCALE = 1e-4


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    # Every response and event of these tests is compared with Stripe's types, and the
    # state is written through to a SQLite store, as under `make run`.
    with start_emulator(
        check_shapes=True,
        data_dir=tmp_path_factory.mktemp("stripe_emulator"),
        webhook_time_scale=WEBHOOK_TIME_SCALE,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def no_shape_differences(emulator: RunningEmulator) -> Iterator[None]:
    """Fail a test whose responses or events differ from Stripe's for the pinned version."""
    shapes = emulator.emulator.shapes
    assert shapes is not None
    yield
    assert shapes.differences == []


@pytest.fixture(autouse=True)
def everything_is_kept(emulator: RunningEmulator) -> Iterator[None]:
    """Fail a test after which the store differs from the state in memory (a lost write)."""
    yield
    state = emulator.emulator.state
    assert state.store is not None
    kept = State(store=Store(state.store.path))
    assert kept.store is not None
    kept.store.close()
    assert kept.by_id.keys() == state.by_id.keys()
    changed = [i for i, obj in state.by_id.items() if kept.by_id[i] != _comparable(obj)]
    assert changed == []
    assert (kept.clock.offset, kept.clock.frozen) == (state.clock.offset, state.clock.frozen)
    assert kept.lookup_keys == state.lookup_keys


def _comparable(obj: dict[str, Any]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(obj))


@pytest.fixture
async def control(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator's `/_emulator/` control plane, after a reset, with the clock frozen.

    A frozen clock makes every timestamp of a test exact; tests move it explicitly.
    """
    async with httpx.AsyncClient(base_url=f"{emulator.url}/_emulator") as http:
        (await http.post("/reset")).raise_for_status()
        frozen = await http.post("/clock", json={"frozen_time": int(time.time()) + 1})
        frozen.raise_for_status()
        yield http


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK waits 0.5 s before a retry; tests do not need to."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0.05)


@pytest.fixture
async def client(
    emulator: RunningEmulator, control: httpx.AsyncClient, fast_retries: None
) -> AsyncIterator[stripe.StripeClient]:
    """The real Stripe SDK pointed at the emulator, retrying like the service does."""
    sdk, http = make_client(emulator, retries=2)
    yield sdk
    await http.close_async()


@pytest.fixture
async def raw(
    emulator: RunningEmulator, control: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the API, to look at bytes and headers the SDK hides."""
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    async with httpx.AsyncClient(base_url=emulator.url, headers=headers) as http:
        yield http
