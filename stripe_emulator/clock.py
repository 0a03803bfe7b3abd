"""The emulator's clock (real time plus an offset that test helpers advance) and calendar maths."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from stripe_emulator.errors import invalid

DAY = 86_400


class Clock:
    """Unix seconds: real time plus an offset, or frozen at a moment (like a Stripe test clock).

    It starts flowing with real time; `move_to` freezes it (tests get exact timestamps);
    `advance` moves it forward either way; `unfreeze` lets a frozen clock flow again.
    """

    def __init__(self) -> None:
        self.offset = 0
        self.frozen: int | None = None
        self._pinned: int | None = None

    def now(self) -> int:
        if self._pinned is not None:
            return self._pinned
        if self.frozen is not None:
            return self.frozen
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> int:
        if seconds < 0:
            raise invalid("The clock can only move forward.", param="seconds")
        if self.frozen is not None:
            self.frozen += seconds
        else:
            self.offset += seconds
        return self.now()

    def move_to(self, frozen_time: int) -> int:
        current = self.now()
        if frozen_time < current:
            raise invalid(
                f"frozen_time must not be before the current time ({current}).",
                param="frozen_time",
            )
        self.frozen = frozen_time
        return frozen_time

    def unfreeze(self) -> int:
        if self.frozen is not None:
            self.offset = self.frozen - int(time.time())
            self.frozen = None
        return self.now()

    def reset(self) -> None:
        self.offset = 0
        self.frozen = None
        self._pinned = None

    @contextmanager
    def at(self, moment: int) -> Iterator[None]:
        """Let objects and events made while replaying elapsed time carry that moment."""
        previous = self._pinned
        self._pinned = moment
        try:
            yield
        finally:
            self._pinned = previous


def add_interval(anchor: int, interval: str, count: int) -> int:
    """`anchor` plus `count` intervals, calendar-correct like Stripe's billing cycle.

    Months are counted from the anchor, not the previous period end, so a Jan 31 anchor
    gives Feb 28/29 then Mar 31.
    """
    start = datetime.fromtimestamp(anchor, UTC)
    if interval == "day":
        return int((start + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((start + timedelta(weeks=count)).timestamp())
    months = count * 12 if interval == "year" else count
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    day = min(start.day, calendar.monthrange(year, month0 + 1)[1])
    return int(start.replace(year=year, month=month0 + 1, day=day).timestamp())


def format_date(ts: int) -> str:
    """`22 Nov 2026`, as Stripe writes dates in line descriptions."""
    return datetime.fromtimestamp(ts, UTC).strftime("%-d %b %Y")
