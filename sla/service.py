"""Incident use cases: open, read, respond, pause, resume, re-prioritise, resolve, quote.

Every change locks the incident row (``SELECT … FOR UPDATE``), runs a pure transition
of ``sla.incident`` and writes it with ``sla.store`` (the row, its ledger entries and
its outbound events) in one transaction.  Work for the worker (deadline checks,
escalations, credits) is returned as ``SlaJob`` values for the caller to enqueue once
the change committed: this package never talks to Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from billing import service as billing
from common.clock import utcnow
from common.config import get_settings
from common.db import engine
from common.ids import new_id
from sla import enforcement, incident, reports, store, terms
from sla.deadlines import Deadline
from sla.exceptions import IncidentNotFound, InvalidCalendar
from sla.incident import IncidentState, Policy, Transition, not_future, to_incident
from sla.schemas import (
    EffectiveTarget,
    Incident,
    IncidentCreate,
    Priority,
    Quote,
    QuoteFastTrack,
    SlaEvent,
    SlaJob,
    SlaStatus,
)

# Admin use cases of the breach credit (the worker runs the same): re-issue a failed one,
# and settle it now.
retry_credit = enforcement.retry_credit
settle_credit = enforcement.settle_credit

# Reports (finance, admin; helpdesk too): attainment per tier and priority, and per tier
# revenue vs credits vs attainment side by side with standard. Each has a CSV form.
sla_report = reports.sla_report
worth_it_report = reports.worth_it_report
sla_csv = reports.sla_csv
worth_it_csv = reports.worth_it_csv


def _policy() -> Policy:
    return Policy.from_settings(get_settings())


# ---------------------------------------------------------------- open


class Opened(msgspec.Struct, frozen=True):
    incident: Incident
    created: bool
    jobs: list[SlaJob]


class _LostRace(Exception):
    """Another request opened the same ticket first; this transaction must roll back."""


async def open_incident(data: IncidentCreate) -> Opened:
    """Open an incident, or return the one already open for this ticket (``created`` False)."""
    now = utcnow()
    opened_at = now if data.opened_at is None else not_future(data.opened_at, now, "opened_at")
    existing = await store.by_ticket(data.customer_id, data.external_ref)
    if existing is not None:
        return Opened(incident=to_incident(existing), created=False, jobs=[])
    try:
        return await _open(data, opened_at, now)
    except _LostRace:
        # The billing claim rolled back with this transaction: the ticket counts once.
        existing = await store.by_ticket(data.customer_id, data.external_ref)
        if existing is None:  # pragma: no cover - the winner's row is committed by now
            raise
        return Opened(incident=to_incident(existing), created=False, jobs=[])


async def _open(data: IncidentCreate, opened_at: datetime, now: datetime) -> Opened:
    async with engine().transaction():
        customer = await billing.get_customer(data.customer_id)
        calendar = terms.calendar_of(customer)
        terms.schedule_of(calendar)  # refuse an unusable calendar before billing counts it
        incident_id = new_id("inc")
        claim = await billing.claim_incident(
            data.customer_id, incident_id, opened_at, fast_track=data.fast_track
        )
        snapshot = terms.snapshot_from(
            claim.entitlement,
            calendar,
            fast_track=claim.fast_track_used,
            purchase_id=claim.fast_track_purchase_id,
            overage=claim.overage,
        )
        opened = incident.open(
            incident_id, data, snapshot, opened_at=opened_at, now=now, policy=_policy()
        )
        if not await store.insert_opened(opened):
            raise _LostRace
    return Opened(incident=to_incident(opened.state), created=True, jobs=list(opened.jobs))


# ---------------------------------------------------------------- read


async def get_incident(incident_id: str) -> Incident:
    state = await store.read(incident_id)
    if state is None:
        raise IncidentNotFound(f"no incident {incident_id}")
    return to_incident(state)


async def list_incidents(
    *,
    limit: int,
    starting_after: str | None = None,
    customer_id: str | None = None,
    sla_status: SlaStatus | None = None,
    priority: Priority | None = None,
) -> tuple[list[Incident], bool]:
    """Newest first (ids sort by creation)."""
    states, more = await store.page(
        limit=limit,
        starting_after=starting_after,
        customer_id=customer_id,
        sla_status=sla_status,
        priority=priority,
    )
    return [to_incident(s) for s in states], more


async def list_events(
    incident_id: str, *, limit: int, starting_after: str | None = None
) -> tuple[list[SlaEvent], bool]:
    """The ledger of one incident, oldest first."""
    if not await store.exists(incident_id):
        raise IncidentNotFound(f"no incident {incident_id}")
    return await store.events_page(incident_id, limit=limit, starting_after=starting_after)


# ---------------------------------------------------------------- changes


class Changed(msgspec.Struct, frozen=True):
    incident: Incident
    jobs: list[SlaJob]


Step = Callable[[IncidentState, datetime, Policy], Transition]


async def _change(incident_id: str, step: Step) -> Changed:
    """Lock, transition, store: one transaction; the jobs are the caller's to schedule."""
    now = utcnow()
    async with engine().transaction():
        before = await store.locked(incident_id)
        after = step(before, now, _policy())
        await store.apply(before, after)
    return Changed(incident=to_incident(after.state), jobs=list(after.jobs))


