"""The incident's typed state and its lifecycle as pure transitions: no I/O, no clock.

Each transition takes the current state, its inputs, ``now`` and the ``Policy`` and
returns a ``Transition``: the new state, the ledger events to append, the outbound
events to announce and the follow-up jobs to schedule (a breach's credit, which calls
Stripe; deadlines themselves need no job: the worker's clock reads them from the
incident), or raises a domain error (``sla.exceptions``).  ``sla.store`` persists a
transition, ``sla.service`` and ``sla.breaches`` run them under a row lock.  A
transition that finds nothing to do returns the state unchanged with nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec.structs import replace

from common.clock import past_instant
from common.config import Settings
from common.errors import InvalidRequest
from sla import deadlines
from sla.calendar import Pause
from sla.deadlines import Deadline
from sla.exceptions import IncidentConflict, InvalidIncidentTime
from sla.schemas import (
    Coverage,
    EffectiveTarget,
    EntitlementSnapshot,
    EventType,
    Incident,
    IncidentCreate,
    JobKind,
    PauseInterval,
    Priority,
    ServiceCreditRef,
    SlaJob,
    SlaStatus,
)
from sla.terms import deadline_for

Aware = Annotated[datetime, msgspec.Meta(tz=True)]
TargetSource = Literal["plan", "fast_track"]
# null until breached; then pending -> issued | none (the policy paid nothing) | failed
CreditStatus = Literal["pending", "issued", "none", "failed"]
OutboundType = Literal[
    "sla.warning", "sla.breached", "sla.achieved", "sla.escalated", "service_credit.issued"
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MILLISECOND: Final = timedelta(milliseconds=1)


# ---------------------------------------------------------------- instants


def micros(at: datetime) -> int:
    """Epoch microseconds: the exact, comparable form of an instant in job ids and arguments."""
    return (at - _EPOCH) // _MICROSECOND


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job(kind: JobKind, incident_id: str, at: datetime) -> SlaJob:
    return SlaJob(kind=kind, incident_id=incident_id, at=at, ts=micros(at))


def not_future(value: datetime, now: datetime, field: str) -> datetime:
    """``value`` in UTC; refused when naive or later than ``now`` (common.clock's rule)."""
    try:
        return past_instant(value, field=field, now=now)
    except InvalidRequest as e:
        raise InvalidIncidentTime(f"{e.detail} (now is {iso(now)})", field=field) from None


# ---------------------------------------------------------------- state


class WarningAt(msgspec.Struct, frozen=True):
    """A warning instant at ``fraction`` of the target; stored as ``{"fraction", "at"}``."""

    fraction: float
    at: Aware


class ClosedPause(msgspec.Struct, frozen=True, array_like=True):
    """A pause that has ended; stored as ``["from", "to"]``."""

    start: Aware
    end: Aware


class IncidentState(msgspec.Struct, frozen=True, kw_only=True):
    """One ``incident`` row, typed: field names are its column names."""

    id: str
    customer_id: str
    external_ref: str
    priority: Priority
    opened_at: Aware
    context: dict[str, Any]
    entitlement: EntitlementSnapshot
    tier: str
    fast_track: bool
    target_minutes: int
    coverage: Coverage
    target_source: TargetSource
    due_at: Aware
    # Ascending; the first ``warnings_sent`` of them are recorded.
    warn_at: tuple[WarningAt, ...]
    warnings_sent: int
    next_warning_at: Aware | None
    # Closed pauses; an open one lives in ``paused_at``.
    pauses: tuple[ClosedPause, ...]
    paused_at: Aware | None
    first_response_at: Aware | None
    resolved_at: Aware | None
    sla_status: SlaStatus
    breached_at: Aware | None
    escalation_level: int
    next_escalation_at: Aware | None
    credit_status: CreditStatus | None
    credit_id: str | None
    credit_kind: str | None
    created_at: Aware
    updated_at: Aware


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """The configured rules: warning fractions of the target and the escalation ladder."""

    warning_fractions: tuple[float, ...] = (0.5, 0.75, 0.9)
    # Minutes after the deadline at which each escalation level is reached, ascending.
    escalation_minutes: tuple[int, ...] = (0, 60, 240)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            warning_fractions=settings.sla_warning_fractions,
            escalation_minutes=settings.sla_escalation_minutes,
        )


