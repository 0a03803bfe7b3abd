"""When a failed delivery is tried again: 30 s doubling up to an hour, until its window ends."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks import delivery
from webhooks.delivery import MAX_RETRY_DELAY, Outcome, outcome

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DAY = T0 + timedelta(hours=24)


def test_retry_delay_doubles_from_30_seconds_up_to_an_hour() -> None:
    delays = [delivery.retry_delay(n).total_seconds() for n in range(1, 12)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]
    assert delivery.retry_delay(1, 1.1) == timedelta(seconds=33)
    assert delivery.retry_delay(8, 1.1) == timedelta(hours=1)
    assert delivery.retry_delay(10_000) == timedelta(hours=1)


def test_jitter_stays_within_ten_percent() -> None:
    assert all(0.9 <= delivery.draw_jitter() <= 1.1 for _ in range(1000))


S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("status_code", "finished", "attempt", "jitter", "expected"),
    [
        (200, T0, 1, 1.0, Outcome("delivered", None)),
        (204, DAY + 5 * S, 9, 1.0, Outcome("delivered", None)),  # late, but answered
        (299, T0, 1, 1.0, Outcome("delivered", None)),
        (300, T0, 1, 1.0, Outcome("pending", T0 + 30 * S)),  # a redirect is not followed
        (500, T0, 1, 1.1, Outcome("pending", T0 + 33 * S)),
        (None, T0, 2, 0.9, Outcome("pending", T0 + 54 * S)),  # no answer at all
        (410, T0, 3, 1.0, Outcome("pending", T0 + 120 * S)),
        (503, T0, 12, 1.1, Outcome("pending", T0 + timedelta(hours=1))),
        (500, DAY - 10 * S, 4, 1.0, Outcome("pending", DAY)),  # the last retry: the end
        (500, DAY, 30, 1.0, Outcome("failed", None)),
        (None, DAY + S, 30, 1.0, Outcome("failed", None)),
    ],
)
def test_outcome_of_an_attempt(
    status_code: int | None, finished: datetime, attempt: int, jitter: float, expected: Outcome
) -> None:
    got = outcome(status_code, finished=finished, attempt=attempt, retry_until=DAY, jitter=jitter)
    assert got == expected


INSTANTS = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by contract
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=300, deadline=None)
@given(
    created=INSTANTS,
    window=st.integers(min_value=1, max_value=48 * 3600),
    durations=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=80),
    jitters=st.lists(st.floats(min_value=0.9, max_value=1.1), min_size=1, max_size=80),
)
def test_a_receiver_that_never_answers_is_tried_until_the_window_ends_then_failed(
    created: datetime, window: int, durations: list[int], jitters: list[float]
) -> None:
    retry_until = created + timedelta(seconds=window)
    starts: list[datetime] = []
    finishes: list[datetime] = []
    waits: list[timedelta] = []
    at: datetime | None = created
    while at is not None:
        n = len(starts)
        assert n < 8 + window / (0.9 * 3600) + 2, "attempts must stop"
        starts.append(at)
        finishes.append(at + timedelta(milliseconds=durations[n % len(durations)]))
        result = outcome(
            None,
            finished=finishes[-1],
            attempt=n + 1,
            retry_until=retry_until,
            jitter=jitters[n % len(jitters)],
        )
        if result.next_attempt_at is None:
            assert result.status == "failed"
        else:
            assert result.status == "pending"
            assert finishes[-1] < result.next_attempt_at <= retry_until
            waits.append(result.next_attempt_at - finishes[-1])
        at = result.next_attempt_at

    assert all(start.tzinfo is not None for start in starts)
    assert all(a < b for a, b in itertools.pairwise(starts))
    # Only the last attempt reaches the window's end, and it does: nothing is given up early.
    assert all(finished < retry_until for finished in finishes[:-1])
    assert starts[-1] <= retry_until <= finishes[-1]
    for attempt, (wait, next_start) in enumerate(zip(waits, starts[1:], strict=True), start=1):
        if next_start == retry_until:
            continue  # cut short to land on the window's end
        nominal = delivery.retry_delay(attempt)
        assert 0.9 * nominal <= wait <= 1.1 * nominal
        assert wait <= MAX_RETRY_DELAY