async def record_first_response(incident_id: str, at: datetime | None = None) -> Changed:
    """Achieved when ``at`` (default now) is within the deadline, else breached."""
    return await _change(
        incident_id, lambda state, now, policy: incident.respond(state, at, now=now, policy=policy)
    )


async def pause(incident_id: str, at: datetime | None = None, reason: str | None = None) -> Changed:
    """Stop the clock (waiting on the customer); only an active, unbreached incident pauses."""
    return await _change(
        incident_id,
        lambda state, now, policy: incident.pause(state, at, reason, now=now, policy=policy),
    )


async def resume(incident_id: str, at: datetime | None = None) -> Changed:
    """Restart the clock; the deadline moves out by the paused business time."""
    return await _change(
        incident_id, lambda state, now, policy: incident.resume(state, at, now=now, policy=policy)
    )


async def change_priority(incident_id: str, priority: Priority) -> Changed:
    """Recompute the deadline from ``opened_at`` with the new priority's target."""
    return await _change(
        incident_id,
        lambda state, now, policy: incident.reprioritise(state, priority, now=now, policy=policy),
    )


async def resolve(incident_id: str, at: datetime | None = None) -> Changed:
    """Close the incident; one without a first response counts the resolution as that response."""
    return await _change(
        incident_id, lambda state, now, policy: incident.resolve(state, at, now=now, policy=policy)
    )


# ---------------------------------------------------------------- quote


async def quote(customer_id: str, priority: Priority, opened_at: datetime | None = None) -> Quote:
    """The deadline an incident opened at ``opened_at`` (default now) would get, with and
    without fast-track; the same arithmetic ``open_incident`` applies."""
    now = utcnow()
    at = now if opened_at is None else not_future(opened_at, now, "opened_at")
    customer = await billing.get_customer(customer_id)
    entitlement = await billing.get_entitlement(customer_id, at)
    calendar = terms.calendar_of(customer)
    plain = terms.snapshot_from(entitlement, calendar, fast_track=False)
    fast = terms.snapshot_from(entitlement, calendar, fast_track=True)
    under_plan = terms.deadline_for(at, priority, plain)
    with_fast_track = terms.deadline_for(at, priority, fast)
    ft = entitlement.fast_track
    return Quote(
        customer_id=customer_id,
        priority=priority,
        opened_at=at,
        tier=entitlement.tier,
        plan_version=entitlement.plan_version,
        due_at=under_plan.due_at,
        target=_target(under_plan),
        fast_track=QuoteFastTrack(
            due_at=with_fast_track.due_at,
            price=ft.price,
            credits=ft.credits,
            included=ft.included,
            faster=with_fast_track.due_at < under_plan.due_at,
            first_response_minutes=ft.first_response_minutes,
            available=ft.first_response_minutes is not None
            and (ft.included or ft.credits > 0 or ft.price is not None),
        ),
    )


def _target(deadline: Deadline) -> EffectiveTarget:
    return EffectiveTarget(
        first_response_minutes=deadline.target.minutes,
        coverage=deadline.target.coverage,
        source=deadline.target.source,
    )


# ---------------------------------------------------------------- service credits


async def retry_credit_now(credit_id: str) -> str:
    """Re-issue a failed service credit and pay it here and now (the CLI): what happened."""
    job = await enforcement.retry_credit(credit_id)
    return (await enforcement.settle_credit(job.incident_id)).done


# ---------------------------------------------------------------- calendars


def check_calendar(
    timezone: str, business_hours: dict[str, list[str]] | None, country: str | None
) -> None:
    """Refuse a customer calendar the engine could not count business time on."""
    import zoneinfo

    from sla.calendar import InvalidSchedule, Schedule, country_holidays

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidCalendar(f"unknown IANA timezone {timezone!r}", field="timezone") from None
    if country is not None:
        try:
            country_holidays(country, [utcnow().year])
        except InvalidSchedule as e:
            raise InvalidCalendar(str(e), field="country") from e
    if business_hours is not None:
        try:
            Schedule.from_spec(timezone, business_hours)
        except InvalidSchedule as e:
            raise InvalidCalendar(str(e), field="business_hours") from e