class LedgerEvent(msgspec.Struct, frozen=True):
    """One entry for the append-only ``sla_event`` ledger."""

    type: EventType
    at: datetime
    data: dict[str, Any]


class Outbound(msgspec.Struct, frozen=True):
    """An outbound webhook event: the incident's summary then the event's own fields."""

    type: OutboundType
    data: dict[str, Any]


class Transition(msgspec.Struct, frozen=True):
    state: IncidentState
    events: tuple[LedgerEvent, ...] = ()
    outbound: tuple[Outbound, ...] = ()
    jobs: tuple[SlaJob, ...] = ()

    def then(self, after: Transition) -> Transition:
        """This transition followed by ``after`` (which started from this one's state)."""
        return Transition(
            state=after.state,
            events=self.events + after.events,
            outbound=self.outbound + after.outbound,
            jobs=self.jobs + after.jobs,
        )


def summary(state: IncidentState) -> dict[str, Any]:
    """What every outbound event of an incident says about it."""
    return {
        "incident_id": state.id,
        "customer_id": state.customer_id,
        "external_ref": state.external_ref,
        "priority": state.priority,
        "tier": state.tier,
        "sla_status": state.sla_status,
        "opened_at": iso(state.opened_at),
        "due_at": iso(state.due_at),
    }


def announce(state: IncidentState, type_: OutboundType, **extra: Any) -> Outbound:
    return Outbound(type=type_, data={**summary(state), **extra})


def to_incident(state: IncidentState) -> Incident:
    """The response shape of a state."""
    credit = (
        ServiceCreditRef(id=state.credit_id, kind=state.credit_kind, status=state.credit_status)
        if state.credit_id and state.credit_kind and state.credit_status
        else None
    )
    return Incident(
        id=state.id,
        customer_id=state.customer_id,
        external_ref=state.external_ref,
        priority=state.priority,
        opened_at=state.opened_at,
        due_at=state.due_at,
        warn_at=[w.at for w in state.warn_at],
        sla_status=state.sla_status,
        fast_track=state.fast_track,
        tier=state.tier,
        plan_version=state.entitlement.plan_version,
        target=EffectiveTarget(
            first_response_minutes=state.target_minutes,
            coverage=state.coverage,
            source=state.target_source,
        ),
        pauses=[PauseInterval(p.start, p.end) for p in state.pauses],
        paused_at=state.paused_at,
        first_response_at=state.first_response_at,
        resolved_at=state.resolved_at,
        breached_at=state.breached_at,
        escalation_level=state.escalation_level,
        service_credit=credit,
        context=state.context,
        entitlement=state.entitlement,
        created_at=state.created_at,
        updated_at=state.updated_at,
    )


# ---------------------------------------------------------------- the deadline of a state


def pauses_of(state: IncidentState) -> list[Pause]:
    return [(p.start, p.end) for p in state.pauses]


def _warnings(deadline: Deadline) -> tuple[WarningAt, ...]:
    return tuple(WarningAt(fraction=w.fraction, at=w.at) for w in deadline.warnings)


def _with_deadline(state: IncidentState, deadline: Deadline) -> IncidentState:
    """``state`` with the columns that follow from a (re)computed deadline."""
    warn_at = _warnings(deadline)
    pending = warn_at[state.warnings_sent :]
    return replace(
        state,
        due_at=deadline.due_at,
        warn_at=warn_at,
        next_warning_at=pending[0].at if pending else None,
        target_minutes=deadline.target.minutes,
        coverage=deadline.target.coverage,
        target_source=deadline.target.source,
    )


def _recomputed(state: IncidentState, policy: Policy) -> IncidentState:
    """The deadline again from ``opened_at``, with the state's priority and closed pauses."""
    deadline = deadline_for(
        state.opened_at,
        state.priority,
        state.entitlement,
        pauses_of(state),
        policy.warning_fractions,
    )
    return _with_deadline(state, deadline)


def warning_index(warn_at: Sequence[WarningAt], warnings_sent: int, ts: int) -> int | None:
    """The index of the still-unrecorded warning scheduled at ``ts`` (epoch µs), if it is one."""
    for i in range(warnings_sent, len(warn_at)):
        if micros(warn_at[i].at) == ts:
            return i
    return None


