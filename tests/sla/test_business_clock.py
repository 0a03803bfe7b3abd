"""The business clock (the fast path of sla.calendar) against simple references.

``add_business_minutes`` answers a UTC start without pauses from a per-schedule
table of business intervals (two binary searches); everything else goes through
the day-by-day walk.  These properties pin the fast path to (1) a minute-by-minute
reference that applies the wall-clock rule with the ``holidays`` package's own
country calendar, and (2) the walk, over windows, country and custom holidays,
pauses, DST transitions and instants years apart (which make the table grow).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import holidays as holidays_pkg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla import calendar
from sla.calendar import (
    Pause,
    Schedule,
    add_business_minutes,
    business_time_between,
)
from tests.sla.test_calendar import (
    OPEN,
    TRANSITIONS,
    ZONES,
    Reference,
    day_windows,
    from_us,
    to_us,
)

COUNTRIES = [("DE", None), ("DE", "BY"), ("US", None), ("GB", "SCT"), ("NZ", None), ("CL", None)]
COUNTRY_ZONE = {
    "DE": "Europe/Berlin",
    "US": "America/New_York",
    "GB": "Europe/London",
    "NZ": "Pacific/Auckland",
    "CL": "America/Santiago",
}
_fresh = itertools.count()


def fresh(schedule: Schedule, hot: bool = True) -> Schedule:
    """An equal-in-behaviour schedule with its own (empty) engine and clock.

    Equal schedules share one engine; a distinct custom holiday centuries away
    gives a schedule its own, so the clock is built from the instants the test asks.
    ``hot`` counts it as asked often already, so its very first question builds the
    clock (a schedule otherwise gets one after ``_CLOCK_AFTER`` walks).
    """
    far = date(1700, 1, 1) + timedelta(days=next(_fresh) % 30_000)
    made = Schedule(
        schedule.timezone,
        schedule.weekly,
        schedule.holidays | {far},
        schedule.country,
        schedule.subdivision,
    )
    if hot:
        calendar._engine_of(made).asks = calendar._CLOCK_AFTER
    return made


class CountryReference(Reference):
    """The minute-by-minute rule, with the country's holidays from the package itself."""

    def __init__(self, schedule: Schedule, pauses: tuple[Pause, ...]) -> None:
        super().__init__(schedule, pauses)
        self.country = (
            None
            if schedule.country is None
            else holidays_pkg.country_holidays(schedule.country, subdiv=schedule.subdivision)
        )

    def counts(self, minute: int) -> bool:
        if self.country is not None:
            local = datetime.fromtimestamp(minute * 60, self.tz)
            if local.date() in self.country:
                return False
        return super().counts(minute)


def walk(schedule: Schedule, start: datetime, minutes: int) -> datetime:
    """The day-by-day walk the fast path stands in for (no pauses)."""
    engine = calendar._engine_of(schedule)
    return from_us(engine.add(to_us(start), minutes * 60_000_000))


@st.composite
def country_schedules(draw: st.DrawFn) -> Schedule:
    country, subdivision = draw(st.sampled_from(COUNTRIES))
    zone = draw(st.sampled_from([COUNTRY_ZONE[country], *ZONES]))
    if draw(st.booleans()):  # the usual office: one window on weekdays
        start = draw(st.integers(0, 14 * 60)) // 30 * 30
        end = draw(st.integers(start + 30, 1440)) // 30 * 30
        days = draw(st.sampled_from(["mon-fri", "mon-sat", "sun-thu", "mon,wed,fri"]))
        spec = Schedule.business_hours(
            zone, days, f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"
        )
        weekly = spec.weekly
    else:
        weekly = tuple(draw(st.tuples(*[day_windows] * 7)))
        if not any(weekly):
            weekly = (((540, 1020),), *weekly[1:])
    custom = draw(st.frozensets(st.dates(date(2025, 1, 1), date(2028, 1, 1)), max_size=10))
    return Schedule(zone, weekly, custom, country, subdivision)


