"""Business-time engine: SLA deadlines in a customer's working hours.

``due_at = add_business_minutes(opened_at, target_minutes, schedule, pauses)``

Semantics (the contract every function in this module follows)
----------------------------------------------------------------
*Business time* is a set of real instants.  An instant counts when

1. the wall clock in ``schedule.timezone`` at that instant shows a time that
   lies inside one of the windows ``[start, end)`` of that wall-clock date's
   weekday (``end == 1440`` means "until the next midnight"),
2. that wall-clock date is not a holiday (``schedule.holidays`` or, when
   ``schedule.country`` is set, the country's public holidays for that year,
   resolved lazily and cached per year), and
3. it is not inside a pause ``[from, to)``.

Only real elapsed time counts, so DST is exact: a 00:00-06:00 window holds 5 h on
the spring-forward day and 7 h on the fall-back day of Europe/Berlin, a
02:00-03:00 window on the spring-forward day holds nothing, and the windows
``mon 22:00-24:00`` + ``tue 00:00-06:00`` chain with no gap.  For window
boundaries that are *not* inside a DST gap or overlap this is exactly "map the
local start/end to instants with zoneinfo (fold=0) and count ``[start, end)``".
It differs only when a boundary itself falls in a gap or in the repeated hour:

* a boundary inside a spring-forward gap maps to the transition instant
  (a window "until 02:30" closes when the clock jumps from 02:00 to 03:00,
  not at 03:30 as fold=0 would give);
* a window whose boundary is inside the repeated fall-back hour counts both
  passes of the clock through that window ("00:00-02:30" on a 03:00->02:00
  night counts 00:00-02:30 CEST and 02:00-02:30 CET).

This is the "look at the clock on the wall" rule; it needs no tie-breaking and
the brute-force reference in the tests is literally that rule.

Time resolution is the microsecond (inputs keep their seconds and microseconds;
nothing is rounded to the minute).  A business minute is 60 s of business time.

``add_business_minutes(start, n)`` returns the *earliest* instant ``x >= start``
such that the business time in ``[start, x)`` is ``n`` minutes, i.e. the instant
the n-th business minute ends.  Consequences:

* ``n == 0`` returns ``start`` (as the same instant, in UTC) even when ``start``
  is outside business hours: nothing has to elapse.  Use
  :func:`next_business_instant` to get "when does the clock start".
* for ``n > 0`` the result is inside a window or exactly at a window's end
  (never strictly outside one); it is never moved to the next opening.
* it is exactly additive: ``add(add(s, a), b) == add(s, a + b)`` for all
  ``a, b >= 0``, and ``business_minutes_between(s, add(s, n)) == n`` for *any*
  ``s``.

Open pauses (``to is None``) mean "paused until further notice".  If the
deadline is reached before an open pause begins it is returned normally;
otherwise the deadline does not exist and :class:`OpenPause` is raised (it
carries the pause start and the business time still owed).

Performance: every schedule owns (shared between equal schedules) a cache of
business intervals per UTC day as integer epoch-microsecond pairs, and, once it
is asked often, a *business clock* over a run of those days (grown on demand):
the intervals as UTC datetimes with the business time before each.  Without pauses,
a UTC start is answered by two binary searches and two datetime additions; the
day-by-day walk answers everything else (pauses, other input zones, far-off
years, schedules with a year or more without business time).  24x7 without
pauses is a single addition.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as _holidays_pkg

__all__ = [
    "DAY_NAMES",
    "TWENTY_FOUR_SEVEN",
    "InvalidSchedule",
    "OpenPause",
    "Pause",
    "Schedule",
    "Window",
    "add_business_minutes",
    "business_minutes_between",
    "business_time_between",
    "country_holidays",
    "next_business_instant",
]

Window = tuple[int, int]
"""``(start_minute, end_minute)`` with ``0 <= start < end <= 1440``."""

Pause = tuple[datetime, datetime | None]
"""``[from, to)``; ``to=None`` means the pause is still open."""

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES: Final = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_DAY_INDEX: Final[dict[str, int]] = {
    **{name: i for i, name in enumerate(DAY_NAMES)},
    **{name: i for i, name in enumerate(_FULL_DAY_NAMES)},
}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_US: Final = 1_000_000
_MINUTE_US: Final = 60 * _US
_DAY_S: Final = 86_400
_DAY_US: Final = _DAY_S * _US
# No UTC offset (not even historical local mean time) exceeds 16 h; 18 h is a safe
# bound for "which UTC instants can show a given wall-clock date".
_OFFSET_MARGIN_S: Final = 18 * 3600
# UTC-day indexes we can compute (local dates around them must be valid `date`s).
_MIN_UTC_DAY: Final = date(1, 1, 3).toordinal() - _EPOCH_ORDINAL
_MAX_UTC_DAY: Final = date(9999, 12, 29).toordinal() - _EPOCH_ORDINAL
# A walk that sees no business time for this many consecutive days gives up.
_MAX_EMPTY_DAYS: Final = 3660
_OPEN: Final = 1 << 62  # end of an open pause, µs; beyond any datetime
_CACHE_LIMIT: Final = 50_000  # cached days per schedule before the cache is reset
# A schedule gets its business clock once it has answered this many deadlines by the
# walk: building one costs what a few thousand warm answers save, so only schedules that
# are asked often get one (a customer's one-off calendar never pays for it).
_CLOCK_AFTER: Final = 64
# The business clock first covers 64 days around the instant that made it worth
# building and doubles towards whatever is asked beyond; at most ~55 years.
_CLOCK_FIRST_DAYS: Final = 64
_CLOCK_MAX_DAYS: Final = 20_000
# A clock that meets this many consecutive days without business time gives the
# question to the walk, which owns the "no business time for years" error.
_CLOCK_MAX_EMPTY_DAYS: Final = 366


class InvalidSchedule(ValueError):
    """A schedule (or its textual spec, timezone or holiday country) is invalid."""


class OpenPause(ValueError):
    """The deadline is unbounded: an open pause began before it was reached.

    ``paused_at`` is the (UTC) start of the open pause and ``remaining`` the
    business time still owed at that moment.
    """

    def __init__(self, paused_at: datetime, remaining: timedelta) -> None:
        super().__init__(paused_at, remaining)  # args kept as-is so it pickles
        self.paused_at = paused_at
        self.remaining = remaining

    def __str__(self) -> str:
        return (
            f"deadline is unbounded: paused since {self.paused_at.isoformat()} (open pause) "
            f"with {self.remaining} of business time remaining"
        )


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True, slots=True)
class Schedule:
    """Weekly working windows in an IANA timezone, minus holidays.

    ``weekly[d]`` holds the windows of weekday ``d`` (Monday = 0) as sorted,
    non-overlapping ``(start_minute, end_minute)`` pairs (touching windows are
    allowed and behave as one).  ``holidays`` are local dates (in ``timezone``)
    without any window.  ``country``/``subdivision`` add the public holidays of
    that country (``holidays`` package), resolved lazily for whatever year a
    computation reaches, so a deadline years ahead still skips holidays (the
    package covers roughly up to 2100; later years have no country holidays).

    Lists are accepted and normalised to tuples/frozensets, so a schedule is
    always hashable; equal schedules share their interval cache.
    """

    timezone: str
    weekly: tuple[tuple[Window, ...], ...]
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None

    def __post_init__(self) -> None:
        _zone(self.timezone)
        weekly = _normalise_weekly(self.weekly)
        hols = _normalise_holidays(self.holidays)
        country, subdivision = _normalise_country(self.country, self.subdivision)
        object.__setattr__(self, "weekly", weekly)
        object.__setattr__(self, "holidays", hols)
        object.__setattr__(self, "country", country)
        object.__setattr__(self, "subdivision", subdivision)
        _engine_of(self)  # build (or share) the interval cache now

    # -- constructors -------------------------------------------------------------

    @classmethod
    def business_hours(
        cls,
        timezone: str,
        days: str | Iterable[int] = "mon-fri",
        start: str = "09:00",
        end: str = "17:00",
        holidays: Iterable[date] = (),
        *,
        country: str | None = None,
        subdivision: str | None = None,
    ) -> Schedule:
        """One window ``start-end`` on each of ``days``.

        ``days`` is text like ``"mon-fri"``, ``"mon-wed,fri"``, ``"fri-mon"``
        (ranges wrap) or ``"sat,sun"``, or weekday numbers (Monday = 0).
        ``end`` may be ``"24:00"``.  Overnight shifts are two windows: use
        :meth:`from_spec`.
        """
        day_set = _parse_days(days)
        window = _parse_window(f"{start}-{end}", where="business_hours")
        weekly = tuple((window,) if d in day_set else () for d in range(7))
        return cls(timezone, weekly, frozenset(holidays), country, subdivision)

    @classmethod
    def from_spec(
        cls,
        timezone: str,
        spec: Mapping[str, Sequence[str] | str],
        holidays: Iterable[date] = (),
        *,
        country: str | None = None,
        subdivision: str | None = None,
    ) -> Schedule:
        """Build from ``{"mon": ["09:00-12:00", "13:00-17:00"], "sun": ["22:00-24:00"]}``.

        Keys are day names (``mon``/``monday``, case-insensitive); missing days
        are closed.  A single string value is one window.  Errors name the day
        and the offending value.
        """
        if not isinstance(spec, Mapping):
            raise InvalidSchedule(f"spec must be a mapping of day -> windows, got {spec!r}")
        days: list[list[Window]] = [[] for _ in range(7)]
        seen: dict[int, str] = {}
        for key, value in spec.items():
            idx = _DAY_INDEX.get(key.strip().lower()) if isinstance(key, str) else None
            if idx is None:
                raise InvalidSchedule(
                    f"unknown day {key!r} in spec (use one of {', '.join(DAY_NAMES)})"
                )
            if idx in seen:
                raise InvalidSchedule(f"day {key!r} given twice (also as {seen[idx]!r})")
            seen[idx] = key
            texts = [value] if isinstance(value, str) else value
            if not isinstance(texts, Sequence):
                raise InvalidSchedule(f"{key}: windows must be a list of 'HH:MM-HH:MM' strings")
            windows = sorted(_parse_window(text, where=key) for text in texts)
            for (s1, e1), (s2, e2) in pairwise(windows):
                if s2 < e1:
                    raise InvalidSchedule(
                        f"{key}: windows {_fmt_window((s1, e1))} and "
                        f"{_fmt_window((s2, e2))} overlap"
                    )
            days[idx] = windows
        weekly = tuple(tuple(w) for w in days)
        return cls(timezone, weekly, frozenset(holidays), country, subdivision)

    def to_spec(self) -> dict[str, list[str]]:
        """Inverse of :meth:`from_spec` (closed days are omitted)."""
        return {
            DAY_NAMES[d]: [_fmt_window(w) for w in windows]
            for d, windows in enumerate(self.weekly)
            if windows
        }

    def with_country_holidays(
        self, country: str, years: Iterable[int], subdivision: str | None = None
    ) -> Schedule:
        """A copy whose ``holidays`` also contain ``country``'s holidays for ``years``.

        Prefer ``Schedule(..., country="DE")``, which resolves any year lazily;
        this materialises a fixed set (e.g. to store or display it).
        """
        extra = country_holidays(country, years, subdivision)
        return Schedule(
            self.timezone,
            self.weekly,
            self.holidays | extra,
            self.country,
            self.subdivision,
        )

    # -- queries -----------------------------------------------------------------

    @property
    def is_twenty_four_seven(self) -> bool:
        """Every instant counts (all days 00:00-24:00, no holidays)."""
        return _engine_of(self).always

    def is_holiday(self, day: date) -> bool:
        """Whether the local ``day`` is a holiday of this schedule."""
        return _engine_of(self).is_holiday(day)


# ----------------------------------------------------------------- validation/parsing


def _zone(key: object) -> ZoneInfo:
    if not isinstance(key, str) or not key:
        raise InvalidSchedule(f"timezone must be an IANA name such as 'Europe/Berlin', got {key!r}")
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidSchedule(f"unknown timezone {key!r}") from exc


def _normalise_weekly(weekly: object) -> tuple[tuple[Window, ...], ...]:
    if isinstance(weekly, str | bytes) or not isinstance(weekly, Sequence):
        raise InvalidSchedule("weekly must be a sequence of 7 days (Monday first)")
    if len(weekly) != 7:
        raise InvalidSchedule(f"weekly must have 7 days (Monday first), got {len(weekly)}")
    out: list[tuple[Window, ...]] = []
    for d, day in enumerate(weekly):
        name = DAY_NAMES[d]
        if isinstance(day, str | bytes) or not isinstance(day, Sequence):
            raise InvalidSchedule(f"{name}: windows must be a sequence of (start, end) pairs")
        windows: list[Window] = []
        for w in day:
            if (
                isinstance(w, str | bytes)
                or not isinstance(w, Sequence)
                or len(w) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in w)
            ):
                raise InvalidSchedule(f"{name}: window {w!r} is not a (start, end) minute pair")
            s, e = int(w[0]), int(w[1])
            if not 0 <= s < e <= 1440:
                raise InvalidSchedule(
                    f"{name}: window {w!r} must satisfy 0 <= start < end <= 1440 (minutes)"
                )
            if windows and s < windows[-1][1]:
                prev = windows[-1]
                if s < prev[0]:
                    raise InvalidSchedule(f"{name}: windows must be sorted ({prev!r} before {w!r})")
                raise InvalidSchedule(f"{name}: windows {prev!r} and {w!r} overlap")
            windows.append((s, e))
        out.append(tuple(windows))
    if not any(out):
        raise InvalidSchedule("schedule has no window in the whole week")
    return tuple(out)


def _normalise_holidays(hols: object) -> frozenset[date]:
    if isinstance(hols, str | bytes) or not isinstance(hols, Iterable):
        raise InvalidSchedule(f"holidays must be a set of dates, got {hols!r}")
    out = frozenset(hols)
    for d in out:
        if not isinstance(d, date) or isinstance(d, datetime):
            raise InvalidSchedule(f"holiday {d!r} is not a date")
    return out


def _normalise_country(country: object, subdivision: object) -> tuple[str | None, str | None]:
    if country is None:
        if subdivision is not None:
            raise InvalidSchedule("subdivision given without country")
        return None, None
    if not isinstance(country, str):
        raise InvalidSchedule(f"country must be an ISO code string, got {country!r}")
    if subdivision is not None and not isinstance(subdivision, str):
        raise InvalidSchedule(f"subdivision must be a string, got {subdivision!r}")
    return _resolve_country(country.strip().upper(), subdivision)


@lru_cache(maxsize=256)
def _resolve_country(country: str, subdivision: str | None) -> tuple[str, str | None]:
    """Validate against the ``holidays`` package; fix the subdivision's case."""
    try:
        probe = _holidays_pkg.country_holidays(country, years=[])
    except NotImplementedError as exc:
        raise InvalidSchedule(f"unknown holiday country {country!r}") from exc
    if subdivision is None:
        return country, None
    known: dict[str, str] = {s.lower(): s for s in probe.subdivisions}
    aliases = getattr(probe, "subdivisions_aliases", {}) or {}
    for alias, code in aliases.items():
        known.setdefault(str(alias).lower(), str(code))
    code = known.get(subdivision.strip().lower())
    if code is None:
        raise InvalidSchedule(
            f"unknown subdivision {subdivision!r} for {country} "
            f"(known: {', '.join(probe.subdivisions)})"
        )
    return country, code