def latest_passed_warning(
    warn_at: Sequence[WarningAt], warnings_sent: int, cutoff: datetime
) -> WarningAt | None:
    """The latest unrecorded warning at or before ``cutoff``: its check records the earlier."""
    passed = [w for w in warn_at[warnings_sent:] if w.at <= cutoff]
    return passed[-1] if passed else None


# ---------------------------------------------------------------- reported instants


def _refuse_resolved(state: IncidentState, action: str) -> None:
    if state.resolved_at is not None:
        raise IncidentConflict(
            f"incident {state.id} was resolved at {iso(state.resolved_at)}; cannot {action}"
        )


def reported_at(
    state: IncidentState, at: datetime | None, now: datetime, field: str = "at"
) -> datetime:
    """A reported instant: defaults to now, never in the future nor before the opening."""
    value = now if at is None else not_future(at, now, field)
    if value < state.opened_at:
        raise InvalidIncidentTime(
            f"{field} {iso(value)} is before the incident was opened ({iso(state.opened_at)})",
            field=field,
        )
    return value


# ---------------------------------------------------------------- transitions


def open(
    incident_id: str,
    request: IncidentCreate,
    snapshot: EntitlementSnapshot,
    *,
    opened_at: datetime,
    now: datetime,
    policy: Policy,
) -> Transition:
    """A new active incident with its deadline, and a check at each warning and the deadline."""
    deadline = deadline_for(opened_at, request.priority, snapshot, (), policy.warning_fractions)
    warn_at = _warnings(deadline)
    state = IncidentState(
        id=incident_id,
        customer_id=request.customer_id,
        external_ref=request.external_ref,
        priority=request.priority,
        opened_at=opened_at,
        context=request.context,
        entitlement=snapshot,
        tier=snapshot.tier,
        fast_track=snapshot.fast_track_used,
        target_minutes=deadline.target.minutes,
        coverage=deadline.target.coverage,
        target_source=deadline.target.source,
        due_at=deadline.due_at,
        warn_at=warn_at,
        warnings_sent=0,
        next_warning_at=warn_at[0].at if warn_at else None,
        pauses=(),
        paused_at=None,
        first_response_at=None,
        resolved_at=None,
        sla_status="active",
        breached_at=None,
        escalation_level=0,
        next_escalation_at=None,
        credit_status=None,
        credit_id=None,
        credit_kind=None,
        created_at=now,
        updated_at=now,
    )
    opened = LedgerEvent(
        "opened",
        opened_at,
        {
            "priority": state.priority,
            "tier": snapshot.tier,
            "plan_version": snapshot.plan_version,
            "fast_track": snapshot.fast_track_used,
            "target_minutes": state.target_minutes,
            "coverage": state.coverage,
            "target_source": state.target_source,
            "due_at": iso(state.due_at),
            "warn_at": [iso(w.at) for w in state.warn_at],
        },
    )
    return Transition(state=state, events=(opened,))


def respond(
    state: IncidentState, at: datetime | None, *, now: datetime, policy: Policy
) -> Transition:
    """The first response (default now): achieved within the deadline, else breached.

    A late response to an incident already breached stays breached and stops the
    escalation; one during a pause ends the pause at the response.
    """
    _refuse_resolved(state, "record a first response")
    return _first_response(state, reported_at(state, at, now), now, policy)


def _first_response(
    state: IncidentState, at: datetime, now: datetime, policy: Policy
) -> Transition:
    if state.first_response_at is not None:
        raise IncidentConflict(
            f"the first response of incident {state.id} was recorded at "
            f"{iso(state.first_response_at)}"
        )
    late = LedgerEvent("first_response", at, {"late": True})
    if state.sla_status == "breached":
        answered = replace(state, first_response_at=at, next_escalation_at=None, updated_at=now)
        return Transition(state=answered, events=(late,))
    answered = replace(state, first_response_at=at, updated_at=now)
    if state.paused_at is not None:
        # The clock stopped at paused_at; a response during the pause ends it.
        closed = (ClosedPause(state.paused_at, at),) if at > state.paused_at else ()
        answered = _recomputed(
            replace(answered, sla_status="active", paused_at=None, pauses=state.pauses + closed),
            policy,
        )
    if at <= answered.due_at:
        achieved = replace(answered, sla_status="achieved", next_warning_at=None)
        return Transition(
            state=achieved,
            events=(
                LedgerEvent("first_response", at, {"late": False}),
                LedgerEvent(
                    "achieved", at, {"first_response_at": iso(at), "due_at": iso(achieved.due_at)}
                ),
            ),
            outbound=(announce(achieved, "sla.achieved", first_response_at=iso(at)),),
        )
    return Transition(state=answered, events=(late,)).then(breach(answered, now=now, policy=policy))


