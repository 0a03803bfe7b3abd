"""Throughput of the business-time engine (``sla.calendar``).

Run:  uv run python -m bench.bench_calendar [-n 200000]

Prints deadline computations per second (one core, warm caches unless stated)
for the cases the SLA service cares about, plus a naive minute-by-minute
baseline on the same inputs and the speed-up ratio.  Target (issue 15): >= 1,000,000/s
for 8 business hours on Mon-Fri 09-17 Europe/Berlin with German holidays; ``make bench``
puts the same workload next to businesstimedelta and pandas.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sla.calendar import (
    Pause,
    Schedule,
    add_business_minutes,
    business_minutes_between,
)

TARGET = 480  # 8 business hours
GOAL = 1_000_000


def random_starts(rng: random.Random, n: int) -> list[datetime]:
    """Uniform random instants (with seconds and microseconds) over 2026-2027."""
    lo = datetime(2026, 1, 1, tzinfo=UTC)
    span_us = 2 * 365 * 86_400 * 1_000_000
    return [lo + timedelta(microseconds=rng.randrange(span_us)) for _ in range(n)]


def rate(fn: Callable[[datetime], object], starts: Sequence[datetime]) -> float:
    t0 = time.perf_counter()
    for s in starts:
        fn(s)
    return len(starts) / (time.perf_counter() - t0)


def naive_add(start: datetime, minutes: int, schedule: Schedule) -> datetime:
    """Minute-stepping reference: check every minute's wall clock (whole-minute starts)."""
    tz = ZoneInfo(schedule.timezone)
    t = start.astimezone(UTC).replace(second=0, microsecond=0)
    left = minutes
    step = timedelta(minutes=1)
    while left:
        local = t.astimezone(tz)
        minute = local.hour * 60 + local.minute
        day = local.date()
        if not schedule.is_holiday(day) and any(
            a <= minute < b for a, b in schedule.weekly[day.weekday()]
        ):
            left -= 1
        t += step
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200_000, help="computations per case")
    parser.add_argument("--naive", type=int, default=300, help="computations for the baseline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    starts = random_starts(rng, args.n)

    berlin = Schedule.business_hours("Europe/Berlin", "mon-fri", "09:00", "17:00", country="DE")
    split = Schedule.from_spec(
        "America/New_York",
        {
            "mon": ["08:00-12:00", "13:00-17:00"],
            "tue": ["08:00-12:00", "13:00-17:00"],
            "wed": ["08:00-12:00", "13:00-17:00"],
            "thu": ["08:00-12:00", "13:00-17:00"],
            "fri": ["08:00-12:00", "13:00-17:00"],
            "sat": ["10:00-14:00"],
        },
        country="US",
    )
    # a fresh, equal-in-shape schedule (distinct custom holiday) for a cold-cache figure
    cold = Schedule.business_hours(
        "Europe/Berlin", "mon-fri", "09:00", "17:00", holidays={date(1999, 1, 1)}, country="DE"
    )

    results: list[tuple[str, float]] = []

    def case(name: str, fn: Callable[[datetime], object], warm: bool = True) -> float:
        if warm:
            for s in starts[: min(len(starts), 20_000)]:
                fn(s)
        r = rate(fn, starts)
        results.append((name, r))
        print(f"{name:<58} {r:>12,.0f} /s")
        return r

    print(f"{args.n:,} random starts over 2026-2027, target {TARGET} business minutes\n")
    case("24x7 (schedule=None)", lambda s: add_business_minutes(s, TARGET, None))
    case(
        "8h Mon-Fri 09-17 Europe/Berlin + DE holidays (cold cache)",
        lambda s: add_business_minutes(s, TARGET, cold),
        warm=False,
    )
    main_rate = case(
        "8h Mon-Fri 09-17 Europe/Berlin + DE holidays",
        lambda s: add_business_minutes(s, TARGET, berlin),
    )
    case(
        "8h split windows America/New_York + Sat + US holidays",
        lambda s: add_business_minutes(s, TARGET, split),
    )
    hour = timedelta(hours=1)

    def two_pauses(s: datetime) -> Sequence[Pause]:
        return ((s + hour, s + 3 * hour), (s + 24 * hour, s + 26 * hour))

    case(
        "8h Europe/Berlin + DE holidays, 2 pauses",
        lambda s: add_business_minutes(s, TARGET, berlin, two_pauses(s)),
    )
    case(
        "business_minutes_between(s, s+3 days), Berlin",
        lambda s: business_minutes_between(s, s + 72 * hour, berlin),
    )

    naive_starts = [s.replace(second=0, microsecond=0) for s in starts[: args.naive]]
    for s in naive_starts[:20]:  # sanity: the engine agrees with the baseline
        assert naive_add(s, TARGET, berlin) == add_business_minutes(s, TARGET, berlin), s
    naive_rate = rate(lambda s: naive_add(s, TARGET, berlin), naive_starts)
    fast_rate = rate(lambda s: add_business_minutes(s, TARGET, berlin), naive_starts)
    print(f"{'naive minute-by-minute baseline (Berlin 8h)':<58} {naive_rate:>12,.0f} /s")
    print(f"{'engine on the same starts':<58} {fast_rate:>12,.0f} /s")
    print(f"\nspeed-up vs naive: {fast_rate / naive_rate:,.0f}x")
    verdict = "OK" if main_rate >= GOAL else "BELOW TARGET"
    print(f"8h-with-holidays: {main_rate:,.0f}/s vs target {GOAL:,}/s -> {verdict}")


if __name__ == "__main__":
    main()
