"""Tests for the business-time engine (sla.calendar).

Hand-checked tables first (every expected value carries the reasoning), then
hypothesis properties against a brute-force reference that literally applies the
rule "a minute counts when the wall clock shows a time inside a window of a
non-holiday date and it is not paused".
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla.calendar import (
    TWENTY_FOUR_SEVEN,
    InvalidSchedule,
    OpenPause,
    Pause,
    Schedule,
    add_business_minutes,
    business_minutes_between,
    business_time_between,
    country_holidays,
    next_business_instant,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
AUCKLAND = ZoneInfo("Pacific/Auckland")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
BEIRUT = ZoneInfo("Asia/Beirut")

ALL_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=BERLIN)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def every_day(timezone: str, window: str, holidays: Iterable[date] = ()) -> Schedule:
    return Schedule.from_spec(timezone, {day: [window] for day in ALL_DAYS}, holidays)


# Mon-Fri 09:00-17:00 Berlin with German public holidays, resolved lazily per year.
BERLIN_9_17 = Schedule.business_hours("Europe/Berlin", "mon-fri", "09:00", "17:00", country="DE")
# 00:00-24:00 every day in Berlin local time.  The far-away custom holiday stops
# the engine from recognising it as 24x7, so the interval walk itself is tested.
BERLIN_ALL_DAY_WALKED = every_day("Europe/Berlin", "00:00-24:00", holidays={date(1999, 1, 1)})
BERLIN_EARLY = every_day("Europe/Berlin", "00:00-06:00")
NIGHT_SHIFT = Schedule.from_spec("Europe/Berlin", {"mon": ["22:00-24:00"], "tue": ["00:00-06:00"]})
NEW_YORK_9_17 = Schedule.business_hours("America/New_York")
KOLKATA_0930_1800 = Schedule.business_hours("Asia/Kolkata", start="09:30", end="18:00")
LOS_ANGELES_9_17 = Schedule.business_hours("America/Los_Angeles")
AUCKLAND_9_17 = Schedule.business_hours("Pacific/Auckland", holidays={date(2026, 2, 6)})


# --------------------------------------------------------------- hand-checked table


@dataclass(frozen=True)
class Case:
    schedule: Schedule | None
    start: datetime
    minutes: int
    expected: datetime  # UTC
    pauses: tuple[Pause, ...] = ()


CASES: dict[str, Case] = {
    # Fri 2026-03-06 16:30 CET: 30 min until 17:00; Sat/Sun closed; the other 30 min
    # run from Mon 09:00 CET -> Mon 09:30 CET = 08:30 UTC.
    "friday_1630_plus_60_is_monday_0930": Case(
        BERLIN_9_17, berlin(2026, 3, 6, 16, 30), 60, utc(2026, 3, 9, 8, 30)
    ),
    # Tue 07:15 is before opening: counting starts at 09:00 -> 09:30 CET = 08:30 UTC.
    "start_before_opening_counts_from_opening": Case(
        BERLIN_9_17, berlin(2026, 3, 10, 7, 15), 30, utc(2026, 3, 10, 8, 30)
    ),
    # Tue 18:00 is after closing; 480 min = all of Wed 09:00-17:00.  The 480th minute
    # ends at Wed 17:00 CET (16:00 UTC): the window's end, not Thu 09:00.
    "exactly_one_full_day_lands_on_window_end": Case(
        BERLIN_9_17, berlin(2026, 3, 10, 18, 0), 480, utc(2026, 3, 11, 16, 0)
    ),
    # Thu 2026-12-24 is not a German public holiday: 60 min to 17:00.  Fri 25 and
    # Sat 26 are (Christmas Day, Second Day of Christmas), Sun closed, so the other
    # 60 min run Mon 28 09:00-10:00 CET -> 09:00 UTC.
    "christmas_holidays_are_skipped": Case(
        BERLIN_9_17, berlin(2026, 12, 24, 16, 0), 120, utc(2026, 12, 28, 9, 0)
    ),
    # Starting on a holiday (Fri 2026-12-25): next opening is Mon 28 09:00 CET,
    # +30 min = 09:30 CET = 08:30 UTC.
    "start_on_holiday_counts_from_next_working_day": Case(
        BERLIN_9_17, berlin(2026, 12, 25, 10, 0), 30, utc(2026, 12, 28, 8, 30)
    ),
    # Thu 2026-12-31 is a working day: 60 min.  Fri 2027-01-01 is New Year's Day,
    # then the weekend: Mon 2027-01-04 09:00-10:00 CET -> 09:00 UTC.
    "new_year_2027_is_skipped": Case(
        BERLIN_9_17, berlin(2026, 12, 31, 16, 0), 120, utc(2027, 1, 4, 9, 0)
    ),
    # Holidays for 2029 are resolved lazily from country="DE": Mon 2029-12-24 60 min,
    # Tue 25 + Wed 26 holidays, Thu 27 09:00-10:00 CET -> 09:00 UTC.
    "country_holidays_resolved_for_later_years": Case(
        BERLIN_9_17, berlin(2029, 12, 24, 16, 0), 120, utc(2029, 12, 27, 9, 0)
    ),
    # 00:00-24:00 local every day counts every real minute.  Sun 2026-03-29 00:30 CET
    # = Sat 23:30 UTC; +3 h of real time = 02:30 UTC (04:30 CEST).  Wall-clock
    # arithmetic would wrongly give 03:30 local.
    "berlin_spring_forward_all_day_local_equals_utc": Case(
        BERLIN_ALL_DAY_WALKED, berlin(2026, 3, 29, 0, 30), 180, utc(2026, 3, 29, 2, 30)
    ),
    # Sun 2026-10-25 00:30 CEST = Sat 22:30 UTC; +3 h = 01:30 UTC = 02:30 CET (the
    # second 02:30 of that night).
    "berlin_fall_back_all_day_local_equals_utc": Case(
        BERLIN_ALL_DAY_WALKED, berlin(2026, 10, 25, 0, 30), 180, utc(2026, 10, 25, 1, 30)
    ),
    # 00:00-06:00 daily.  Sun 2026-03-29 00:00 CET (Sat 23:00 UTC) to 06:00 CEST
    # (04:00 UTC) is 5 real hours (clocks skip 02:00-03:00).  The 6th hour is
    # Mon 00:00-01:00 CEST = Sun 22:00-23:00 UTC.
    "spring_forward_window_holds_five_hours": Case(
        BERLIN_EARLY, berlin(2026, 3, 29, 0, 0), 360, utc(2026, 3, 29, 23, 0)
    ),
    # Sun 2026-10-25 00:00 CEST (Sat 22:00 UTC) to 06:00 CET (05:00 UTC) is 7 real
    # hours (02:00-03:00 happens twice): 420 min end exactly at 05:00 UTC.
    "fall_back_window_holds_seven_hours": Case(
        BERLIN_EARLY, berlin(2026, 10, 25, 0, 0), 420, utc(2026, 10, 25, 5, 0)
    ),
    # mon 22:00-24:00 + tue 00:00-06:00: from Mon 23:00 CET, 60 min to midnight and 60
    # more from Tue 00:00 with no gap -> Tue 01:00 CET = Tue 00:00 UTC.
    "window_ending_2400_chains_into_next_day": Case(
        NIGHT_SHIFT, berlin(2026, 3, 2, 23, 0), 120, utc(2026, 3, 3, 0, 0)
    ),
    # Fri 2026-03-06 16:00 EST (21:00 UTC): 60 min.  US DST starts Sun 03-08, so Mon
    # opens 09:00 EDT = 13:00 UTC (not 14:00); +60 -> 14:00 UTC.
    "new_york_over_dst_weekend": Case(
        NEW_YORK_9_17, datetime(2026, 3, 6, 16, 0, tzinfo=NEW_YORK), 120, utc(2026, 3, 9, 14, 0)
    ),
    # Kolkata is UTC+05:30.  Wed 2026-07-01 17:30 IST (12:00 UTC): 30 min to 18:00;
    # Thu 09:30 IST = 04:00 UTC, +60 -> 05:00 UTC (10:30 IST).
    "kolkata_half_hour_offset": Case(
        KOLKATA_0930_1800, datetime(2026, 7, 1, 17, 30, tzinfo=KOLKATA), 90, utc(2026, 7, 2, 5, 0)
    ),
    # Fri 2026-01-09 16:30 PST is already Sat 00:30 UTC.  30 min Fri, then Mon 09:00
    # PST (17:00 UTC) + 30 -> Mon 17:30 UTC.
    "los_angeles_friday_evening_is_saturday_utc": Case(
        LOS_ANGELES_9_17,
        datetime(2026, 1, 9, 16, 30, tzinfo=LOS_ANGELES),
        60,
        utc(2026, 1, 12, 17, 30),
    ),
    # Holiday Fri 2026-02-06 is an Auckland date (NZDT, UTC+13), i.e. Thu 11:00 UTC to
    # Fri 11:00 UTC.  Thu 16:30 NZDT (03:30 UTC): 30 min, Fri holiday, weekend, Mon
    # 09:00 NZDT (Sun 20:00 UTC) + 30 -> Sun 2026-02-08 20:30 UTC.
    "auckland_holiday_is_a_local_date": Case(
        AUCKLAND_9_17, datetime(2026, 2, 5, 16, 30, tzinfo=AUCKLAND), 60, utc(2026, 2, 8, 20, 30)
    ),
    # Seconds and microseconds are kept: 09:00:30.25 CET + 1 min = 09:01:30.25 CET.
    "seconds_are_not_rounded": Case(
        BERLIN_9_17,
        berlin(2026, 3, 10, 9, 0, 30, 250_000),
        1,
        utc(2026, 3, 10, 8, 1, 30, 250_000),
    ),
    # Pause 09:15-09:45 inside the window: 15 min + (pause) + 45 min -> 10:30 CET.
    "pause_inside_window_extends_deadline": Case(
        BERLIN_9_17,
        berlin(2026, 3, 10, 9, 0),
        60,
        utc(2026, 3, 10, 9, 30),
        ((berlin(2026, 3, 10, 9, 15), berlin(2026, 3, 10, 9, 45)),),
    ),
    # Tue 15:00 + 120 with a pause Tue 16:00 -> Wed 10:00: 60 min Tue, nothing until
    # Wed 10:00, 60 more -> Wed 11:00 CET = 10:00 UTC.
    "pause_across_windows": Case(
        BERLIN_9_17,
        berlin(2026, 3, 10, 15, 0),
        120,
        utc(2026, 3, 11, 10, 0),
        ((berlin(2026, 3, 10, 16, 0), berlin(2026, 3, 11, 10, 0)),),
    ),
    # Overlapping pauses 09:10-09:30 and 09:20-09:40 cover 30 min in total -> 10:30.
    "overlapping_pauses_count_once": Case(
        BERLIN_9_17,
        berlin(2026, 3, 10, 9, 0),
        60,
        utc(2026, 3, 10, 9, 30),
        (
            (berlin(2026, 3, 10, 9, 10), berlin(2026, 3, 10, 9, 30)),
            (berlin(2026, 3, 10, 9, 20), berlin(2026, 3, 10, 9, 40)),
        ),
    ),
    # A pause that only covers the weekend changes nothing (same as the first case).
    "pause_in_closed_time_changes_nothing": Case(
        BERLIN_9_17,
        berlin(2026, 3, 6, 16, 30),
        60,
        utc(2026, 3, 9, 8, 30),
        ((berlin(2026, 3, 7, 10, 0), berlin(2026, 3, 8, 20, 0)),),
    ),
    # A pause that began before the start and ends at 10:00: counting runs
    # 10:00-11:00 CET -> 10:00 UTC.
    "pause_started_before_start": Case(
        BERLIN_9_17,
        berlin(2026, 3, 10, 9, 0),
        60,
        utc(2026, 3, 10, 10, 0),
        ((berlin(2026, 3, 9, 12, 0), berlin(2026, 3, 10, 10, 0)),),
    ),
    # An open pause starting after the deadline (10:00 CET) does not matter.
    "open_pause_after_deadline_is_irrelevant": Case(
        BERLIN_9_17,
        berlin(2026, 3, 10, 9, 0),
        60,
        utc(2026, 3, 10, 9, 0),
        ((berlin(2026, 3, 10, 10, 0), None),),
    ),
    # 24x7: Berlin 01:30 CET on the spring-forward day is 00:30 UTC; +60 real minutes
    # = 01:30 UTC (03:30 CEST).  Plain UTC addition.
    "twenty_four_seven_over_dst_is_utc_addition": Case(
        None, berlin(2026, 3, 29, 1, 30), 60, utc(2026, 3, 29, 1, 30)
    ),
    "twenty_four_seven_sentinel_same_as_none": Case(
        TWENTY_FOUR_SEVEN, berlin(2026, 10, 25, 2, 30), 60, utc(2026, 10, 25, 1, 30)
    ),
    # 24x7 with a 2 h pause: 30 min, pause 2 h, 30 min -> 3 h after 10:00 UTC.
    "twenty_four_seven_with_pause": Case(
        None,
        utc(2026, 3, 10, 10, 0),
        60,
        utc(2026, 3, 10, 13, 0),
        ((utc(2026, 3, 10, 10, 30), utc(2026, 3, 10, 12, 30)),),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hand_checked_deadline(name: str) -> None:
    case = CASES[name]
    got = add_business_minutes(case.start, case.minutes, case.schedule, case.pauses)
    assert got == case.expected
    assert got.tzinfo is UTC
    # and the inverse counts the same minutes back
    assert business_minutes_between(case.start, got, case.schedule, case.pauses) == case.minutes


def test_hand_checked_weekdays_are_what_the_comments_say() -> None:
    assert berlin(2026, 3, 6).strftime("%a") == "Fri"
    assert date(2026, 12, 25).strftime("%a") == "Fri"
    assert date(2027, 1, 1).strftime("%a") == "Fri"
    assert date(2029, 12, 24).strftime("%a") == "Mon"
    assert date(2026, 2, 5).strftime("%a") == "Thu"
    assert date(2026, 7, 1).strftime("%a") == "Wed"
    assert {date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)} <= country_holidays(
        "DE", [2026, 2027]
    )
    assert date(2026, 12, 24) not in country_holidays("DE", [2026])
    # Berlin transitions: 2026-03-29 01:00 UTC (+1 -> +2), 2026-10-25 01:00 UTC (+2 -> +1)
    assert utc(2026, 3, 29, 0, 59).astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    assert utc(2026, 3, 29, 1, 0).astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    assert utc(2026, 10, 25, 0, 59).astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    assert utc(2026, 10, 25, 1, 0).astimezone(BERLIN).utcoffset() == timedelta(hours=1)


# Business minutes in one local day [00:00, next 00:00) for DST days.
DAY_CAPACITY = [
    # (schedule, timezone, local date, expected minutes, why)
    (BERLIN_EARLY, BERLIN, date(2026, 3, 10), 360, "ordinary day"),
    (BERLIN_EARLY, BERLIN, date(2026, 3, 29), 300, "02:00-03:00 skipped"),
    (BERLIN_EARLY, BERLIN, date(2026, 10, 25), 420, "02:00-03:00 twice"),
    (
        Schedule.from_spec("Europe/Berlin", {"sun": ["02:00-03:00"]}),
        BERLIN,
        date(2026, 3, 29),
        0,
        "the whole window is in the gap",
    ),
    (
        Schedule.from_spec("Europe/Berlin", {"sun": ["02:00-03:00"]}),
        BERLIN,
        date(2026, 4, 5),
        60,
        "next Sunday is normal",
    ),
    (
        Schedule.from_spec("Europe/Berlin", {"sun": ["02:30-03:30"]}),
        BERLIN,
        date(2026, 3, 29),
        30,
        "only 03:00-03:30 CEST is ever shown by the clock",
    ),
    (
        Schedule.from_spec("Europe/Berlin", {"sun": ["02:00-02:30"]}),
        BERLIN,
        date(2026, 10, 25),
        60,
        "the clock shows 02:00-02:30 twice (CEST, then CET)",
    ),
    (
        every_day("Australia/Lord_Howe", "00:00-06:00"),
        LORD_HOWE,
        date(2026, 4, 5),
        390,
        "02:00 +11 -> 01:30 +10:30: 01:30-02:00 twice",
    ),
    (
        every_day("Australia/Lord_Howe", "00:00-06:00"),
        LORD_HOWE,
        date(2026, 10, 4),
        330,
        "02:00 -> 02:30: half an hour skipped",
    ),
    (
        every_day("Pacific/Auckland", "00:00-06:00"),
        AUCKLAND,
        date(2026, 4, 5),
        420,
        "03:00 NZDT -> 02:00 NZST",
    ),
    (
        every_day("Pacific/Auckland", "00:00-06:00"),
        AUCKLAND,
        date(2026, 9, 27),
        300,
        "02:00 NZST -> 03:00 NZDT",
    ),
    (
        Schedule.from_spec("America/Santiago", {"sat": ["23:00-24:00"]}),
        SANTIAGO,
        date(2026, 4, 4),
        120,
        "Sun 00:00 -03 -> Sat 23:00 -04: Saturday's last hour happens twice",
    ),
    (
        every_day("America/Santiago", "00:00-06:00"),
        SANTIAGO,
        date(2026, 9, 6),
        300,
        "Sun 00:00 -04 -> 01:00 -03: the day starts at 01:00",
    ),
    (
        every_day("Asia/Beirut", "00:00-24:00", holidays={date(1999, 1, 1)}),
        BEIRUT,
        date(2026, 10, 24),
        25 * 60,
        "Sun 00:00 +03 -> Sat 23:00 +02: a 25-hour Saturday",
    ),
]


@pytest.mark.parametrize(("schedule", "tz", "day", "expected", "why"), DAY_CAPACITY)
def test_business_minutes_in_a_dst_day(
    schedule: Schedule, tz: ZoneInfo, day: date, expected: int, why: str
) -> None:
    # The day runs from the first instant showing `day` to the first showing day+1.
    first = next_wall_instant(tz, day)
    last = next_wall_instant(tz, day + timedelta(days=1))
    assert business_minutes_between(first, last, schedule) == expected, why


def next_wall_instant(tz: ZoneInfo, day: date) -> datetime:
    """First instant whose wall-clock date is >= day (brute force, minute steps)."""
    t = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=15)
    while t.astimezone(tz).date() < day:
        t += timedelta(minutes=1)
    return t


def test_window_end_is_not_the_next_opening() -> None:
    # add(Tue 09:00, 480) ends exactly at Tue 17:00; the next business instant
    # after that is Wed 09:00.  So "result is inside or at the END of a window".
    end = add_business_minutes(berlin(2026, 3, 10, 9), 480, BERLIN_9_17)
    assert end == utc(2026, 3, 10, 16)
    assert next_business_instant(end, BERLIN_9_17) == utc(2026, 3, 11, 8)
    assert add_business_minutes(end, 1, BERLIN_9_17) == utc(2026, 3, 11, 8, 1)
    # additivity still holds exactly at that boundary
    assert add_business_minutes(end, 60, BERLIN_9_17) == add_business_minutes(
        berlin(2026, 3, 10, 9), 540, BERLIN_9_17
    )


def test_contiguous_windows_have_no_seam_at_midnight() -> None:
    midnight = berlin(2026, 3, 3, 0, 0)  # Tue 00:00 CET = Mon 23:00 UTC
    assert add_business_minutes(berlin(2026, 3, 2, 22), 120, NIGHT_SHIFT) == midnight
    assert next_business_instant(midnight, NIGHT_SHIFT) == midnight
    assert business_minutes_between(berlin(2026, 3, 2, 22), berlin(2026, 3, 3, 6), NIGHT_SHIFT) == (
        480
    )


def test_zero_minutes_returns_start_even_outside_hours() -> None:
    saturday = berlin(2026, 3, 7, 12, 0, 5)
    got = add_business_minutes(saturday, 0, BERLIN_9_17)
    assert got == saturday
    assert got.tzinfo is UTC
    assert add_business_minutes(saturday, 0, None) == saturday
    # the clock starts at the next opening
    assert next_business_instant(saturday, BERLIN_9_17) == berlin(2026, 3, 9, 9)


def test_next_business_instant_inside_window_is_itself() -> None:
    at = berlin(2026, 3, 10, 12, 34, 56, 789)
    assert next_business_instant(at, BERLIN_9_17) == at
    assert next_business_instant(berlin(2026, 3, 10, 17), BERLIN_9_17) == berlin(2026, 3, 11, 9)
    assert next_business_instant(at, None) == at
    # paused at `at`: business time resumes when the pause ends
    pause = ((berlin(2026, 3, 10, 12), berlin(2026, 3, 10, 13)),)
    assert next_business_instant(at, BERLIN_9_17, pause) == berlin(2026, 3, 10, 13)


def test_open_pause_before_deadline_raises_with_remaining_time() -> None:
    start = berlin(2026, 3, 10, 9, 0)
    with pytest.raises(OpenPause) as info:
        add_business_minutes(start, 60, BERLIN_9_17, [(berlin(2026, 3, 10, 9, 30), None)])
    assert info.value.paused_at == berlin(2026, 3, 10, 9, 30)
    assert info.value.remaining == timedelta(minutes=30)
    with pytest.raises(OpenPause) as info:
        add_business_minutes(start, 60, None, [(berlin(2026, 3, 10, 9, 45), None)])
    assert info.value.remaining == timedelta(minutes=15)
    # counting up to "now" with an open pause is fine: it just stops at the pause
    now = berlin(2026, 3, 10, 16, 0)
    assert business_minutes_between(start, now, BERLIN_9_17, [(start + timedelta(hours=1), None)])
    assert (
        business_minutes_between(start, now, BERLIN_9_17, [(start + timedelta(minutes=30), None)])
        == 30
    )


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 3, 10, 9, 0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_minutes(naive, 10, BERLIN_9_17)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_minutes(naive, 10, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_minutes(naive, 0, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        business_minutes_between(naive, naive, None)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_minutes(berlin(2026, 3, 10), 10, None, [(naive, None)])


def test_bad_minutes_and_pauses_are_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        add_business_minutes(berlin(2026, 3, 10), -1, BERLIN_9_17)
    with pytest.raises(TypeError):
        add_business_minutes(berlin(2026, 3, 10), 1.5, BERLIN_9_17)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ends before it starts"):
        add_business_minutes(
            berlin(2026, 3, 10), 1, BERLIN_9_17, [(berlin(2026, 3, 10, 12), berlin(2026, 3, 10))]
        )


def test_between_is_zero_for_empty_or_reversed_ranges() -> None:
    a, b = berlin(2026, 3, 10, 10), berlin(2026, 3, 10, 12)
    assert business_minutes_between(a, a, BERLIN_9_17) == 0
    assert business_minutes_between(b, a, BERLIN_9_17) == 0
    assert business_minutes_between(a, b, BERLIN_9_17) == 120
    assert business_time_between(berlin(2026, 3, 10, 10, 0, 0, 1), b, BERLIN_9_17) == timedelta(
        hours=2
    ) - timedelta(microseconds=1)
    assert business_minutes_between(berlin(2026, 3, 10, 10, 0, 0, 1), b, BERLIN_9_17) == 119


def test_long_deadline_spans_years_of_holidays() -> None:
    # 250 working days of 8h minus holidays; round trip proves consistency and the
    # deadline lands inside business hours on a non-holiday.
    start = berlin(2026, 1, 2, 9)
    due = add_business_minutes(start, 480 * 500, BERLIN_9_17)
    assert business_minutes_between(start, due, BERLIN_9_17) == 480 * 500
    local = due.astimezone(BERLIN)
    assert local.time().hour == 17 and local.minute == 0  # 500 whole days end at 17:00
    assert not BERLIN_9_17.is_holiday(local.date()) and local.weekday() < 5


# ------------------------------------------------------------------ schedule API


def test_business_hours_builds_weekly_windows() -> None:
    s = Schedule.business_hours("Europe/Berlin", "mon-wed,fri", "08:30", "24:00")
    assert s.weekly == (((510, 1440),), ((510, 1440),), ((510, 1440),), (), ((510, 1440),), (), ())
    assert Schedule.business_hours("UTC", "fri-mon").weekly == (
        ((540, 1020),),
        (),
        (),
        (),
        ((540, 1020),),
        ((540, 1020),),
        ((540, 1020),),
    )
    assert Schedule.business_hours("UTC", [5, 6]).to_spec() == {
        "sat": ["09:00-17:00"],
        "sun": ["09:00-17:00"],
    }


def test_from_spec_and_to_spec_round_trip() -> None:
    spec = {
        "mon": ["09:00-12:00", "13:00-17:00"],
        "sat": ["10:00-14:00"],
        "sun": ["22:00-24:00"],
    }
    s = Schedule.from_spec("Europe/Berlin", spec, holidays={date(2026, 12, 24)})
    assert s.weekly[0] == ((540, 720), (780, 1020))
    assert s.weekly[6] == ((1320, 1440),)
    assert s.to_spec() == spec
    assert Schedule.from_spec("Europe/Berlin", s.to_spec(), s.holidays) == s
    # unsorted input and full / upper-case names are accepted
    assert Schedule.from_spec("Europe/Berlin", {"Monday": ["13:00-17:00", "09:00-12:00"]}).weekly[
        0
    ] == ((540, 720), (780, 1020))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mon": ["9-17"]}, "mon"),
        ({"mon": ["09:00-17:60"]}, "17:60"),
        ({"tue": ["17:00-09:00"]}, "tue"),
        ({"wed": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"funday": ["09:00-17:00"]}, "funday"),
        ({"mon": ["09:00-17:00"], "monday": ["09:00-10:00"]}, "twice"),
        ({"fri": ["24:30-24:45"]}, "fri"),
        ({}, "no window"),
    ],
)
def test_from_spec_rejects_bad_text_naming_the_day(
    spec: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(InvalidSchedule, match=message):
        Schedule.from_spec("Europe/Berlin", spec)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus", "weekly": (((0, 60),),) * 7}, "unknown timezone"),
        ({"timezone": "UTC", "weekly": (((0, 60),),) * 6}, "7 days"),
        ({"timezone": "UTC", "weekly": (((0, 1441),),) * 7}, "0 <= start < end <= 1440"),
        ({"timezone": "UTC", "weekly": (((60, 60),),) * 7}, "0 <= start < end <= 1440"),
        ({"timezone": "UTC", "weekly": (((120, 180), (0, 60)),) * 7}, "sorted"),
        ({"timezone": "UTC", "weekly": (((0, 120), (60, 180)),) * 7}, "overlap"),
        ({"timezone": "UTC", "weekly": ((),) * 7}, "no window"),
        ({"timezone": "UTC", "weekly": (((0, 60),),) * 7, "country": "XX"}, "unknown holiday"),
        (
            {"timezone": "UTC", "weekly": (((0, 60),),) * 7, "country": "DE", "subdivision": "ZZ"},
            "subdivision",
        ),
        (
            {"timezone": "UTC", "weekly": (((0, 60),),) * 7, "holidays": {datetime.now(UTC)}},
            "not a date",
        ),
    ],
)
def test_invalid_schedules_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSchedule, match=message):
        Schedule(**kwargs)  # type: ignore[arg-type]


def test_invalid_schedule_is_a_value_error() -> None:
    assert issubclass(InvalidSchedule, ValueError)
    with pytest.raises(ValueError, match="overnight"):
        Schedule.business_hours("UTC", start="22:00", end="06:00")
    with pytest.raises(InvalidSchedule, match="unknown day"):
        Schedule.business_hours("UTC", days="mon-fri,xyz")


def test_schedule_is_hashable_picklable_and_normalised() -> None:
    a = Schedule("Europe/Berlin", [[(540, 1020)]] * 5 + [[], []], [date(2026, 12, 24)])  # type: ignore[arg-type]
    b = Schedule.business_hours("Europe/Berlin", holidays=[date(2026, 12, 24)])
    assert a == b
    assert hash(a) == hash(b)
    assert pickle.loads(pickle.dumps(a)) == a  # noqa: S301 - our own bytes
    assert TWENTY_FOUR_SEVEN.is_twenty_four_seven
    assert not BERLIN_9_17.is_twenty_four_seven
    assert every_day("Pacific/Auckland", "00:00-24:00").is_twenty_four_seven


def test_country_holidays_and_subdivisions() -> None:
    de = country_holidays("DE", [2026])
    assert date(2026, 10, 3) in de  # German Unity Day
    assert country_holidays("de", [2026]) is de  # normalised and cached
    by = country_holidays("DE", [2026], subdivision="by")  # Bavaria, case-insensitive
    assert date(2026, 1, 6) in by and date(2026, 1, 6) not in de  # Epiphany
    with pytest.raises(InvalidSchedule, match="unknown holiday country"):
        country_holidays("XX", [2026])
    s = Schedule.business_hours("Europe/Berlin", country="de", subdivision="by")
    assert (s.country, s.subdivision) == ("DE", "BY")
    assert s.is_holiday(date(2031, 1, 6))


def test_materialised_country_holidays_match_lazy_resolution() -> None:
    plain = Schedule.business_hours("Europe/Berlin")
    materialised = plain.with_country_holidays("DE", range(2026, 2029))
    assert materialised.holidays == country_holidays("DE", [2026, 2027, 2028])
    for day in range(0, 3 * 365, 3):
        start = berlin(2026, 1, 1, 8) + timedelta(days=day, minutes=day)
        assert add_business_minutes(start, 480, materialised) == add_business_minutes(
            start, 480, BERLIN_9_17
        )


# ---------------------------------------------------------- brute-force reference

MINUTE_US = 60_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OPEN = object()


def to_us(dt: datetime) -> int:
    return (dt - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class Reference:
    """The rule, applied minute by minute.

    Valid because in the zones/years used every UTC offset and transition is on a
    whole minute and pauses are generated minute-aligned, so membership is
    constant within each UTC minute.
    """

    def __init__(self, schedule: Schedule, pauses: tuple[Pause, ...]) -> None:
        self.tz = ZoneInfo(schedule.timezone)
        self.schedule = schedule
        self.pauses = [
            (to_us(a) // MINUTE_US, None if b is None else to_us(b) // MINUTE_US) for a, b in pauses
        ]
        opens = [a for a, b in self.pauses if b is None]
        self.open_from = min(opens) if opens else None

    def counts(self, minute: int) -> bool:
        local = datetime.fromtimestamp(minute * 60, self.tz)
        if local.date() in self.schedule.holidays:
            return False
        m = local.hour * 60 + local.minute
        if not any(a <= m < b for a, b in self.schedule.weekly[local.weekday()]):
            return False
        return not any(a <= minute and (b is None or minute < b) for a, b in self.pauses)

    def add(self, start: datetime, minutes: int) -> datetime | object:
        if minutes == 0:
            return start.astimezone(UTC)
        need, cur = minutes * MINUTE_US, to_us(start)
        for _ in range(3_000_000):
            m = cur // MINUTE_US
            if self.open_from is not None and m >= self.open_from:
                return OPEN  # nothing ever counts again
            nxt = (m + 1) * MINUTE_US
            if self.counts(m):
                if need <= nxt - cur:
                    return from_us(cur + need)
                need -= nxt - cur
            cur = nxt
        raise AssertionError("reference ran away")

    def between_us(self, start: datetime, end: datetime) -> int:
        s, e = to_us(start), to_us(end)
        total = 0
        m = s // MINUTE_US
        while m * MINUTE_US < e:
            if self.counts(m):
                total += min(e, (m + 1) * MINUTE_US) - max(s, m * MINUTE_US)
            m += 1
        return total

    def next_instant(self, at: datetime) -> datetime:
        cur = to_us(at)
        m = cur // MINUTE_US
        while not self.counts(m):
            m += 1
            cur = m * MINUTE_US
        return from_us(cur)


# ------------------------------------------------------------------- strategies

ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "America/Havana",
    "Asia/Kolkata",
    "Asia/Beirut",
    "Africa/Casablanca",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
]
SPAN_FROM = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_TO = datetime(2028, 1, 1, tzinfo=UTC)


def _transitions(zone: str) -> list[datetime]:
    tz = ZoneInfo(zone)
    out: list[datetime] = []

    def off(t: datetime) -> timedelta | None:
        return t.astimezone(tz).utcoffset()

    t = SPAN_FROM
    while t < SPAN_TO:
        nxt = t + timedelta(hours=6)
        if off(t) != off(nxt):
            lo, hi = t, nxt
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if off(mid) == off(lo):
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t = nxt
    return out


TRANSITIONS = {zone: _transitions(zone) for zone in ZONES}


def test_reference_assumptions_hold_for_the_zones_used() -> None:
    # whole-minute offsets, so the minute-stepping reference is exact
    for zone in ZONES:
        tz = ZoneInfo(zone)
        for t in [SPAN_FROM, *TRANSITIONS[zone]]:
            offset = t.astimezone(tz).utcoffset()
            assert offset is not None and offset.seconds % 60 == 0
    assert len(TRANSITIONS["Europe/Berlin"]) == 6
    assert not TRANSITIONS["Asia/Kolkata"]


boundaries = st.one_of(
    st.sampled_from([0, 60, 120, 150, 180, 240, 1380, 1440]),
    st.integers(0, 1440),
)
day_windows = st.lists(boundaries, max_size=6, unique=True).map(
    lambda bs: tuple(zip(sorted(bs)[::2], sorted(bs)[1::2], strict=False))
)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    zone = draw(st.sampled_from(ZONES))
    weekly = list(draw(st.tuples(*[day_windows] * 7)))
    if not any(weekly):
        weekly[draw(st.integers(0, 6))] = ((draw(st.integers(0, 1380)), 1440),)
    hols = draw(st.frozensets(st.dates(date(2024, 12, 1), date(2028, 2, 1)), max_size=30))
    return Schedule(zone, tuple(weekly), hols)


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    trans = TRANSITIONS[zone]
    near_transition = draw(st.booleans())
    if trans and near_transition:
        base = draw(st.sampled_from(trans))
        t = base + timedelta(microseconds=draw(st.integers(-3 * 86_400_000_000, 86_400_000_000)))
    else:
        t = (
            SPAN_FROM
            + timedelta(days=30)
            + timedelta(microseconds=draw(st.integers(0, 2 * 365 * 86_400_000_000)))
        )
    if draw(st.booleans()):
        t = t.replace(second=0, microsecond=0)
    # give it to the engine in a random zone to check inputs are instants
    return t.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))


@st.composite
def pause_lists(draw: st.DrawFn, start: datetime, allow_open: bool = True) -> tuple[Pause, ...]:
    base = start.astimezone(UTC).replace(second=0, microsecond=0)
    out: list[Pause] = []
    for _ in range(draw(st.integers(0, 3))):
        a = base + timedelta(minutes=draw(st.integers(-2 * 1440, 10 * 1440)))
        b = a + timedelta(minutes=draw(st.integers(0, 3 * 1440)))
        out.append((a, b))
    if allow_open and draw(st.integers(0, 9)) == 0:
        out.append((base + timedelta(minutes=draw(st.integers(-60, 10 * 1440))), None))
    return tuple(out)


def weekly_capacity(schedule: Schedule) -> int:
    return sum(b - a for day in schedule.weekly for a, b in day)


@st.composite
def scenarios(
    draw: st.DrawFn, allow_open: bool = True
) -> tuple[Schedule, datetime, int, tuple[Pause, ...]]:
    schedule = draw(schedules())
    start = draw(instants(schedule.timezone))
    pauses = draw(pause_lists(start, allow_open))
    minutes = draw(st.integers(0, max(1, min(600, weekly_capacity(schedule)))))
    return schedule, start, minutes, pauses


FAST = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def deadline_or_open(
    schedule: Schedule, start: datetime, minutes: int, pauses: tuple[Pause, ...]
) -> datetime | object:
    try:
        return add_business_minutes(start, minutes, schedule, pauses)
    except OpenPause:
        return OPEN


# ------------------------------------------------------------------- properties


@FAST
@given(scenarios())
def test_agrees_with_minute_by_minute_reference(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]],
) -> None:
    schedule, start, minutes, pauses = scenario
    expected = Reference(schedule, pauses).add(start, minutes)
    assert deadline_or_open(schedule, start, minutes, pauses) == expected


@FAST
@given(scenarios(), st.integers(0, 10 * 1440 * 60))
def test_between_agrees_with_reference(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]], span_s: int
) -> None:
    schedule, start, _, pauses = scenario
    end = start.astimezone(UTC) + timedelta(seconds=span_s)
    got = business_time_between(start, end, schedule, pauses)
    assert got == timedelta(microseconds=Reference(schedule, pauses).between_us(start, end))


@FAST
@given(scenarios(allow_open=False))
def test_next_business_instant_agrees_with_reference(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]],
) -> None:
    schedule, start, _, pauses = scenario
    got = next_business_instant(start, schedule, pauses)
    assert got == Reference(schedule, pauses).next_instant(start)
    assert business_time_between(start, got, schedule, pauses) == timedelta(0)


@FAST
@given(scenarios(allow_open=False), st.integers(0, 600), st.integers(0, 600))
def test_monotone_in_minutes(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]], n1: int, n2: int
) -> None:
    schedule, start, _, pauses = scenario
    n1, n2 = sorted((n1, n2))
    assert add_business_minutes(start, n1, schedule, pauses) <= add_business_minutes(
        start, n2, schedule, pauses
    )


@FAST
@given(scenarios(allow_open=False), st.integers(0, 600), st.integers(0, 600))
def test_additive(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]], a: int, b: int
) -> None:
    """add(add(s, a), b) == add(s, a + b) for ALL a, b >= 0.

    Because add() returns the *earliest* instant at which the count is reached (a
    window's end, not the next opening), no normalisation is needed.  The
    normalised form add(next_business_instant(add(s, a)), b) == add(s, a + b) holds
    only for b > 0: for b == 0 the left side may be the next opening while the
    right side is the previous window's end (see test_window_end_is_not_the_next_opening).
    """
    schedule, start, _, pauses = scenario
    first = add_business_minutes(start, a, schedule, pauses)
    combined = add_business_minutes(start, a + b, schedule, pauses)
    assert add_business_minutes(first, b, schedule, pauses) == combined
    if b > 0:
        resumed = next_business_instant(first, schedule, pauses)
        assert add_business_minutes(resumed, b, schedule, pauses) == combined


@FAST
@given(scenarios(allow_open=False))
def test_never_lands_strictly_outside_a_window(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]],
) -> None:
    schedule, start, minutes, pauses = scenario
    if minutes == 0:
        return
    due = add_business_minutes(start, minutes, schedule, pauses)
    # the microsecond just before the deadline was business time (so `due` is inside
    # a counted interval or exactly at its end), checked by the wall-clock rule
    just_before = to_us(due) - 1
    assert Reference(schedule, pauses).counts(just_before // MINUTE_US)
    assert due > start.astimezone(UTC)


@FAST
@given(scenarios(), st.integers(0, 10 * 1440 * 60))
def test_between_round_trips_with_add(
    scenario: tuple[Schedule, datetime, int, tuple[Pause, ...]], span_s: int
) -> None:
    schedule, start, minutes, pauses = scenario
    due = deadline_or_open(schedule, start, minutes, pauses)
    if isinstance(due, datetime):
        # exact for ANY start, inside a window or not
        assert business_minutes_between(start, due, schedule, pauses) == minutes
        assert business_time_between(start, due, schedule, pauses) == timedelta(minutes=minutes)
    # Galois connection: m = between(s, e) is the largest m with add(s, m) <= e
    end = start.astimezone(UTC) + timedelta(seconds=span_s)
    m = business_minutes_between(start, end, schedule, pauses)
    assert add_business_minutes(start, m, schedule, pauses) <= end
    after = deadline_or_open(schedule, start, m + 1, pauses)
    assert after is OPEN or (isinstance(after, datetime) and after > end)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.sampled_from(ZONES),
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2040, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from([ZoneInfo(z) for z in ZONES]),
    ),
    st.integers(0, 10**6),
)
def test_twenty_four_seven_is_plain_utc_addition(zone: str, start: datetime, n: int) -> None:
    expected = start.astimezone(UTC) + timedelta(minutes=n)
    assert add_business_minutes(start, n, None) == expected
    assert add_business_minutes(start, n, TWENTY_FOUR_SEVEN) == expected
    assert add_business_minutes(start, n, every_day(zone, "00:00-24:00")) == expected
    if n <= 20_000:  # also through the interval walk (a holiday far away disables the shortcut)
        walked = every_day(zone, "00:00-24:00", holidays={date(1990, 1, 1)})
        assert add_business_minutes(start, n, walked) == expected