def pause(
    state: IncidentState,
    at: datetime | None,
    reason: str | None,
    *,
    now: datetime,
    policy: Policy,
) -> Transition:
    """Stop the clock (waiting on the customer); only an active incident before its deadline."""
    _refuse_resolved(state, "pause it")
    if state.sla_status == "paused":
        since = f" (since {iso(state.paused_at)})" if state.paused_at else ""
        raise IncidentConflict(f"incident {state.id} is already paused{since}")
    if state.sla_status != "active":
        raise IncidentConflict(
            f"incident {state.id} is {state.sla_status}: its first-response clock has stopped"
        )
    when = reported_at(state, at, now)
    if state.pauses and when < state.pauses[-1].end:
        raise InvalidIncidentTime(f"at {iso(when)} is before the end of the last pause", field="at")
    if when >= state.due_at:
        raise IncidentConflict(
            f"the deadline of incident {state.id} passed at {iso(state.due_at)}; "
            "a breached incident cannot be paused"
        )
    paused = replace(
        state, sla_status="paused", paused_at=when, next_warning_at=None, updated_at=now
    )
    event = LedgerEvent("paused", when, {"reason": reason, "due_at": iso(state.due_at)})
    return Transition(state=paused, events=(event,))


def resume(
    state: IncidentState, at: datetime | None, *, now: datetime, policy: Policy
) -> Transition:
    """Restart the clock; the deadline moves out by the paused business time."""
    _refuse_resolved(state, "resume it")
    if state.sla_status != "paused" or state.paused_at is None:
        raise IncidentConflict(f"incident {state.id} is {state.sla_status}, not paused")
    when = reported_at(state, at, now)
    if when < state.paused_at:
        raise InvalidIncidentTime(
            f"at {iso(when)} is before the pause began ({iso(state.paused_at)})", field="at"
        )
    resumed = _recomputed(
        replace(
            state,
            sla_status="active",
            paused_at=None,
            pauses=(*state.pauses, ClosedPause(state.paused_at, when)),
            updated_at=now,
        ),
        policy,
    )
    event = LedgerEvent(
        "resumed",
        when,
        {
            "paused_from": iso(state.paused_at),
            "previous_due_at": iso(state.due_at),
            "due_at": iso(resumed.due_at),
        },
    )
    return Transition(state=resumed, events=(event,))


def reprioritise(
    state: IncidentState, priority: Priority, *, now: datetime, policy: Policy
) -> Transition:
    """Recompute the deadline from ``opened_at`` with the new priority's target.

    Refused once the outcome is final (achieved or breached); a paused incident keeps
    its clock stopped (the deadline clock skips it) until it resumes.
    """
    _refuse_resolved(state, "change its priority")
    if state.priority == priority:
        return Transition(state=state)
    if state.sla_status in ("achieved", "breached"):
        raise IncidentConflict(
            f"incident {state.id} is already {state.sla_status}; its SLA outcome is final"
        )
    changed = _recomputed(replace(state, priority=priority, updated_at=now), policy)
    if state.sla_status == "paused":
        changed = replace(changed, next_warning_at=None)
    event = LedgerEvent(
        "priority_changed",
        now,
        {
            "from": state.priority,
            "to": priority,
            "previous_due_at": iso(state.due_at),
            "due_at": iso(changed.due_at),
        },
    )
    return Transition(state=changed, events=(event,))


