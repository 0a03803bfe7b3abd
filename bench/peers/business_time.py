"""Business-time deadlines: ours against ``businesstimedelta`` and pandas ``CustomBusinessHour``.

One workload both peers can express: Mon-Fri 09:00-17:00 in Europe/Berlin, German
public holidays, starts on whole minutes spread over 2026-2027.  Each library
computes ``start + target`` for the same starts; we count computations per second
(one core, warm) and how many answers are identical to ours.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from itertools import repeat

import holidays

from sla.calendar import Schedule, add_business_minutes, business_time_between

TIMEZONE = "Europe/Berlin"
SCHEDULE = Schedule.business_hours(TIMEZONE, "mon-fri", "09:00", "17:00", country="DE")


@dataclass(frozen=True)
class Figure:
    name: str
    rate: float  # computations per second
    computed: int
    agree: int | None  # answers identical to ours (None for ours)
    # answers with no business time between them and ours (e.g. Thu 17:00 vs Fri 09:00)
    equivalent: int | None = None


def starts(n: int, seed: int = 1) -> list[datetime]:
    rng = random.Random(seed)
    lo = datetime(2026, 1, 1, tzinfo=UTC)
    return [lo + timedelta(minutes=rng.randrange(2 * 365 * 1440)) for _ in range(n)]


def _rate(
    fn: Callable[[datetime], datetime], inputs: Sequence[datetime]
) -> tuple[float, list[datetime]]:
    for s in inputs[: min(200, len(inputs))]:  # warm caches (every library has some)
        fn(s)
    t0 = time.perf_counter()
    out = [fn(s) for s in inputs]
    return len(inputs) / (time.perf_counter() - t0), out


def _our_rate(minutes: int, inputs: Sequence[datetime]) -> tuple[float, list[datetime]]:
    """Ours as a caller computing many deadlines would: ``map`` straight over the engine."""
    list(map(add_business_minutes, inputs[:200], repeat(minutes), repeat(SCHEDULE)))
    t0 = time.perf_counter()
    out = list(map(add_business_minutes, inputs, repeat(minutes), repeat(SCHEDULE)))
    return len(inputs) / (time.perf_counter() - t0), out


def businesstimedelta_peer(minutes: int) -> Callable[[datetime], datetime]:
    import businesstimedelta
    import pytz

    tz = pytz.timezone(TIMEZONE)
    workday = businesstimedelta.WorkDayRule(
        start_time=clock_time(9), end_time=clock_time(17), working_days=[0, 1, 2, 3, 4], tz=tz
    )
    # The holidays package's lazily expanding calendar (the library accepts one).
    hols = businesstimedelta.HolidayRule(holidays.country_holidays("DE"), tz=tz)
    delta = businesstimedelta.BusinessTimeDelta(
        businesstimedelta.Rules([workday, hols]), hours=minutes // 60, seconds=minutes % 60 * 60
    )
    return lambda s: (s + delta).astimezone(UTC)


def pandas_peer(minutes: int) -> Callable[[datetime], datetime]:
    import pandas as pd

    if minutes % 60:
        raise ValueError("CustomBusinessHour counts whole hours")
    days = holidays.country_holidays("DE", years=range(2025, 2031))
    offset = pd.offsets.CustomBusinessHour(
        n=minutes // 60,
        start="09:00",
        end="17:00",
        weekmask="Mon Tue Wed Thu Fri",
        holidays=sorted(d for d in days if isinstance(d, date)),
    )

    def add(s: datetime) -> datetime:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pd.Timestamp(s).tz_convert(TIMEZONE) + offset
        return result.tz_convert("UTC").to_pydatetime()

    return add


def compare(minutes: int, n_ours: int, n_peers: int) -> list[Figure]:
    """Our rate on ``n_ours`` starts; each peer on the first ``n_peers`` of them."""
    inputs = starts(n_ours)
    rate, answers = _our_rate(minutes, inputs)
    figures = [Figure("sla.calendar (ours)", rate, len(inputs), None)]
    peers: list[tuple[str, Callable[[int], Callable[[datetime], datetime]]]] = [
        ("businesstimedelta 1.0", businesstimedelta_peer),
        ("pandas CustomBusinessHour", pandas_peer),
    ]
    for name, make in peers:
        try:
            fn = make(minutes)
        except ValueError:
            continue
        few = inputs[:n_peers]
        peer_rate, peer_answers = _rate(fn, few)
        pairs = list(zip(answers, peer_answers, strict=False))
        agree = sum(a == b for a, b in pairs)
        equivalent = sum(
            a == b or business_time_between(min(a, b), max(a, b), SCHEDULE) == timedelta(0)
            for a, b in pairs
        )
        figures.append(Figure(name, peer_rate, len(few), agree, equivalent))
    return figures


if __name__ == "__main__":
    for f in compare(480, 200_000, 2_000):
        print(f)
