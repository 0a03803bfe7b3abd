"""Time passing: renewals, trial ends, cancellations and expiries, in the order they fall due."""

from __future__ import annotations

import heapq
import math

from stripe_emulator import checkout, subscriptions
from stripe_emulator.errors import invalid
from stripe_emulator.forms import Params
from stripe_emulator.objects import Obj
from stripe_emulator.routing import route
from stripe_emulator.state import RequestInfo, State

MAX_STEPS = 10_000


def _due(state: State, obj: Obj) -> int | None:
    """When the clock next has something to do for a subscription or Checkout Session."""
    if obj["object"] == "subscription":
        return subscriptions.next_due(state, obj)
    return int(obj["expires_at"]) if obj["status"] == "open" else None


def _act(state: State, obj: Obj) -> None:
    if obj["object"] == "subscription":
        subscriptions.advance(state, obj)
    else:
        checkout.expire(state, obj)


def _scan(state: State, now: int) -> tuple[list[tuple[int, int, Obj]], float]:
    """What is due by `now` (a heap), and the earliest moment after it."""
    heap = []
    later = math.inf
    # Runs before every request: a read-only scan, so the store writes only what `_act` does.
    for n, obj in enumerate(state.scan("subscription") + state.scan("checkout.session")):
        due = _due(state, obj)
        if due is None:
            continue
        if due <= now:
            heap.append((due, n, obj))
        else:
            later = min(later, due)
    heapq.heapify(heap)
    return heap, later


def catch_up(state: State) -> int:
    """Do everything that fell due up to now, earliest first, each at its own moment.

    Returns the number of steps done. Objects are independent of each other, so a heap of
    what is due now, refilled with each object's next moment, gives the global order.
    Between changes the next moment is cached in `state.wake_at`, so most calls are free.
    """
    now = state.now()
    if state.wake_at is not None and now < state.wake_at:
        return 0
    heap, later = _scan(state, now)
    steps = 0
    if heap:
        saved = state.request
        state.request = RequestInfo()  # automatic work has no request, as on Stripe
        try:
            while heap and steps < MAX_STEPS:
                due, n, obj = heapq.heappop(heap)
                state.touch(obj)
                with state.clock.at(due):
                    _act(state, obj)
                steps += 1
                following = _due(state, obj)
                if following is not None and due < following <= now:
                    heapq.heappush(heap, (following, n, obj))
        finally:
            state.request = saved
        _, later = _scan(state, now)
    state.wake_at = later
    return steps


def clock_object(state: State) -> Obj:
    now = state.now()
    return {
        "object": "emulator.clock",
        "now": now,
        "frozen_time": now,
        "offset": state.clock.offset,
    }


def advance_clock(
    state: State, *, seconds: int | None = None, frozen_time: int | None = None
) -> Obj:
    if frozen_time is not None:
        state.clock.move_to(frozen_time)
    elif seconds is not None:
        state.clock.advance(seconds)
    else:
        raise invalid("Pass `frozen_time` (unix seconds) or `seconds` to advance the clock.")
    catch_up(state)
    return clock_object(state)


@route("POST", "/v1/test_helpers/advance_clock")
def advance_clock_helper(state: State, p: Params) -> Obj:
    """Emulator helper: move the clock forward and roll everything that fell due."""
    return advance_clock(state, seconds=p.integer("seconds"), frozen_time=p.integer("frozen_time"))