def resolve(
    state: IncidentState, at: datetime | None, *, now: datetime, policy: Policy
) -> Transition:
    """Close the incident; one without a first response counts the resolution as that response."""
    _refuse_resolved(state, "resolve it again")
    when = reported_at(state, at, now)
    answered = (
        _first_response(state, when, now, policy)
        if state.first_response_at is None
        else Transition(state=state)
    )
    resolved = replace(answered.state, resolved_at=when, next_escalation_at=None, updated_at=now)
    event = LedgerEvent("resolved", when, {"sla_status": resolved.sla_status})
    return answered.then(Transition(state=resolved, events=(event,)))


def breach(state: IncidentState, *, now: datetime, policy: Policy) -> Transition:
    """The breach of an active incident whose deadline has passed (else nothing to do).

    Escalation starts unless the (late) first response is already known; the credit
    is settled by a job, because it calls Stripe.
    """
    if state.sla_status != "active" or state.due_at > now:
        return Transition(state=state)
    level, upcoming = 0, None
    if state.first_response_at is None:
        level, upcoming = deadlines.escalation(state.due_at, now, policy.escalation_minutes)
    breached = replace(
        state,
        sla_status="breached",
        breached_at=now,
        escalation_level=level,
        next_escalation_at=upcoming,
        next_warning_at=None,
        credit_status="pending",
        updated_at=now,
    )
    reached = range(1, level + 1)
    lateness_ms = (now - state.due_at) // _MILLISECOND
    about = summary(breached)
    return Transition(
        state=breached,
        events=(
            LedgerEvent("breached", now, {"due_at": iso(state.due_at), "lateness_ms": lateness_ms}),
            *(LedgerEvent("escalated", now, {"level": n}) for n in reached),
        ),
        outbound=(
            Outbound("sla.breached", {**about, "breached_at": iso(now)}),
            *(Outbound("sla.escalated", {**about, "escalation_level": n}) for n in reached),
        ),
        jobs=(job("sla_credit", state.id, now),),
    )


def escalate(state: IncidentState, *, now: datetime, policy: Policy) -> Transition:
    """Raise a breached, unanswered, open incident to the level reached at ``now``."""
    due = state.next_escalation_at
    if (
        state.sla_status != "breached"
        or state.first_response_at is not None
        or state.resolved_at is not None
        or due is None
        or due > now
    ):
        return Transition(state=state)
    level, upcoming = deadlines.escalation(state.due_at, now, policy.escalation_minutes)
    escalated = replace(
        state,
        escalation_level=max(level, state.escalation_level),
        next_escalation_at=upcoming,
        updated_at=now,
    )
    reached = range(state.escalation_level + 1, level + 1)
    about = summary(escalated)
    return Transition(
        state=escalated,
        events=tuple(LedgerEvent("escalated", now, {"level": n}) for n in reached),
        outbound=tuple(
            Outbound("sla.escalated", {**about, "escalation_level": n}) for n in reached
        ),
    )


def warn(state: IncidentState, ts: int, *, now: datetime, policy: Policy) -> Transition:
    """The warning scheduled at ``ts`` (epoch µs) and every unrecorded one before it, once
    each and in order; nothing once the incident left ``active`` or its deadline passed."""
    index = (
        warning_index(state.warn_at, state.warnings_sent, ts)
        if state.sla_status == "active"
        else None
    )
    if index is None or state.due_at <= now:
        return Transition(state=state)
    recorded = state.warn_at[state.warnings_sent : index + 1]
    upcoming = state.warn_at[index + 1 :]
    warned = replace(
        state,
        warnings_sent=index + 1,
        next_warning_at=upcoming[0].at if upcoming else None,
        updated_at=now,
    )
    return Transition(
        state=warned,
        events=tuple(
            LedgerEvent("warning", now, {"fraction": w.fraction, "warn_at": iso(w.at)})
            for w in recorded
        ),
        outbound=tuple(
            announce(warned, "sla.warning", fraction=w.fraction, warn_at=iso(w.at))
            for w in recorded
        ),
    )


def credit_issued(state: IncidentState, credit: dict[str, Any], now: datetime) -> Transition:
    """The ledger entry and announcement of a credit the store has just recorded as issued."""
    return Transition(
        state=state,
        events=(LedgerEvent("credit_issued", now, {"service_credit": credit}),),
        outbound=(announce(state, "service_credit.issued", service_credit=credit),),
    )