_TIME_RE: Final = re.compile(r"(\d{1,2}):(\d{2})")


def _parse_time(text: str, where: str, whole: str) -> int:
    m = _TIME_RE.fullmatch(text.strip())
    if m is None:
        raise InvalidSchedule(f"{where}: {whole!r} is not 'HH:MM-HH:MM' (bad time {text!r})")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and mi != 0):
        raise InvalidSchedule(f"{where}: {whole!r} has an out-of-range time {text!r}")
    return h * 60 + mi


def _parse_window(text: object, where: str) -> Window:
    if not isinstance(text, str) or text.count("-") != 1:
        raise InvalidSchedule(f"{where}: {text!r} is not 'HH:MM-HH:MM'")
    a, b = text.split("-")
    s, e = _parse_time(a, where, text), _parse_time(b, where, text)
    if s >= e:
        raise InvalidSchedule(
            f"{where}: window {text!r} must end after it starts "
            "(an overnight shift is two windows, e.g. mon 22:00-24:00 and tue 00:00-06:00)"
        )
    return s, e


def _fmt_minute(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _fmt_window(w: Window) -> str:
    return f"{_fmt_minute(w[0])}-{_fmt_minute(w[1])}"


def _parse_days(days: str | Iterable[int]) -> frozenset[int]:
    if isinstance(days, str):
        out: set[int] = set()
        for part in days.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if "-" in part:
                a, _, b = part.partition("-")
                i, j = _DAY_INDEX.get(a.strip()), _DAY_INDEX.get(b.strip())
                if i is None or j is None:
                    raise InvalidSchedule(f"days: bad range {part!r} in {days!r}")
                while True:  # ranges wrap: "fri-mon" is fri, sat, sun, mon
                    out.add(i)
                    if i == j:
                        break
                    i = (i + 1) % 7
            else:
                idx = _DAY_INDEX.get(part)
                if idx is None:
                    raise InvalidSchedule(f"days: unknown day {part!r} in {days!r}")
                out.add(idx)
    else:
        out = set()
        for d in days:
            if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 6:
                raise InvalidSchedule(f"days: {d!r} is not a weekday number 0..6 (Monday=0)")
            out.add(d)
    if not out:
        raise InvalidSchedule(f"days: {days!r} selects no day")
    return frozenset(out)


# ------------------------------------------------------------------------- holidays


@lru_cache(maxsize=4096)
def _country_year(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(_holidays_pkg.country_holidays(country, subdiv=subdivision, years=[year]))


def country_holidays(
    country: str, years: Iterable[int], subdivision: str | None = None
) -> frozenset[date]:
    """Public holidays of ``country`` (ISO code, e.g. ``"DE"``) for ``years``.

    Uses the ``holidays`` package; cached per (country, subdivision, year).
    Unknown country or subdivision -> :class:`InvalidSchedule`.
    """
    code, subdiv = _normalise_country(country, subdivision)
    assert code is not None
    wanted = set(years)
    for year in wanted:
        if not isinstance(year, int) or isinstance(year, bool) or not 1 <= year <= 9999:
            raise InvalidSchedule(f"year {year!r} out of range")
    return _country_years(code, subdiv, tuple(sorted(wanted)))


@lru_cache(maxsize=512)
def _country_years(
    country: str, subdivision: str | None, years: tuple[int, ...]
) -> frozenset[date]:
    out: set[date] = set()
    for year in years:
        out |= _country_year(country, subdivision, year)
    return frozenset(out)


# ------------------------------------------------------------------------- timezones


class _Offsets:
    """UTC offsets of one zone, probed hourly and refined to the second at changes.

    Transitions are found by sampling the offset every hour and bisecting where it
    changes; tzdata has no two transitions less than an hour apart.
    """

    __slots__ = ("_hour", "_trans", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._hour: dict[int, int] = {}
        self._trans: dict[int, int] = {}

    def at(self, u: int) -> int:
        off = datetime.fromtimestamp(u, self.tz).utcoffset()
        assert off is not None
        return off.days * _DAY_S + off.seconds

    def _at_hour(self, h: int) -> int:
        off = self._hour.get(h)
        if off is None:
            off = self._hour[h] = self.at(h * 3600)
        return off

    def _transition(self, h: int, before: int) -> int:
        """First second in ``(h*3600, (h+1)*3600]`` whose offset differs from ``before``."""
        t = self._trans.get(h)
        if t is None:
            lo, hi = h * 3600, (h + 1) * 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.at(mid) == before:
                    lo = mid
                else:
                    hi = mid
            t = self._trans[h] = hi
        return t

    def segments(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """``(from, to, offset)`` pieces of constant offset covering ``[lo, hi)``.

        ``lo`` and ``hi`` are multiples of 3600 (epoch seconds).
        """
        h, h_end = lo // 3600, hi // 3600
        off = self._at_hour(h)
        start = lo
        out: list[tuple[int, int, int]] = []
        while h < h_end:
            nxt = self._at_hour(h + 1)
            if nxt != off:
                t = self._transition(h, off)
                out.append((start, t, off))
                start, off = t, nxt
            h += 1
        out.append((start, hi, off))
        return out


@lru_cache(maxsize=512)
def _offsets_for(key: str) -> _Offsets:
    return _Offsets(ZoneInfo(key))


# --------------------------------------------------------------------- business clock


class _Clock:
    """The business time of one schedule over the UTC days ``[first_day, end_day)``.

    ``starts[i]``/``ends[i]`` is the i-th business interval (aware UTC datetimes;
    sorted, disjoint, never touching), ``done[i]`` the business time in
    ``[lo, ends[i])``, and ``shift[i] = ends[i] - done[i]``.  The clock reads
    ``x - shift[i]`` inside interval ``i`` and stands still at ``done[i]`` in the
    gap after it, so adding ``need`` at ``t`` is: read the clock at ``t``, add
    ``need``, find the first interval whose ``done`` reaches the sum, and map the
    sum back with that interval's ``shift``.  Valid for instants in ``[lo, hi]``.
    """

    __slots__ = ("done", "end_day", "ends", "first_day", "hi", "lo", "shift", "starts")

    def __init__(self, first_day: int, end_day: int, intervals: Sequence[tuple[int, int]]) -> None:
        self.first_day = first_day
        self.end_day = end_day
        self.lo = _from_us(first_day * _DAY_US)
        self.hi = _from_us(end_day * _DAY_US)
        self.starts = [_from_us(a) for a, _ in intervals]
        self.ends = [_from_us(b) for _, b in intervals]
        self.done: list[timedelta] = []
        self.shift: list[datetime] = []
        total = timedelta(0)
        for a, b in zip(self.starts, self.ends, strict=True):
            total += b - a
            self.done.append(total)
            self.shift.append(b - total)

    def reading(self, t: datetime) -> timedelta:
        """Business time in ``[lo, t)``; ``lo <= t <= hi``."""
        i = bisect_right(self.starts, t) - 1
        if i < 0:
            return timedelta(0)
        if t < self.ends[i]:
            return t - self.shift[i]
        return self.done[i]


def _build_clock(engine: _Engine, first_day: int, end_day: int) -> _Clock | None:
    """The clock over ``[first_day, end_day)``; None if it meets a long run without business."""
    intervals: list[tuple[int, int]] = []
    empty = 0
    for k in range(first_day, end_day):
        day = engine.utc_days.get(k)
        if day is None:
            day = engine.utc_day(k)
        if not day:
            empty += 1
            if empty >= _CLOCK_MAX_EMPTY_DAYS:
                return None
            continue
        empty = 0
        for a, b in day:
            if intervals and intervals[-1][1] == a:  # e.g. a window across UTC midnight
                intervals[-1] = (intervals[-1][0], b)
            else:
                intervals.append((a, b))
    return _Clock(first_day, end_day, intervals)


# ---------------------------------------------------------------------------- engine


class _Engine:
    """Per-schedule interval cache (shared by equal schedules)."""

    __slots__ = (
        "always",
        "asks",
        "clock",
        "clock_usable",
        "country",
        "custom",
        "offsets",
        "subdivision",
        "utc_days",
        "weekly_s",
    )

    def __init__(
        self,
        tz_key: str,
        weekly: tuple[tuple[Window, ...], ...],
        custom: frozenset[date],
        country: str | None,
        subdivision: str | None,
    ) -> None:
        self.offsets = _offsets_for(tz_key)
        # windows in seconds since local midnight, touching windows merged
        merged: list[tuple[tuple[int, int], ...]] = []
        for windows in weekly:
            day: list[tuple[int, int]] = []
            for s, e in windows:
                if day and day[-1][1] == s * 60:
                    day[-1] = (day[-1][0], e * 60)
                else:
                    day.append((s * 60, e * 60))
            merged.append(tuple(day))
        self.weekly_s = tuple(merged)
        self.custom = custom
        self.country = country
        self.subdivision = subdivision
        self.always = (
            all(day == ((0, _DAY_S),) for day in self.weekly_s) and not custom and country is None
        )
        # UTC day index -> business intervals in that UTC day, epoch µs, sorted, merged
        self.utc_days: dict[int, tuple[tuple[int, int], ...]] = {}
        # Built on the first question; replaced (never mutated) when it grows.
        self.clock: _Clock | None = None
        self.clock_usable = True
        self.asks = 0  # questions the walk answered before the clock was built

    def is_holiday(self, day: date) -> bool:
        if day in self.custom:
            return True
        if self.country is not None:
            return day in _country_year(self.country, self.subdivision, day.year)
        return False

    def _local_day(self, ordinal: int) -> list[tuple[int, int]]:
        """Instants (epoch s) whose wall-clock date is ``ordinal`` and time in a window."""
        windows = self.weekly_s[(ordinal - 1) % 7]
        if not windows or self.is_holiday(date.fromordinal(ordinal)):
            return []
        w0 = (ordinal - _EPOCH_ORDINAL) * _DAY_S  # the wall-clock midnight, as if UTC
        segs = self.offsets.segments(w0 - _OFFSET_MARGIN_S, w0 + _DAY_S + _OFFSET_MARGIN_S)
        out: list[tuple[int, int]] = []
        for s, e in windows:
            for u0, u1, off in segs:
                # wall = u + off; want w0 + s <= wall < w0 + e within this segment
                a = w0 + s - off
                b = w0 + e - off
                if a < u0:
                    a = u0
                if b > u1:
                    b = u1
                if a < b:
                    out.append((a, b))
        return out

    def utc_day(self, k: int) -> tuple[tuple[int, int], ...]:
        """Business intervals inside UTC day ``k`` (µs since epoch)."""
        if not _MIN_UTC_DAY <= k <= _MAX_UTC_DAY:
            raise OverflowError("business-time computation left the supported date range")
        lo, hi = k * _DAY_S, (k + 1) * _DAY_S
        pieces: list[tuple[int, int]] = []
        base = k + _EPOCH_ORDINAL
        for ordinal in range(base - 1, base + 2):
            for a, b in self._local_day(ordinal):
                a = max(a, lo)
                b = min(b, hi)
                if a < b:
                    pieces.append((a, b))
        result = tuple((a * _US, b * _US) for a, b in _merged(pieces))
        if len(self.utc_days) >= _CACHE_LIMIT:
            self.utc_days.clear()
        self.utc_days[k] = result
        return result

    # -- the business clock (aware UTC datetimes) ------------------------------------

    def clock_add(self, start: datetime, need: timedelta) -> datetime | None:
        """Earliest x >= start with ``need`` (> 0) of business time in [start, x).

        ``start`` is aware UTC.  None when the clock cannot answer (the walk will).
        """
        clock = self.clock
        if clock is None and self.asks < _CLOCK_AFTER:
            self.asks += 1
            return None
        while True:
            if clock is not None and clock.lo <= start:
                c = clock
                i = bisect_right(c.starts, start) - 1
                if i < 0:
                    target = need
                elif start < c.ends[i]:
                    target = start - c.shift[i] + need
                else:
                    target = c.done[i] + need
                j = bisect_left(c.done, target)
                if j < len(c.done):
                    return c.shift[j] + target
            clock = self._grow_clock(start, clock)
            if clock is None:
                return None

    def clock_between(self, s: datetime, e: datetime) -> timedelta | None:
        """Business time in [s, e) (aware UTC, s < e); None when the clock cannot answer."""
        clock = self.clock
        if clock is None and self.asks < _CLOCK_AFTER:
            self.asks += 1
            return None
        while True:
            if clock is not None and clock.lo <= s and e <= clock.hi:
                return clock.reading(e) - clock.reading(s)
            clock = self._grow_clock(s, clock, e)
            if clock is None:
                return None

    def _grow_clock(
        self, start: datetime, clock: _Clock | None, until: datetime | None = None
    ) -> _Clock | None:
        """A clock that covers more of the days ``start`` needs (None: leave it to the walk)."""
        if not self.clock_usable:
            return None
        k = (start - _EPOCH).days
        if clock is None:
            first, end = k - _CLOCK_FIRST_DAYS // 2, k + _CLOCK_FIRST_DAYS // 2
        else:
            first, end = clock.first_day, clock.end_day
            span = end - first
            if start < clock.lo:
                first = min(k - 1, first - span)
            else:  # the answer lies beyond the clock's end: double it
                end = max(k + 2, end + span)
        if until is not None:
            end = max(end, (until - _EPOCH).days + 1)
        first, end = max(first, _MIN_UTC_DAY), min(end, _MAX_UTC_DAY + 1)
        if end - first > _CLOCK_MAX_DAYS or (
            clock is not None and (first, end) == (clock.first_day, clock.end_day)
        ):
            return None
        grown = _build_clock(self, first, end)
        if grown is None:
            self.clock_usable = False
            self.clock = None
            return None
        self.clock = grown
        return grown

    # -- walks (all in epoch µs) ---------------------------------------------------

    def add(self, t: int, need: int) -> int:
        """Earliest x >= t with ``need`` µs of business time in [t, x); need >= 0."""
        k = t // _DAY_US
        days = self.utc_days
        empty = 0
        while True:
            iv = days.get(k)
            if iv is None:
                iv = self.utc_day(k)
            for a, b in iv:
                if b <= t:
                    continue
                if a < t:
                    a = t
                avail = b - a
                if need <= avail:
                    return a + need
                need -= avail
            if iv:
                empty = 0
            else:
                empty += 1
                if empty > _MAX_EMPTY_DAYS:
                    _no_business_time()
            k += 1

    def add_paused(self, t: int, need: int, pauses: list[tuple[int, int]]) -> int:
        """Like :meth:`add`, skipping the sorted, disjoint ``pauses``."""
        k = t // _DAY_US
        days = self.utc_days
        pi, np_ = 0, len(pauses)
        empty = 0
        while True:
            iv = days.get(k)
            if iv is None:
                iv = self.utc_day(k)
            for a, b in iv:
                if b <= t:
                    continue
                if a < t:
                    a = t
                while a < b:
                    while pi < np_ and pauses[pi][1] <= a:
                        pi += 1
                    if pi < np_ and pauses[pi][0] < b:
                        ps, pe = pauses[pi]
                        if ps <= a:
                            if pe >= _OPEN:
                                raise _open_pause(ps, need)
                            a = pe
                            continue
                        seg_end = ps
                    else:
                        seg_end = b
                    avail = seg_end - a
                    if need <= avail:
                        return a + need
                    need -= avail
                    a = seg_end
            if iv:
                empty = 0
            else:
                empty += 1
                if empty > _MAX_EMPTY_DAYS:
                    _no_business_time()
            k += 1

    def between(self, s: int, e: int) -> int:
        """Business µs in [s, e) (no pauses)."""
        if e <= s:
            return 0
        total = 0
        days = self.utc_days
        for k in range(s // _DAY_US, (e - 1) // _DAY_US + 1):
            iv = days.get(k)
            if iv is None:
                iv = self.utc_day(k)
            for a, b in iv:
                if a < s:
                    a = s
                if b > e:
                    b = e
                if a < b:
                    total += b - a
        return total


# id(schedule) -> (schedule, engine).  Holding the schedule keeps its id from being
# reused, so the identity check makes the lookup exact; no hashing on the hot path.
_ENGINE_BY_ID: dict[int, tuple[Schedule, _Engine]] = {}


def _engine_of(schedule: Schedule) -> _Engine:
    entry = _ENGINE_BY_ID.get(id(schedule))
    if entry is not None and entry[0] is schedule:
        return entry[1]
    engine = _engine_for(
        schedule.timezone,
        schedule.weekly,
        schedule.holidays,
        schedule.country,
        schedule.subdivision,
    )
    if len(_ENGINE_BY_ID) >= 4096:
        _ENGINE_BY_ID.clear()
    _ENGINE_BY_ID[id(schedule)] = (schedule, engine)
    return engine


@lru_cache(maxsize=1024)
def _engine_for(
    tz_key: str,
    weekly: tuple[tuple[Window, ...], ...],
    custom: frozenset[date],
    country: str | None,
    subdivision: str | None,
) -> _Engine:
    return _Engine(tz_key, weekly, custom, country, subdivision)


def _no_business_time() -> None:
    raise ValueError(f"schedule has no business time for {_MAX_EMPTY_DAYS} consecutive days")


def _open_pause(paused_at_us: int, need_us: int) -> OpenPause:
    return OpenPause(_from_us(paused_at_us), timedelta(microseconds=need_us))


TWENTY_FOUR_SEVEN: Final[Schedule] = Schedule("UTC", tuple(((0, 1440),) for _ in range(7)))
"""Every minute counts (UTC, no holidays).  ``schedule=None`` means the same."""


# --------------------------------------------------------------------- conversions


def _to_us(dt: datetime, what: str) -> int:
    try:
        d = dt - _EPOCH
    except TypeError:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {dt!r}") from None
    return (d.days * _DAY_S + d.seconds) * _US + d.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _as_utc(dt: datetime, what: str) -> datetime:
    """``dt`` as a plain aware-UTC datetime (as is when it already is one)."""
    if dt.__class__ is datetime and dt.tzinfo is UTC:
        return dt
    return _from_us(_to_us(dt, what))


def _prepare_pauses(pauses: Iterable[Pause]) -> list[tuple[int, int]]:
    """Sorted, merged ``[from, to)`` µs intervals; open pauses end at ``_OPEN``."""
    raw: list[tuple[int, int]] = []
    for pause in pauses:
        try:
            p_from, p_to = pause
        except (TypeError, ValueError):
            raise ValueError(f"pause {pause!r} is not a (from, to) pair") from None
        a = _to_us(p_from, "pause start")
        b = _OPEN if p_to is None else _to_us(p_to, "pause end")
        if b < a:
            raise ValueError(f"pause ends before it starts: {pause!r}")
        if a < b:
            raw.append((a, b))
    return _merged(raw)


def _merged(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Half-open intervals sorted and merged where they overlap or touch."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


_CLOCK_MAX_MINUTES: Final = _CLOCK_MAX_DAYS * 1440  # more can never fit in a clock
_MINUTES: dict[int, timedelta] = {}  # targets are few: their timedeltas are kept


def _minutes(n: int) -> timedelta:
    if len(_MINUTES) >= 4096:
        _MINUTES.clear()
    need = _MINUTES[n] = timedelta(minutes=n)
    return need


def _check_minutes(minutes: int) -> None:
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise TypeError(f"minutes must be an int, got {minutes!r}")
    if minutes < 0:
        raise ValueError(f"minutes must be >= 0, got {minutes}")


# ------------------------------------------------------------------------ public API


def add_business_minutes(
    start: datetime,
    minutes: int,
    schedule: Schedule | None,
    pauses: Sequence[Pause] = (),
) -> datetime:
    """The instant (aware, UTC) at which the ``minutes``-th business minute after ``start`` ends.

    * ``schedule`` ``None`` or :data:`TWENTY_FOUR_SEVEN` (or any all-day, holiday-free
      schedule): every instant counts.
    * ``start`` must be aware (``ValueError`` otherwise) and keeps its seconds;
      ``minutes >= 0``.
    * Outside business hours counting begins at the next opening.  ``minutes == 0``
      returns ``start`` itself (converted to UTC), even outside business hours.
    * For ``minutes > 0`` the result is inside a window or exactly at a window's
      end, never strictly outside one.
    * ``pauses`` are ``[from, to)`` intervals that do not count; they may overlap
      each other and non-business time.  An open pause (``to=None``) that begins
      before the deadline is reached raises :class:`OpenPause`.
    """
    if minutes.__class__ is not int or minutes < 0:
        _check_minutes(minutes)
    engine = None if schedule is None else _engine_of(schedule)
    if engine is None or engine.always:
        if not pauses:
            if start.tzinfo is None or start.utcoffset() is None:
                raise ValueError(f"start must be a timezone-aware datetime, got {start!r}")
            return start.astimezone(UTC) + timedelta(minutes=minutes)
        t = _to_us(start, "start")
        if minutes == 0:
            return _from_us(t)
        return _from_us(_add_24x7_paused(t, minutes * _MINUTE_US, _prepare_pauses(pauses)))
    if not pauses and 0 < minutes <= _CLOCK_MAX_MINUTES:
        # (inline: this line is the hot path of every deadline)
        utc = (
            start
            if start.__class__ is datetime and start.tzinfo is UTC
            else _as_utc(start, "start")
        )
        need = _MINUTES.get(minutes)
        if need is None:
            need = _minutes(minutes)
        due = engine.clock_add(utc, need)
        if due is not None:
            return due
    t = _to_us(start, "start")
    if minutes == 0:
        return _from_us(t)
    if pauses:
        prepared = _prepare_pauses(pauses)
        if prepared:
            return _from_us(engine.add_paused(t, minutes * _MINUTE_US, prepared))
    return _from_us(engine.add(t, minutes * _MINUTE_US))


def _add_24x7_paused(t: int, need: int, pauses: list[tuple[int, int]]) -> int:
    a = t
    for ps, pe in pauses:
        if pe <= a:
            continue
        if ps > a:
            avail = ps - a
            if need <= avail:
                return a + need
            need -= avail
        if pe >= _OPEN:
            raise _open_pause(ps, need)
        a = pe
    return a + need


def business_time_between(
    start: datetime,
    end: datetime,
    schedule: Schedule | None,
    pauses: Sequence[Pause] = (),
) -> timedelta:
    """Exact business time in ``[start, end)`` (zero when ``end <= start``).

    Open pauses simply stop the count from their start onwards.
    """
    if not pauses and schedule is not None and not _engine_of(schedule).always:
        s_utc, e_utc = _as_utc(start, "start"), _as_utc(end, "end")
        if e_utc <= s_utc:
            return timedelta(0)
        counted = _engine_of(schedule).clock_between(s_utc, e_utc)
        if counted is not None:
            return counted
    s = _to_us(start, "start")
    e = _to_us(end, "end")
    if e <= s:
        return timedelta(0)
    prepared = _prepare_pauses(pauses) if pauses else []
    engine = None if schedule is None else _engine_of(schedule)
    if engine is not None and engine.always:
        engine = None
    total = e - s if engine is None else engine.between(s, e)
    for ps, pe in prepared:
        lo, hi = max(ps, s), min(pe, e)
        if lo < hi:
            total -= hi - lo if engine is None else engine.between(lo, hi)
    return timedelta(microseconds=total)


def business_minutes_between(
    start: datetime,
    end: datetime,
    schedule: Schedule | None,
    pauses: Sequence[Pause] = (),
) -> int:
    """Whole business minutes in ``[start, end)``, rounded down (0 when ``end <= start``).

    Inverse of :func:`add_business_minutes`: for every ``s`` and ``n >= 0``,
    ``business_minutes_between(s, add_business_minutes(s, n, sch), sch) == n``.
    """
    return business_time_between(start, end, schedule, pauses) // timedelta(minutes=1)


def next_business_instant(
    at: datetime,
    schedule: Schedule | None,
    pauses: Sequence[Pause] = (),
) -> datetime:
    """``at`` (in UTC) if business time is running at that instant, else the next opening.

    "Running" means ``at`` is inside a window ``[open, close)`` and not paused; at a
    window's closing instant the answer is the next opening (the same instant when
    the next window starts exactly there, e.g. 24:00 -> 00:00).  An open pause
    covering ``at`` raises :class:`OpenPause`.
    """
    t = _to_us(at, "at")
    prepared = _prepare_pauses(pauses) if pauses else []
    engine = None if schedule is None else _engine_of(schedule)
    if engine is None or engine.always:
        if not prepared:
            return _from_us(t)
        for ps, pe in prepared:
            if ps <= t < pe:
                if pe >= _OPEN:
                    raise _open_pause(ps, 0)
                t = pe
        return _from_us(t)
    if prepared:
        return _from_us(engine.add_paused(t, 0, prepared))
    return _from_us(engine.add(t, 0))
