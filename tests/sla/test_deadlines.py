"""The deadline policy (sla.deadlines): hand-checked tables, then hypothesis properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.calendar import Pause, Schedule, business_minutes_between
from sla.deadlines import (
    DeadlineTarget,
    build_schedule,
    compute_due,
    effective_deadline,
    escalation,
    fraction_minutes,
    schedule_for,
    warning_instants,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
FRACTIONS = (0.5, 0.75, 0.9)

BERLIN_OFFICE = build_schedule("Europe/Berlin", None, "DE")  # default Mon-Fri 09-17
NEW_YORK_OFFICE = build_schedule("America/New_York")
SPLIT_SHIFT = build_schedule(
    "Asia/Tokyo", {"mon": ["09:00-12:00", "13:00-18:00"], "tue": ["09:00-12:00", "13:00-18:00"]}
)
ALL_DAY = build_schedule("UTC", {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri")})


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def bh(minutes: int) -> DeadlineTarget:
    return DeadlineTarget(minutes, "business_hours")


def h24(minutes: int, source: str = "plan") -> DeadlineTarget:
    return DeadlineTarget(minutes, "24x7", source)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("opened_at", "target", "schedule", "expected"),
    [
        # 24x7 counts every minute, whatever the customer's office hours.
        (berlin(2026, 11, 21, 23, 0), h24(120), BERLIN_OFFICE, berlin(2026, 11, 22, 1, 0)),
        # Friday 15:00 + 4 business hours: 2 h on Friday, 2 h from Monday 09:00.
        (berlin(2026, 11, 20, 15, 0), bh(240), BERLIN_OFFICE, berlin(2026, 11, 23, 11, 0)),
        # Opened on a Saturday: the clock starts Monday 09:00.
        (berlin(2026, 11, 21, 10, 30), bh(60), BERLIN_OFFICE, berlin(2026, 11, 23, 10, 0)),
        # Opened before opening time on a weekday.
        (berlin(2026, 11, 24, 7, 0), bh(30), BERLIN_OFFICE, berlin(2026, 11, 24, 9, 30)),
        # Thu 24 Dec 16:00: one hour that day, 25 Dec (Fri) is a German holiday, then Monday.
        (berlin(2026, 12, 24, 16, 0), bh(120), BERLIN_OFFICE, berlin(2026, 12, 28, 10, 0)),
        # Good Friday and Easter Monday 2026 (3 and 6 April) are closed in Germany.
        (berlin(2026, 4, 2, 16, 0), bh(120), BERLIN_OFFICE, berlin(2026, 4, 7, 10, 0)),
        # New York switches to EDT on Sun 8 Mar 2026: Friday 16:00 EST + 2 h ends Monday
        # 10:00 EDT, which is 14:00 UTC (not 15:00).
        (
            datetime(2026, 3, 6, 16, 0, tzinfo=NEW_YORK),
            bh(120),
            NEW_YORK_OFFICE,
            utc(2026, 3, 9, 14, 0),
        ),
        # Two windows a day: 11:00 + 3 h = 1 h before lunch, 2 h after -> 15:00 Tokyo.
        (
            datetime(2026, 11, 23, 11, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
            bh(180),
            SPLIT_SHIFT,
            datetime(2026, 11, 23, 15, 0, tzinfo=ZoneInfo("Asia/Tokyo")),
        ),
        # Seconds are kept: nothing is rounded to the minute.
        (utc(2026, 11, 23, 10, 0, 30), h24(1), ALL_DAY, utc(2026, 11, 23, 10, 1, 30)),
    ],
)
def test_compute_due_table(
    opened_at: datetime, target: DeadlineTarget, schedule: Schedule, expected: datetime
) -> None:
    assert compute_due(opened_at, target, schedule) == expected


def test_custom_holidays_are_closed() -> None:
    schedule = build_schedule("Europe/Berlin", None, None, [date(2026, 11, 23)])
    # Friday 16:00 + 2 h: 1 h Friday, Monday 23 Nov closed, 1 h Tuesday.
    assert compute_due(berlin(2026, 11, 20, 16, 0), bh(120), schedule) == berlin(
        2026, 11, 24, 10, 0
    )


def test_default_business_hours_are_weekdays_nine_to_five() -> None:
    assert build_schedule("UTC").to_spec() == {
        d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")
    }


def test_fast_track_wins_only_when_earlier() -> None:
    opened = berlin(2026, 11, 20, 16, 30)  # Friday, half an hour before closing
    plan, fast = bh(480), h24(60, "fast_track")
    chosen = effective_deadline(opened, [plan, fast], BERLIN_OFFICE, (), FRACTIONS)
    assert chosen.target == fast
    assert chosen.due_at == berlin(2026, 11, 20, 17, 30)
    # A plan already faster than the fast-track target keeps its own deadline.
    quick = effective_deadline(opened, [h24(30), fast], BERLIN_OFFICE, (), FRACTIONS)
    assert quick.target.source == "plan"
    assert quick.due_at == berlin(2026, 11, 20, 17, 0)
    # A tie goes to the plan: the fast-track did not make the incident faster.
    tie = effective_deadline(opened, [h24(60), fast], BERLIN_OFFICE, (), FRACTIONS)
    assert tie.target.source == "plan"


@pytest.mark.parametrize(
    ("target", "schedule", "opened_at", "expected"),
    [
        (
            h24(120),
            BERLIN_OFFICE,
            utc(2026, 11, 23, 10, 0),
            [
                (0.5, utc(2026, 11, 23, 11, 0)),
                (0.75, utc(2026, 11, 23, 11, 30)),
                (0.9, utc(2026, 11, 23, 11, 48)),
            ],
        ),
        # Business minutes: 4 h from Friday 15:00 Berlin -> 2 h at Fri 17:00, 3 h at Mon 10:00,
        # ceil(3.6 h) = 216 min at Mon 10:36.
        (
            bh(240),
            BERLIN_OFFICE,
            berlin(2026, 11, 20, 15, 0),
            [
                (0.5, berlin(2026, 11, 20, 17, 0)),
                (0.75, berlin(2026, 11, 23, 10, 0)),
                (0.9, berlin(2026, 11, 23, 10, 36)),
            ],
        ),
        # 0.9 x 10 is exactly 9 minutes (not 10 through float rounding).
        (
            h24(10),
            BERLIN_OFFICE,
            utc(2026, 11, 23, 10, 0),
            [
                (0.5, utc(2026, 11, 23, 10, 5)),
                (0.75, utc(2026, 11, 23, 10, 8)),
                (0.9, utc(2026, 11, 23, 10, 9)),
            ],
        ),
        # 2 minutes: 50 % is minute 1; 75 % and 90 % round up onto the deadline -> dropped.
        (h24(2), BERLIN_OFFICE, utc(2026, 11, 23, 10, 0), [(0.5, utc(2026, 11, 23, 10, 1))]),
        (h24(1), BERLIN_OFFICE, utc(2026, 11, 23, 10, 0), []),
    ],
)
def test_warning_instants_table(
    target: DeadlineTarget,
    schedule: Schedule,
    opened_at: datetime,
    expected: list[tuple[float, datetime]],
) -> None:
    warnings = warning_instants(opened_at, target, schedule, (), FRACTIONS)
    assert [(w.fraction, w.at) for w in warnings] == expected


def test_fraction_minutes_is_exact() -> None:
    assert fraction_minutes(10, 0.9) == 9
    assert fraction_minutes(100, 0.07) == 7
    assert fraction_minutes(3, 0.5) == 2


def test_a_pause_pushes_the_deadline_by_the_paused_business_time() -> None:
    opened = berlin(2026, 11, 23, 9, 0)  # Monday
    base = compute_due(opened, bh(240), BERLIN_OFFICE)
    assert base == berlin(2026, 11, 23, 13, 0)
    # 30 minutes paused in business hours: 30 minutes later.
    in_hours: list[Pause] = [(berlin(2026, 11, 23, 10, 0), berlin(2026, 11, 23, 10, 30))]
    assert compute_due(opened, bh(240), BERLIN_OFFICE, in_hours) == berlin(2026, 11, 23, 13, 30)
    # Paused from 12:00 to 18:00: the 5 business hours in it move the deadline to Tuesday 10:00.
    long: list[Pause] = [(berlin(2026, 11, 23, 12, 0), berlin(2026, 11, 23, 18, 0))]
    assert compute_due(opened, bh(240), BERLIN_OFFICE, long) == berlin(2026, 11, 24, 10, 0)
    # A pause outside business hours changes nothing.
    night: list[Pause] = [(berlin(2026, 11, 22, 20, 0), berlin(2026, 11, 23, 8, 0))]
    assert compute_due(opened, bh(240), BERLIN_OFFICE, night) == base
    # 24x7 counts the pause minute for minute.
    assert compute_due(opened, h24(240), BERLIN_OFFICE, long) == berlin(2026, 11, 23, 19, 0)


def test_priority_change_recomputes_from_opened_at() -> None:
    opened = berlin(2026, 11, 23, 9, 0)
    p3 = effective_deadline(opened, [bh(960)], BERLIN_OFFICE, (), FRACTIONS)
    p1 = effective_deadline(opened, [h24(120)], BERLIN_OFFICE, (), FRACTIONS)
    assert p3.due_at == berlin(2026, 11, 24, 17, 0)
    assert p1.due_at == berlin(2026, 11, 23, 11, 0)


@pytest.mark.parametrize(
    ("minutes_late", "ladder", "expected_level", "next_in"),
    [
        (0, (0, 60, 240), 1, 60),
        (59, (0, 60, 240), 1, 60),
        (60, (0, 60, 240), 2, 240),
        (600, (0, 60, 240), 3, None),
        (0, (5, 30), 0, 5),
        (0, (), 0, None),
    ],
)
def test_escalation_ladder(
    minutes_late: int, ladder: tuple[int, ...], expected_level: int, next_in: int | None
) -> None:
    due = utc(2026, 11, 23, 10, 0)
    level, upcoming = escalation(due, due + timedelta(minutes=minutes_late), ladder)
    assert level == expected_level
    assert upcoming == (None if next_in is None else due + timedelta(minutes=next_in))


# ---------------------------------------------------------------- properties

SCHEDULES = st.sampled_from(
    [
        BERLIN_OFFICE,
        NEW_YORK_OFFICE,
        SPLIT_SHIFT,
        ALL_DAY,
        build_schedule("Australia/Lord_Howe", {"sat": ["22:00-24:00"], "sun": ["00:00-06:00"]}),
    ]
)
INSTANTS = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by contract
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
TARGETS = st.builds(
    DeadlineTarget,
    minutes=st.integers(min_value=1, max_value=6000),
    coverage=st.sampled_from(["24x7", "business_hours"]),
)


@st.composite
def pauses_after(draw: st.DrawFn, start: datetime) -> list[Pause]:
    out: list[Pause] = []
    at = start
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        at += timedelta(minutes=draw(st.integers(min_value=0, max_value=5000)))
        end = at + timedelta(minutes=draw(st.integers(min_value=1, max_value=5000)))
        out.append((at, end))
        at = end
    return out


@settings(max_examples=200, deadline=None)
@given(opened=INSTANTS, schedule=SCHEDULES, a=TARGETS, extra=st.integers(0, 3000))
def test_due_is_monotone_in_the_target(
    opened: datetime, schedule: Schedule, a: DeadlineTarget, extra: int
) -> None:
    b = DeadlineTarget(a.minutes + extra, a.coverage)
    assert compute_due(opened, a, schedule) <= compute_due(opened, b, schedule)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), opened=INSTANTS, schedule=SCHEDULES, target=TARGETS)
def test_a_pause_never_makes_the_deadline_earlier(
    data: st.DataObject, opened: datetime, schedule: Schedule, target: DeadlineTarget
) -> None:
    pauses = data.draw(pauses_after(opened))
    plain = compute_due(opened, target, schedule)
    paused = compute_due(opened, target, schedule, pauses)
    assert paused >= plain
    # ... by exactly the paused business time: the unpaused counted time is still the target.
    counted = schedule_for(target.coverage, schedule)
    assert business_minutes_between(opened, paused, counted, pauses) == target.minutes


@settings(max_examples=200, deadline=None)
@given(data=st.data(), opened=INSTANTS, schedule=SCHEDULES, target=TARGETS)
def test_warnings_are_ascending_and_strictly_before_the_deadline(
    data: st.DataObject, opened: datetime, schedule: Schedule, target: DeadlineTarget
) -> None:
    pauses = data.draw(pauses_after(opened))
    fractions = data.draw(
        st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=0, max_size=4)
    )
    deadline = effective_deadline(opened, [target], schedule, pauses, fractions)
    instants = [w.at for w in deadline.warnings]
    assert instants == sorted(set(instants))
    assert all(opened < at < deadline.due_at for at in instants)
    assert [w.fraction for w in deadline.warnings] == sorted(w.fraction for w in deadline.warnings)


@settings(max_examples=200, deadline=None)
@given(opened=INSTANTS, schedule=SCHEDULES, target=TARGETS)
def test_due_holds_exactly_the_target_in_counted_minutes(
    opened: datetime, schedule: Schedule, target: DeadlineTarget
) -> None:
    due = compute_due(opened, target, schedule)
    if target.coverage == "24x7":
        assert due == opened + timedelta(minutes=target.minutes)
    else:
        assert business_minutes_between(opened, due, schedule) == target.minutes


@settings(max_examples=200, deadline=None)
@given(opened=INSTANTS, schedule=SCHEDULES, plan=TARGETS, fast=st.integers(1, 600))
def test_the_effective_deadline_is_the_earliest_candidate(
    opened: datetime, schedule: Schedule, plan: DeadlineTarget, fast: int
) -> None:
    fast_track = DeadlineTarget(fast, "24x7", "fast_track")
    chosen = effective_deadline(opened, [plan, fast_track], schedule, (), FRACTIONS)
    plan_due = compute_due(opened, plan, schedule)
    fast_due = compute_due(opened, fast_track, schedule)
    assert chosen.due_at == min(plan_due, fast_due)
    assert chosen.target == (fast_track if fast_due < plan_due else plan)