@st.composite
def utc_starts(draw: st.DrawFn, zone: str) -> datetime:
    trans = TRANSITIONS[zone]
    if trans and draw(st.booleans()):
        base = draw(st.sampled_from(trans))
        t = base + timedelta(microseconds=draw(st.integers(-3 * 86_400_000_000, 86_400_000_000)))
    else:
        t = datetime(2025, 2, 1, tzinfo=UTC) + timedelta(
            microseconds=draw(st.integers(0, 2 * 365 * 86_400_000_000))
        )
    if draw(st.booleans()):
        t = t.replace(second=0, microsecond=0)
    return t


def weekly_minutes(schedule: Schedule) -> int:
    return sum(b - a for day in schedule.weekly for a, b in day)


CLOCK = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@CLOCK
@given(st.data())
def test_clock_agrees_with_minute_reference_over_country_holidays_and_dst(
    data: st.DataObject,
) -> None:
    schedule = fresh(data.draw(country_schedules()))
    start = data.draw(utc_starts(schedule.timezone))
    # 30 minutes to three 24-hour days of targets, as the plans promise (capped so
    # that the reference's minute stepping stays quick on sparse calendars)
    minutes = data.draw(st.integers(1, min(4320, 4 * weekly_minutes(schedule))))
    expected = CountryReference(schedule, ()).add(start, minutes)
    assert add_business_minutes(start, minutes, schedule) == expected
    assert business_time_between(start, expected, schedule) == timedelta(minutes=minutes)


@CLOCK
@given(st.data())
def test_clock_between_agrees_with_minute_reference(data: st.DataObject) -> None:
    schedule = fresh(data.draw(country_schedules()))
    start = data.draw(utc_starts(schedule.timezone))
    end = start + timedelta(seconds=data.draw(st.integers(0, 10 * 86_400)))
    expected = CountryReference(schedule, ()).between_us(start, end)
    assert business_time_between(start, end, schedule) == timedelta(microseconds=expected)


@CLOCK
@given(st.data())
def test_pauses_and_clock_agree_with_reference(data: st.DataObject) -> None:
    """With pauses the walk answers; the same deadline without them comes from the clock."""
    schedule = fresh(data.draw(country_schedules()))
    start = data.draw(utc_starts(schedule.timezone))
    minutes = data.draw(st.integers(1, min(2000, 3 * weekly_minutes(schedule))))
    base = start.replace(second=0, microsecond=0)
    pauses: list[Pause] = []
    for _ in range(data.draw(st.integers(0, 3))):
        a = base + timedelta(minutes=data.draw(st.integers(-1440, 6 * 1440)))
        pauses.append((a, a + timedelta(minutes=data.draw(st.integers(0, 2 * 1440)))))
    if data.draw(st.integers(0, 5)) == 0:
        pauses.append((base + timedelta(minutes=data.draw(st.integers(0, 6 * 1440))), None))
    reference = CountryReference(schedule, tuple(pauses))
    try:
        got: object = add_business_minutes(start, minutes, schedule, pauses)
    except calendar.OpenPause:
        got = OPEN
    assert got == reference.add(start, minutes)
    unpaused = add_business_minutes(start, minutes, schedule)
    assert unpaused == CountryReference(schedule, ()).add(start, minutes)
    assert got is OPEN or (isinstance(got, datetime) and got >= unpaused)


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.data(),
    st.lists(st.integers(-40 * 365, 40 * 365), min_size=2, max_size=8),
    st.lists(st.integers(1, 60 * 480), min_size=2, max_size=8),
)
def test_clock_equals_the_walk_whatever_order_and_distance(
    data: st.DataObject, day_offsets: list[int], targets: list[int]
) -> None:
    """Starts decades apart, in any order, grow the table down and up; answers never change."""
    schedule = data.draw(country_schedules())
    noon = datetime(2026, 6, 1, 12, tzinfo=UTC)
    starts = [noon + timedelta(days=d, minutes=37 * i) for i, d in enumerate(day_offsets)]
    asks = list(zip(starts, itertools.cycle(targets), strict=False))
    forward, backward = fresh(schedule), fresh(schedule)
    got_forward = [add_business_minutes(s, n, forward) for s, n in asks]
    got_backward = [add_business_minutes(s, n, backward) for s, n in reversed(asks)][::-1]
    expected = [walk(schedule, s, n) for s, n in asks]
    assert got_forward == expected
    assert got_backward == expected


