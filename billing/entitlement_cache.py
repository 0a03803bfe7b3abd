"""A per-process cache of each customer's entitlement now, kept true by PostgreSQL.

The entitlement read is the hottest call of the service (a helpdesk asks it for every
ticket it shows). Its answer changes only when one of its inputs changes — the
subscription, the incidents counted this period, the fast-track ledger, the customer,
the catalog — or when time passes a boundary it already knows (the period's end, the end
of a past_due grace period, a purchase's expiry, the month's end under ``standard``).

Every write to those tables fires a trigger that notifies ``entitlement_changed`` with
the customer's id (``*`` for the catalog), whoever the writer is (this service, another
process, an operator's SQL). Each process listens on a connection of its own and drops
what it was told changed; an entry also lapses at the first time boundary it knows, and
after ``MAX_AGE`` at the latest. While the listener is not connected (at start, after a
dropped connection) the cache answers nothing: every read goes to PostgreSQL, and the
cache is emptied when listening starts again, since notifications may have been missed.

A notification reaches the other processes a moment after its transaction commits; the
process that made a change forgets it at once itself (``forget``), before the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import msgspec

from billing import schemas

log = logging.getLogger("billing.entitlement_cache")

CHANNEL: Final = "entitlement_changed"
EVERYONE: Final = "*"
MAX_AGE: Final = timedelta(seconds=60)
MAX_ENTRIES: Final = 200_000
RECONNECT_SECONDS: Final = 1.0


class EntitlementCache:
    """customer id → (the entitlement, the instant it stops being true)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[schemas.Entitlement, datetime]] = {}
        self.listening = False
        self.notifications = 0

    def get(self, customer_id: str, now: datetime) -> schemas.Entitlement | None:
        if not self.listening:
            return None
        entry = self.entries.get(customer_id)
        if entry is None:
            return None
        value, fresh_until = entry
        if now >= fresh_until:
            del self.entries[customer_id]
            return None
        return msgspec.structs.replace(value, at=now)

    def put(
        self, customer_id: str, value: schemas.Entitlement, now: datetime, until: datetime
    ) -> None:
        if not self.listening:
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[customer_id] = (value, min(until, now + MAX_AGE))

    def forget(self, customer_id: str) -> None:
        if customer_id == EVERYONE:
            self.entries.clear()
        else:
            self.entries.pop(customer_id, None)

    def on_notification(self, payload: str) -> None:
        self.notifications += 1
        self.forget(payload)

    def stop_trusting(self) -> None:
        """Notifications may be lost from now on: answer nothing, hold nothing."""
        self.listening = False
        self.entries.clear()


cache = EntitlementCache()


class Listener:
    """The connection that keeps ``cache`` true; reconnects on its own until stopped."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def _listen_once(self) -> None:
        lost = asyncio.Event()
        connection = await asyncpg.connect(
            self.dsn, timeout=5, server_settings={"application_name": "support-billing-cache"}
        )
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(
                CHANNEL, lambda _c, _pid, _channel, payload: cache.on_notification(payload)
            )
            cache.entries.clear()  # whatever happened while nobody listened
            cache.listening = True
            self.connected.set()
            await lost.wait()
        finally:
            cache.stop_trusting()
            self.connected.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("entitlement cache not listening (%r); reads go to PostgreSQL", e)
            await asyncio.sleep(RECONNECT_SECONDS)

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        cache.stop_trusting()


_listener: Listener | None = None


def start(dsn: str) -> Listener:
    """Start keeping the process's cache (the API process calls this at start)."""
    global _listener
    if _listener is None:
        _listener = Listener(dsn)
        _listener.start()
    return _listener


async def stop() -> None:
    global _listener
    if _listener is not None:
        current, _listener = _listener, None
        await current.stop()


def fresh_until(value: schemas.Entitlement, earliest_expiry: Any, month_end: datetime) -> datetime:
    """The first instant the answer may change by the clock alone."""
    candidates = [month_end if value.plan_version is None else value.valid_until or month_end]
    if value.period_end is not None:
        candidates.append(value.period_end)
    if isinstance(earliest_expiry, datetime):
        candidates.append(earliest_expiry)
    return min(candidates)
