"""The incident lifecycle (sla.incident) without a database: tables of rules, then properties."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from common.errors import DomainError
from sla import incident, terms
from sla.calendar import business_minutes_between
from sla.deadlines import schedule_for
from sla.exceptions import IncidentConflict, InvalidIncidentTime, NoTarget
from sla.incident import IncidentState, Policy, Transition, micros
from sla.schemas import CalendarSpec, EntitlementSnapshot, IncidentCreate, TargetSnapshot

POLICY = Policy(warning_fractions=(0.5, 0.75, 0.9), escalation_minutes=(0, 60, 240))
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin
OFFICE = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
SNAPSHOT = EntitlementSnapshot(
    tier="business",
    plan_version=1,
    targets={
        "p1": TargetSnapshot(first_response_minutes=240, coverage="24x7"),
        "p2": TargetSnapshot(first_response_minutes=480, coverage="24x7"),
        "p3": TargetSnapshot(first_response_minutes=600, coverage="business_hours"),
    },  # no p4: the plan promises nothing there
    fast_track_used=False,
    fast_track_minutes=None,
    calendar=CalendarSpec(timezone="Europe/Berlin", business_hours=OFFICE),
)
FAST = replace(SNAPSHOT, fast_track_used=True, fast_track_minutes=60)  # 24x7 by default


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def opened(priority: str = "p1", snapshot: EntitlementSnapshot = SNAPSHOT) -> IncidentState:
    request = IncidentCreate(customer_id="cust_1", external_ref="T-1", priority=priority)  # type: ignore[arg-type]
    return incident.open("inc_1", request, snapshot, opened_at=T0, now=T0, policy=POLICY).state


def types(t: Transition) -> list[str]:
    return [e.type for e in t.events]


def outbound(t: Transition) -> list[str]:
    return [o.type for o in t.outbound]


def kinds(t: Transition) -> list[str]:
    return [j.kind for j in t.jobs]


def respond(s: IncidentState, when: float | None, now: float) -> Transition:
    return incident.respond(s, None if when is None else at(when), now=at(now), policy=POLICY)


def pause(s: IncidentState, when: float | None, now: float) -> Transition:
    return incident.pause(
        s, None if when is None else at(when), "customer", now=at(now), policy=POLICY
    )


def resume(s: IncidentState, when: float | None, now: float) -> Transition:
    return incident.resume(s, None if when is None else at(when), now=at(now), policy=POLICY)


def resolve(s: IncidentState, when: float | None, now: float) -> Transition:
    return incident.resolve(s, None if when is None else at(when), now=at(now), policy=POLICY)


def reprioritise(s: IncidentState, priority: str, now: float) -> Transition:
    return incident.reprioritise(s, priority, now=at(now), policy=POLICY)  # type: ignore[arg-type]


def breach(s: IncidentState, now: float) -> Transition:
    return incident.breach(s, now=at(now), policy=POLICY)


def escalate(s: IncidentState, now: float) -> Transition:
    return incident.escalate(s, now=at(now), policy=POLICY)


def warn(s: IncidentState, index: int, now: float) -> Transition:
    return incident.warn(s, micros(s.warn_at[index].at), now=at(now), policy=POLICY)


ACTIVE = opened()  # P1: 240 minutes around the clock, due at T0 + 4 h
PAUSED = pause(ACTIVE, 30, 30).state
ACHIEVED = respond(ACTIVE, 10, 10).state
BREACHED = breach(ACTIVE, 245).state
ANSWERED_LATE = respond(BREACHED, 250, 250).state
RESOLVED = resolve(ACTIVE, 20, 20).state


# ---------------------------------------------------------------- open


def test_open_computes_the_deadline_warnings_and_their_checks() -> None:
    t = incident.open(
        "inc_1",
        IncidentCreate(customer_id="cust_1", external_ref="T-1", priority="p1", context={"a": 1}),
        SNAPSHOT,
        opened_at=T0,
        now=at(5),
        policy=POLICY,
    )
    s = t.state
    assert (s.sla_status, s.due_at, s.target_minutes, s.coverage) == (
        "active",
        at(240),
        240,
        "24x7",
    )
    assert [(w.fraction, w.at) for w in s.warn_at] == [
        (0.5, at(120)),
        (0.75, at(180)),
        (0.9, at(216)),
    ]
    assert s.next_warning_at == at(120)
    assert (s.created_at, s.updated_at, s.context) == (at(5), at(5), {"a": 1})
    assert types(t) == ["opened"]
    assert t.events[0].at == T0
    assert t.events[0].data["due_at"] == "2026-11-23T13:00:00Z"
    assert t.events[0].data["warn_at"] == [
        "2026-11-23T11:00:00Z",
        "2026-11-23T12:00:00Z",
        "2026-11-23T12:36:00Z",
    ]
    # Nothing to schedule: the worker's clock reads next_warning_at and due_at.
    assert t.jobs == ()
    assert t.outbound == ()


def test_a_fast_track_target_wins_only_when_it_is_earlier() -> None:
    fast = opened("p1", FAST)
    assert (fast.due_at, fast.target_source, fast.fast_track) == (at(60), "fast_track", True)
    # P3 counts business hours (Mon 10:00 Berlin + 10 h -> Tue 12:00): the hour is earlier.
    assert opened("p3", FAST).due_at == at(60)
    assert opened("p3").due_at == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)


def test_open_refuses_a_priority_the_plan_does_not_cover() -> None:
    with pytest.raises(NoTarget):
        opened("p4")


# ---------------------------------------------------------------- refusals

Call = Callable[[IncidentState], Transition]

REFUSALS: list[tuple[str, IncidentState, Call, type[DomainError], str]] = [
    (
        "pause a paused incident",
        PAUSED,
        lambda s: pause(s, None, 40),
        IncidentConflict,
        "already paused",
    ),
    (
        "pause an achieved incident",
        ACHIEVED,
        lambda s: pause(s, None, 40),
        IncidentConflict,
        "achieved",
    ),
    (
        "pause a breached incident",
        BREACHED,
        lambda s: pause(s, None, 250),
        IncidentConflict,
        "breached",
    ),
    (
        "pause a resolved incident",
        RESOLVED,
        lambda s: pause(s, None, 40),
        IncidentConflict,
        "resolved",
    ),
    (
        "pause once the deadline passed",
        ACTIVE,
        lambda s: pause(s, None, 240),
        IncidentConflict,
        "passed",
    ),
    (
        "pause before the last pause ended",
        resume(PAUSED, 40, 40).state,
        lambda s: pause(s, 35, 50),
        InvalidIncidentTime,
        "last pause",
    ),
    (
        "pause before the opening",
        ACTIVE,
        lambda s: pause(s, -1, 10),
        InvalidIncidentTime,
        "before the incident",
    ),
    ("pause in the future", ACTIVE, lambda s: pause(s, 20, 10), InvalidIncidentTime, "future"),
    (
        "resume an active incident",
        ACTIVE,
        lambda s: resume(s, None, 40),
        IncidentConflict,
        "not paused",
    ),
    (
        "resume before the pause began",
        PAUSED,
        lambda s: resume(s, 29, 40),
        InvalidIncidentTime,
        "pause began",
    ),
    (
        "resume a resolved incident",
        RESOLVED,
        lambda s: resume(s, None, 40),
        IncidentConflict,
        "resolved",
    ),
    ("respond twice", ACHIEVED, lambda s: respond(s, None, 40), IncidentConflict, "was recorded"),
    (
        "respond to a resolved incident",
        RESOLVED,
        lambda s: respond(s, None, 40),
        IncidentConflict,
        "resolved",
    ),
    (
        "respond before the opening",
        ACTIVE,
        lambda s: respond(s, -5, 40),
        InvalidIncidentTime,
        "before the incident",
    ),
    (
        "re-prioritise an achieved incident",
        ACHIEVED,
        lambda s: reprioritise(s, "p2", 40),
        IncidentConflict,
        "final",
    ),
    (
        "re-prioritise a breached incident",
        BREACHED,
        lambda s: reprioritise(s, "p2", 250),
        IncidentConflict,
        "final",
    ),
    (
        "re-prioritise a resolved incident",
        RESOLVED,
        lambda s: reprioritise(s, "p2", 40),
        IncidentConflict,
        "resolved",
    ),
    (
        "re-prioritise to an uncovered priority",
        ACTIVE,
        lambda s: reprioritise(s, "p4", 40),
        NoTarget,
        "no target",
    ),
    ("resolve twice", RESOLVED, lambda s: resolve(s, None, 40), IncidentConflict, "resolved"),
    ("resolve in the future", ACTIVE, lambda s: resolve(s, 50, 40), InvalidIncidentTime, "future"),
]


@pytest.mark.parametrize(
    ("state", "call", "error", "says"),
    [pytest.param(s, c, e, m, id=name) for name, s, c, e, m in REFUSALS],
)
def test_a_refused_change_raises_its_domain_error(
    state: IncidentState, call: Call, error: type[DomainError], says: str
) -> None:
    with pytest.raises(error) as raised:
        call(state)
    assert says in raised.value.detail


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(InvalidIncidentTime, match="timezone offset"):
        incident.respond(ACTIVE, datetime(2026, 11, 23, 10, 0), now=at(60), policy=POLICY)  # noqa: DTZ001


# ---------------------------------------------------------------- first response and resolve

OUTCOMES: list[tuple[str, Call, str, list[str], list[str], list[str]]] = [
    (
        "in time",
        lambda s: respond(s, 100, 110),
        "achieved",
        ["first_response", "achieved"],
        ["sla.achieved"],
        [],
    ),
    (
        "on the deadline itself",
        lambda s: respond(s, 240, 241),
        "achieved",
        ["first_response", "achieved"],
        ["sla.achieved"],
        [],
    ),
    (
        "late, before the worker noticed",
        lambda s: respond(s, 241, 242),
        "breached",
        ["first_response", "breached"],
        ["sla.breached"],
        ["sla_credit"],
    ),
    (
        "late, after the breach",
        lambda s: respond(breach(s, 245).state, 250, 250),
        "breached",
        ["first_response"],
        [],
        [],
    ),
    (
        "resolved without a response",
        lambda s: resolve(s, 30, 30),
        "achieved",
        ["first_response", "achieved", "resolved"],
        ["sla.achieved"],
        [],
    ),
    (
        "resolved late without a response",
        lambda s: resolve(s, 300, 300),
        "breached",
        ["first_response", "breached", "resolved"],
        ["sla.breached"],
        ["sla_credit"],
    ),
    (
        "resolved after the response",
        lambda s: resolve(respond(s, 10, 10).state, 30, 30),
        "achieved",
        ["resolved"],
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    ("call", "status", "ledger", "announced", "jobs"),
    [pytest.param(c, s, led, a, j, id=name) for name, c, s, led, a, j in OUTCOMES],
)
def test_the_first_response_decides_the_outcome(
    call: Call, status: str, ledger: list[str], announced: list[str], jobs: list[str]
) -> None:
    t = call(ACTIVE)
    assert t.state.sla_status == status
    assert (types(t), outbound(t), kinds(t)) == (ledger, announced, jobs)
    # Answered: nobody needs waking (any more).
    assert t.state.next_escalation_at is None


def test_a_late_answer_to_a_breached_incident_stops_its_escalation() -> None:
    breached = breach(ACTIVE, 305)  # an hour past the deadline: levels 1 and 2
    assert (breached.state.escalation_level, breached.state.next_escalation_at) == (2, at(480))
    t = respond(breached.state, 310, 310)
    assert (t.state.sla_status, t.state.first_response_at) == ("breached", at(310))
    assert t.state.escalation_level == 2  # what happened stays
    assert t.state.next_escalation_at is None
    assert t.events[0].data == {"late": True}


def test_a_response_during_a_pause_ends_the_pause_at_the_response() -> None:
    t = respond(PAUSED, 50, 60)
    assert (t.state.sla_status, t.state.paused_at) == ("achieved", None)
    assert [(p.start, p.end) for p in t.state.pauses] == [(at(30), at(50))]
    assert t.state.due_at == at(260)  # the pause moved the deadline by its 20 minutes
    # Answered at the instant it paused: no empty pause is kept.
    assert respond(PAUSED, 30, 60).state.pauses == ()


def test_a_response_during_a_pause_is_in_time_against_the_moved_deadline() -> None:
    """The pause began before the deadline and lasts until the answer: never late."""
    t = respond(pause(ACTIVE, 200, 200).state, 210, 500)  # paused 10 minutes: due at 250
    assert (t.state.sla_status, t.state.due_at) == ("achieved", at(250))
    t = respond(pause(ACTIVE, 239, 239).state, 400, 500)  # paused 161 minutes: due at 401
    assert (t.state.sla_status, t.state.due_at) == ("achieved", at(401))


# ---------------------------------------------------------------- pause, resume, priority


def test_pause_and_resume_move_the_deadline_and_warnings_by_the_paused_time() -> None:
    paused = pause(ACTIVE, 30, 40)
    assert types(paused) == ["paused"]
    assert paused.events[0].data == {"reason": "customer", "due_at": "2026-11-23T13:00:00Z"}
    assert (paused.state.next_warning_at, paused.jobs) == (None, ())
    resumed = resume(paused.state, 75, 80)
    s = resumed.state
    assert (s.sla_status, s.paused_at, s.due_at) == ("active", None, at(285))
    assert [w.at for w in s.warn_at] == [at(165), at(225), at(261)]
    assert resumed.events[0].data == {
        "paused_from": "2026-11-23T09:30:00Z",
        "previous_due_at": "2026-11-23T13:00:00Z",
        "due_at": "2026-11-23T13:45:00Z",
    }
    assert (s.next_warning_at, resumed.jobs) == (at(165), ())


def test_resume_schedules_only_the_warnings_not_yet_recorded() -> None:
    warned = warn(ACTIVE, 0, 125).state  # the 50 % warning is recorded
    resumed = resume(pause(warned, 130, 130).state, 140, 140)
    assert resumed.state.warnings_sent == 1
    assert resumed.state.next_warning_at == resumed.state.warn_at[1].at
    assert kinds(resumed) == []


def test_a_priority_change_recomputes_from_the_opening() -> None:
    t = reprioritise(ACTIVE, "p2", 100)
    assert (t.state.priority, t.state.due_at, t.state.target_minutes) == ("p2", at(480), 480)
    assert types(t) == ["priority_changed"]
    assert t.events[0].at == at(100)
    assert t.events[0].data["from"] == "p1" and t.events[0].data["to"] == "p2"
    assert (t.state.next_warning_at, kinds(t)) == (t.state.warn_at[0].at, [])
    # To business hours: ten working hours from Monday 10:00 Berlin.
    assert reprioritise(ACTIVE, "p3", 100).state.coverage == "business_hours"


def test_a_priority_change_while_paused_keeps_the_clock_stopped() -> None:
    t = reprioritise(PAUSED, "p2", 40)
    assert (t.state.sla_status, t.state.next_warning_at, t.jobs) == ("paused", None, ())
    assert t.state.due_at == at(480)


def test_the_same_priority_again_changes_nothing() -> None:
    assert reprioritise(ACTIVE, "p1", 100) == Transition(state=ACTIVE)


# ---------------------------------------------------------------- breach and escalation

LADDER: list[tuple[float, int, datetime | None, list[str]]] = [
    (240, 1, at(300), ["sla_credit"]),  # on the deadline: level 1 (0 min)
    (299, 1, at(300), ["sla_credit"]),
    (300, 2, at(480), ["sla_credit"]),  # an hour late: level 2
    (480, 3, None, ["sla_credit"]),  # four hours late: the top of the ladder
    (10_000, 3, None, ["sla_credit"]),
]


@pytest.mark.parametrize(("now", "level", "upcoming", "jobs"), LADDER)
def test_a_breach_starts_the_escalation_ladder_where_it_stands(
    now: float, level: int, upcoming: datetime | None, jobs: list[str]
) -> None:
    t = breach(ACTIVE, now)
    s = t.state
    assert (s.sla_status, s.breached_at, s.credit_status) == ("breached", at(now), "pending")
    assert (s.escalation_level, s.next_escalation_at, s.next_warning_at) == (level, upcoming, None)
    assert types(t) == ["breached"] + ["escalated"] * level
    assert [e.data["level"] for e in t.events[1:]] == list(range(1, level + 1))
    assert outbound(t) == ["sla.breached"] + ["sla.escalated"] * level
    assert t.events[0].data["lateness_ms"] == (now - 240) * 60_000
    assert kinds(t) == jobs
    assert all(o.data["sla_status"] == "breached" for o in t.outbound)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(ACTIVE, id="not yet due"),
        pytest.param(PAUSED, id="paused"),
        pytest.param(ACHIEVED, id="achieved"),
        pytest.param(BREACHED, id="already breached"),
    ],
)
def test_breach_leaves_an_incident_it_does_not_apply_to_alone(state: IncidentState) -> None:
    assert breach(state, 239 if state is ACTIVE else 500) == Transition(state=state)


def test_escalation_climbs_when_due_and_only_then() -> None:
    assert escalate(BREACHED, 299) == Transition(state=BREACHED)  # level 2 is due at 300
    t = escalate(BREACHED, 301)
    assert (t.state.escalation_level, t.state.next_escalation_at) == (2, at(480))
    assert [e.data for e in t.events] == [{"level": 2}]
    assert [o.data["escalation_level"] for o in t.outbound] == [2]
    assert t.jobs == ()  # the clock reads next_escalation_at
    # A late job reaches every level it missed at once.
    late = escalate(BREACHED, 600)
    assert [e.data["level"] for e in late.events] == [2, 3]
    assert (late.state.next_escalation_at, late.jobs) == (None, ())


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(ANSWERED_LATE, id="answered"),
        pytest.param(resolve(BREACHED, 250, 250).state, id="resolved"),
        pytest.param(ACTIVE, id="not breached"),
    ],
)
def test_escalation_stops_once_answered_or_resolved(state: IncidentState) -> None:
    assert escalate(state, 600) == Transition(state=state)


# ---------------------------------------------------------------- warnings


def test_warnings_are_recorded_once_each_and_in_order() -> None:
    t = warn(ACTIVE, 2, 220)  # the 90 % job runs first: the earlier ones come with it
    assert [e.data["fraction"] for e in t.events] == [0.5, 0.75, 0.9]
    assert [e.data["warn_at"] for e in t.events] == [
        "2026-11-23T11:00:00Z",
        "2026-11-23T12:00:00Z",
        "2026-11-23T12:36:00Z",
    ]
    assert outbound(t) == ["sla.warning"] * 3
    assert (t.state.warnings_sent, t.state.next_warning_at) == (3, None)
    # The jobs of the earlier warnings, running after, find their work done.
    assert warn(t.state, 0, 221) == Transition(state=t.state)
    one = warn(ACTIVE, 0, 121)
    assert (one.state.warnings_sent, one.state.next_warning_at) == (1, at(180))


@pytest.mark.parametrize(
    ("state", "ts", "now"),
    [
        pytest.param(ACTIVE, micros(at(121)), 130, id="not a warning instant"),
        pytest.param(ACTIVE, micros(at(120)), 240, id="past the deadline"),
        pytest.param(PAUSED, micros(at(120)), 130, id="paused"),
        pytest.param(ACHIEVED, micros(at(120)), 130, id="achieved"),
    ],
)
def test_a_stale_warning_records_nothing(state: IncidentState, ts: int, now: float) -> None:
    assert incident.warn(state, ts, now=at(now), policy=POLICY) == Transition(state=state)


# ---------------------------------------------------------------- properties

Step = tuple[str, int, int]  # action, minutes on, minutes back for its reported instant
ACTIONS = ("respond", "pause", "resume", "p1", "p2", "p3", "p4", "resolve", "breach", "escalate")
ACTIONS += ("warn",)


def _apply(s: IncidentState, action: str, now: datetime, back: int, ts: int) -> Transition:
    when = now - timedelta(minutes=back) if back else None
    if action == "respond":
        return incident.respond(s, when, now=now, policy=POLICY)
    if action == "pause":
        return incident.pause(s, when, None, now=now, policy=POLICY)
    if action == "resume":
        return incident.resume(s, when, now=now, policy=POLICY)
    if action == "resolve":
        return incident.resolve(s, when, now=now, policy=POLICY)
    if action == "breach":
        return incident.breach(s, now=now, policy=POLICY)
    if action == "escalate":
        return incident.escalate(s, now=now, policy=POLICY)
    if action == "warn":
        return incident.warn(s, ts, now=now, policy=POLICY)
    return incident.reprioritise(s, action, now=now, policy=POLICY)  # type: ignore[arg-type]


def _check_deadline(s: IncidentState) -> None:
    """The deadline is the target's count of business minutes after the opening, paused
    time excluded."""
    schedule = schedule_for(s.coverage, terms.schedule_of(s.entitlement.calendar))
    assert business_minutes_between(s.opened_at, s.due_at, schedule, incident.pauses_of(s)) == (
        s.target_minutes
    )
    assert all(w.at < s.due_at for w in s.warn_at)
    assert [w.at for w in s.warn_at] == sorted(w.at for w in s.warn_at)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["p1", "p2", "p3"]),
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(0, 240), st.integers(0, 90)),
        max_size=25,
    ),
)
def test_any_sequence_of_changes_keeps_the_lifecycle_rules(
    priority: str, steps: list[Step]
) -> None:
    s = opened(priority)
    now = T0
    ledger: list[Any] = []
    for action, on, back in steps:
        now += timedelta(minutes=on)
        before = s
        # A warning job's instant: one of the warnings still pending, or none at all.
        pending = s.warn_at[s.warnings_sent :]
        ts = micros(pending[back % len(pending)].at) if pending else micros(now)
        try:
            t = _apply(s, action, now, back, ts)
        except DomainError:
            continue
        s = t.state
        ledger += t.events
        # Each job names this incident and its instant exactly.
        assert all(j.incident_id == s.id and j.ts == micros(j.at) for j in t.jobs)
        assert all(e.at <= now for e in t.events)
        # An outcome is final, and so are a response and a resolution.
        if before.sla_status in ("achieved", "breached"):
            assert s.sla_status == before.sla_status
        for kept in ("first_response_at", "resolved_at", "breached_at", "opened_at"):
            if getattr(before, kept) is not None:
                assert getattr(s, kept) == getattr(before, kept)
        assert s.warnings_sent >= before.warnings_sent
        assert s.escalation_level >= before.escalation_level
        # The worker's transitions are safe to run twice.
        if action in ("breach", "escalate", "warn"):
            assert _apply(s, action, now, back, ts) == Transition(state=s)
        # State and status agree.
        assert (s.sla_status == "paused") == (s.paused_at is not None)
        assert (s.sla_status == "breached") == (s.breached_at is not None)
        assert (s.credit_status == "pending") == (s.sla_status == "breached")
        if s.sla_status == "achieved":
            assert s.first_response_at is not None and s.first_response_at <= s.due_at
        if s.escalation_level:
            assert s.sla_status == "breached"
        if s.first_response_at is not None or s.resolved_at is not None:
            assert s.next_escalation_at is None
        assert all(p.start <= p.end for p in s.pauses)
        assert all(a.end <= b.start for a, b in zip(s.pauses, s.pauses[1:], strict=False))
        assert all(s.opened_at <= p.start and p.end <= now for p in s.pauses)
        _check_deadline(s)
    kinds_seen = [e.type for e in ledger]
    assert kinds_seen.count("breached") + kinds_seen.count("achieved") <= 1
    assert kinds_seen.count("first_response") == (s.first_response_at is not None)
    assert kinds_seen.count("resolved") == (s.resolved_at is not None)
    assert kinds_seen.count("warning") == s.warnings_sent
    levels = [e.data["level"] for e in ledger if e.type == "escalated"]
    assert levels == list(range(1, s.escalation_level + 1))


@settings(max_examples=200, deadline=None)
@given(
    st.permutations([0, 1, 2]),
    st.lists(st.integers(0, 239), min_size=3, max_size=3),
)
def test_warnings_in_any_job_order_leave_the_same_ledger(
    order: list[int], minutes: list[int]
) -> None:
    s = ACTIVE
    now = T0
    recorded: list[float] = []
    for index, minute in zip(order, sorted(minutes), strict=True):
        now = max(now, at(minute), s.warn_at[index].at)  # a job runs at or after its instant
        t = incident.warn(s, micros(s.warn_at[index].at), now=now, policy=POLICY)
        recorded += [e.data["fraction"] for e in t.events]
        s = t.state
    assert recorded == [0.5, 0.75, 0.9]
    assert s.warnings_sent == 3


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 600), st.integers(0, 600))
def test_escalation_reaches_the_same_level_however_late_its_jobs_run(first: int, then: int) -> None:
    """Breached at one time, escalated at a later one: the level and the next instant are
    those of a breach recorded at the later time."""
    breached = breach(ACTIVE, 240 + first).state
    later = 240 + first + then
    direct = breach(ACTIVE, later).state
    climbed = escalate(breached, later).state
    assert climbed.escalation_level == direct.escalation_level
    assert climbed.next_escalation_at == direct.next_escalation_at


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 120), st.integers(0, 300)), max_size=4),
    st.sampled_from(["p1", "p3"]),
)
def test_pauses_push_the_deadline_by_the_paused_business_time(
    pauses: list[tuple[int, int]], priority: str
) -> None:
    s = opened(priority)
    now = T0
    paused_minutes = []
    for gap, length in pauses:
        start = now + timedelta(minutes=gap)
        if start >= s.due_at:
            break
        s = incident.pause(s, start, None, now=start, policy=POLICY).state
        now = start + timedelta(minutes=length)
        s = incident.resume(s, now, now=now, policy=POLICY).state
        paused_minutes.append(length)
    _check_deadline(s)
    if s.coverage == "24x7":
        assert s.due_at == at(s.target_minutes + sum(paused_minutes))