def test_a_schedule_gets_its_clock_once_asked_often_and_answers_the_same() -> None:
    schedule = fresh(Schedule.business_hours("America/New_York", country="US"), hot=False)
    engine = calendar._engine_of(schedule)
    start = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)  # the evening before Thanksgiving
    answers = [
        add_business_minutes(start + timedelta(hours=i), 480, schedule)
        for i in range(calendar._CLOCK_AFTER + 10)
    ]
    assert engine.clock is not None
    asked_by_walk = answers[: calendar._CLOCK_AFTER]
    asked_by_clock = answers[calendar._CLOCK_AFTER :]
    assert [walk(schedule, start + timedelta(hours=i), 480) for i in range(len(answers))] == (
        asked_by_walk + asked_by_clock
    )
    # Wed 20:30 UTC is 15:30 in New York: 90 min, then Thanksgiving, then Fri 09:00 + 6.5 h
    assert answers[0] == datetime(2026, 11, 27, 20, 30, tzinfo=UTC)


def test_a_start_in_another_zone_gets_the_same_answer_as_in_utc() -> None:
    schedule = fresh(Schedule.business_hours("Europe/Berlin", country="DE"))
    start = datetime(2026, 3, 27, 15, 12, 13, 14, tzinfo=UTC)
    in_berlin = start.astimezone(calendar.ZoneInfo("Europe/Berlin"))
    due = add_business_minutes(in_berlin, 480, schedule)
    assert due == add_business_minutes(start, 480, schedule)
    assert due.tzinfo is UTC
    # Fri 16:12:13 CET + 48 min, then Mon 30 Mar (after the spring-forward Sunday) 7 h 12 min
    assert due == datetime(2026, 3, 30, 14, 12, 13, 14, tzinfo=UTC)


def test_a_year_without_business_time_leaves_the_answer_to_the_walk() -> None:
    # Mondays only, every Monday of 2027 a holiday: the clock would need a table with
    # a year-long gap, so the walk answers, with the same result as the reference.
    mondays = {date(2027, 1, 4) + timedelta(weeks=w) for w in range(53)}
    schedule = fresh(Schedule.business_hours("UTC", "mon", holidays=mondays))
    start = datetime(2026, 12, 29, 10, tzinfo=UTC)
    due = add_business_minutes(start, 60, schedule)
    assert due == datetime(2028, 1, 10, 10, tzinfo=UTC)
    assert calendar._engine_of(schedule).clock_usable is False
    assert business_time_between(start, due, schedule) == timedelta(hours=1)


def test_a_decade_without_business_time_is_still_an_error() -> None:
    mondays = {date(2027, 1, 4) + timedelta(weeks=w) for w in range(53 * 11)}
    schedule = fresh(Schedule.business_hours("UTC", "mon", holidays=mondays))
    with pytest.raises(ValueError, match="no business time"):
        add_business_minutes(datetime(2026, 12, 29, 10, tzinfo=UTC), 60, schedule)


def test_deadlines_far_from_the_table_come_from_the_walk() -> None:
    schedule = fresh(Schedule.business_hours("Europe/Berlin", country="DE"))
    near = datetime(2026, 5, 4, 8, tzinfo=UTC)
    far = datetime(2150, 5, 4, 8, tzinfo=UTC)  # beyond the table's span from 2026
    assert add_business_minutes(near, 480, schedule) == walk(schedule, near, 480)
    assert add_business_minutes(far, 480, schedule) == walk(schedule, far, 480)
    assert add_business_minutes(datetime(9999, 12, 1, tzinfo=UTC), 60, schedule) == walk(
        schedule, datetime(9999, 12, 1, tzinfo=UTC), 60
    )
