"""Deadline arithmetic: pure functions from an opening instant, targets and a calendar."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Final, Literal

from sla.calendar import TWENTY_FOUR_SEVEN, Pause, Schedule, add_business_minutes

Coverage = Literal["24x7", "business_hours"]
Source = Literal["plan", "fast_track"]

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri")
DEFAULT_BUSINESS_HOURS: Final[Mapping[str, tuple[str, ...]]] = {
    day: ("09:00-17:00",) for day in WEEKDAYS
}


@dataclass(frozen=True, slots=True)
class DeadlineTarget:
    """A first-response promise: ``minutes`` counted under ``coverage``."""

    minutes: int
    coverage: Coverage
    source: Source = "plan"


@dataclass(frozen=True, slots=True)
class WarningInstant:
    """A warning instant at ``fraction`` of the target."""

    fraction: float
    at: datetime


@dataclass(frozen=True, slots=True)
class Deadline:
    """The effective deadline: the winning target, its due instant and its warnings."""

    due_at: datetime
    warnings: tuple[WarningInstant, ...]
    target: DeadlineTarget


def build_schedule(
    timezone: str,
    business_hours: Mapping[str, Sequence[str]] | None = None,
    country: str | None = None,
    holidays: Iterable[date] = (),
) -> Schedule:
    """The customer's working calendar; no ``business_hours`` means Mon-Fri 09:00-17:00.

    ``country`` adds its public holidays for whatever year a deadline reaches
    (resolved lazily by the calendar); ``holidays`` are extra local closed dates.
    Raises ``sla.calendar.InvalidSchedule`` on a bad timezone, spec or country.
    """
    spec = DEFAULT_BUSINESS_HOURS if business_hours is None else business_hours
    key = tuple(sorted((day.lower(), tuple(windows)) for day, windows in spec.items()))
    return _schedule(timezone, key, country, frozenset(holidays))


@functools.lru_cache(maxsize=4096)
def _schedule(
    timezone: str,
    spec: tuple[tuple[str, tuple[str, ...]], ...],
    country: str | None,
    holidays: frozenset[date],
) -> Schedule:
    # Schedules are immutable and share their interval cache, so one object per
    # distinct calendar keeps every deadline of a customer on warm caches.
    return Schedule.from_spec(timezone, dict(spec), holidays, country=country)


def schedule_for(coverage: Coverage, schedule: Schedule) -> Schedule:
    """``24x7`` counts every minute whatever the customer's hours; else the customer's calendar."""
    return TWENTY_FOUR_SEVEN if coverage == "24x7" else schedule


def compute_due(
    opened_at: datetime, target: DeadlineTarget, schedule: Schedule, pauses: Sequence[Pause] = ()
) -> datetime:
    """When the ``target.minutes``-th counted minute after ``opened_at`` ends (aware UTC)."""
    return add_business_minutes(
        opened_at, target.minutes, schedule_for(target.coverage, schedule), pauses
    )


def fraction_minutes(minutes: int, fraction: float) -> int:
    """``ceil(minutes * fraction)`` computed exactly (``0.9 * 10`` is 9, not 10)."""
    return math.ceil(minutes * Fraction(repr(fraction)))


def warning_instants(
    opened_at: datetime,
    target: DeadlineTarget,
    schedule: Schedule,
    pauses: Sequence[Pause],
    fractions: Iterable[float],
    due_at: datetime | None = None,
) -> tuple[WarningInstant, ...]:
    """Warnings at ``fractions`` of the target, ascending, each strictly before the deadline.

    Fractions that land on the same instant (short targets) collapse into the
    largest one; those landing on the deadline itself are dropped.
    """
    due = compute_due(opened_at, target, schedule, pauses) if due_at is None else due_at
    sched = schedule_for(target.coverage, schedule)
    by_instant: dict[datetime, float] = {}
    for fraction in sorted(set(fractions)):
        minutes = fraction_minutes(target.minutes, fraction)
        if minutes <= 0 or minutes >= target.minutes:
            continue
        at = add_business_minutes(opened_at, minutes, sched, pauses)
        if at < due:
            by_instant[at] = fraction
    return tuple(WarningInstant(fraction=f, at=at) for at, f in sorted(by_instant.items()))


def effective_deadline(
    opened_at: datetime,
    targets: Sequence[DeadlineTarget],
    schedule: Schedule,
    pauses: Sequence[Pause] = (),
    fractions: Iterable[float] = (),
) -> Deadline:
    """The earliest deadline among ``targets`` (plan, and fast-track when used), with warnings.

    On a tie the first target wins, so list the plan's target first: a fast-track
    is only "used" for the deadline when it actually makes it earlier.
    """
    if not targets:
        raise ValueError("at least one target is needed")
    best: tuple[datetime, DeadlineTarget] | None = None
    for target in targets:
        due = compute_due(opened_at, target, schedule, pauses)
        if best is None or due < best[0]:
            best = (due, target)
    assert best is not None
    due_at, target = best
    warnings = warning_instants(opened_at, target, schedule, pauses, fractions, due_at)
    return Deadline(due_at=due_at, warnings=warnings, target=target)


def escalation(
    due_at: datetime, now: datetime, ladder: Sequence[int]
) -> tuple[int, datetime | None]:
    """The escalation level reached at ``now`` and when the next one falls due.

    Level ``n`` is reached ``ladder[n - 1]`` minutes after the deadline (an ascending
    list; the default ``(0, 60, 240)`` makes the breach itself level 1).
    """
    level = sum(1 for minutes in ladder if due_at + timedelta(minutes=minutes) <= now)
    upcoming = due_at + timedelta(minutes=ladder[level]) if level < len(ladder) else None
    return level, upcoming
