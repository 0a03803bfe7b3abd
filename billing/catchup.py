"""Catch-up: pull the events Stripe made into the inbox, whether or not their webhook came.

The inbox relies on delivery for speed, never for completeness. Events are read from
Stripe's ``/v1/events`` in windows of time, oldest window first, each paged out in full
(the list is newest first); the cursor (``stripe_sync_state``) moves to a window's end
once the window is stored, so an interrupted run resumes where it stopped and an outage
of any length (up to the 30 days Stripe keeps events) is caught up. Stored events are
the inbox's as if delivered: the inbox ignores the ones it already has.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from billing import inbox
from billing.stripe_gateway import gateway
from billing.tables import StripeSyncState
from common.clock import utcnow

log = logging.getLogger("billing.catchup")

CURSOR: Final = "events"
WINDOW: Final = timedelta(hours=1)
# Stripe lists an event a moment after its ``created``: the cursor stays this far behind.
SETTLE: Final = timedelta(seconds=60)
# A database that has never caught up starts this far back.
FIRST_LOOK_BACK: Final = timedelta(minutes=10)
# Stripe keeps events for 30 days; older ones cannot be listed.
RETENTION: Final = timedelta(days=30)


class CatchUp(msgspec.Struct, frozen=True):
    """What one run did: events seen, how many were new to the inbox, and their ids."""

    seen: int
    stored: list[str]
    position: datetime


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


async def position() -> datetime | None:
    row = await StripeSyncState.objects().where(StripeSyncState.name == CURSOR).first()
    return None if row is None else row.position


async def _advance(to: datetime) -> None:
    await StripeSyncState.raw(
        "INSERT INTO stripe_sync_state (name, position, updated_at) VALUES ({}, {}, {})"
        " ON CONFLICT (name) DO UPDATE SET position = GREATEST(stripe_sync_state.position,"
        " EXCLUDED.position), updated_at = EXCLUDED.updated_at",
        CURSOR,
        to,
        utcnow(),
    )


async def catch_up(*, since: datetime | None = None, max_windows: int = 48) -> CatchUp:
    """Store every Stripe event created from the cursor (or ``since``) until a minute ago."""
    now = utcnow()
    start = since or await position() or now - FIRST_LOOK_BACK
    start = max(start, now - RETENTION + timedelta(minutes=1)).astimezone(UTC)
    end_of_all = now - SETTLE
    seen = 0
    stored: list[str] = []
    windows = 0
    while start < end_of_all and windows < max_windows:
        end = min(start + WINDOW, end_of_all)
        cursor: str | None = None
        while True:
            page = await gateway().list_events(
                created_gte=_epoch(start), created_lt=_epoch(end), starting_after=cursor
            )
            data = page.get("data") or []
            for event in data:
                seen += 1
                raw = msgspec.json.encode(event)
                if await inbox.store(event, raw):
                    stored.append(str(event["id"]))
            if not page.get("has_more") or not data:
                break
            cursor = str(data[-1]["id"])
        # Stripe's filter is in whole seconds: the next window starts at this one's end.
        start = datetime.fromtimestamp(_epoch(end), UTC)
        await _advance(start)
        windows += 1
    if stored:
        log.info("caught up on Stripe events", extra={"stored": len(stored), "seen": seen})
    return CatchUp(seen=seen, stored=stored, position=start)
