"""Incident use cases: open, read, respond, pause, resume, re-prioritise, resolve, quote.

Every change runs in one transaction under ``SELECT … FOR UPDATE`` of the incident
row, appends to the SLA event ledger and writes outbound events in that same
transaction.  Work for the worker (deadline checks, escalations, credits) is
returned as ``SlaJob`` values for the caller to enqueue once the change committed:
this package never talks to Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from billing import service as billing
from billing.schemas import Customer, Entitlement
from common.clock import utcnow
from common.config import get_settings
from common.db import engine
from common.ids import new_id
from sla import deadlines
from sla.calendar import InvalidSchedule, Pause, Schedule
from sla.deadlines import Deadline, DeadlineTarget
from sla.exceptions import (
    IncidentConflict,
    IncidentNotFound,
    InvalidCalendar,
    InvalidIncidentTime,
    NoTarget,
)
from sla.schemas import (
    CalendarSpec,
    EffectiveTarget,
    EntitlementSnapshot,
    EventType,
    Incident,
    IncidentCreate,
    JobKind,
    PauseInterval,
    Priority,
    Quote,
    QuoteFastTrack,
    ServiceCreditRef,
    SlaEvent,
    SlaJob,
    SlaStatus,
    TargetSnapshot,
)
from sla.tables import Incident as IncidentRow
from sla.tables import SlaEvent as SlaEventRow
from webhooks import outbox

Row = dict[str, Any]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


# ---------------------------------------------------------------- small helpers


def micros(at: datetime) -> int:
    """Epoch microseconds: the exact, comparable form of an instant in job ids and arguments."""
    return (at - _EPOCH) // _MICROSECOND


def job(kind: JobKind, incident_id: str, at: datetime) -> SlaJob:
    return SlaJob(kind=kind, incident_id=incident_id, at=at, ts=micros(at))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidIncidentTime(f"{field} must carry a timezone offset", field=field)
    return value.astimezone(UTC)


def _not_future(value: datetime, now: datetime, field: str) -> datetime:
    at = _aware(value, field)
    if at > now:
        raise InvalidIncidentTime(
            f"{field} {iso(at)} is in the future (now is {iso(now)})", field=field
        )
    return at


def snapshot_of(row: Row) -> EntitlementSnapshot:
    return msgspec.convert(row["entitlement"], EntitlementSnapshot)


def pauses_of(row: Row) -> list[Pause]:
    return [(parse_instant(a), parse_instant(b)) for a, b in row["pauses"] or []]


def calendar_of(customer: Customer) -> CalendarSpec:
    hours = customer.business_hours
    if hours is None:
        hours = {day: list(windows) for day, windows in deadlines.DEFAULT_BUSINESS_HOURS.items()}
    return CalendarSpec(timezone=customer.timezone, business_hours=hours, country=customer.country)


def schedule_of(calendar: CalendarSpec) -> Schedule:
    try:
        return deadlines.build_schedule(
            calendar.timezone, calendar.business_hours, calendar.country, calendar.holidays
        )
    except InvalidSchedule as e:
        raise InvalidCalendar(f"the customer's calendar cannot be used: {e}") from e


def targets_for(snapshot: EntitlementSnapshot, priority: str) -> list[DeadlineTarget]:
    """The plan's target for ``priority``, then the fast-track's when the incident uses one."""
    plan = snapshot.targets.get(priority)
    if plan is None:
        raise NoTarget(f"the {snapshot.tier} tier has no target for {priority}", field="priority")
    out = [DeadlineTarget(plan.first_response_minutes, plan.coverage, "plan")]
    if snapshot.fast_track_used and snapshot.fast_track_minutes:
        out.append(
            DeadlineTarget(snapshot.fast_track_minutes, snapshot.fast_track_coverage, "fast_track")
        )
    return out


def deadline_for(
    opened_at: datetime,
    priority: str,
    snapshot: EntitlementSnapshot,
    pauses: Sequence[Pause] = (),
) -> Deadline:
    return deadlines.effective_deadline(
        opened_at,
        targets_for(snapshot, priority),
        schedule_of(snapshot.calendar),
        pauses,
        get_settings().sla_warning_fractions,
    )


def deadline_columns(deadline: Deadline, warnings_sent: int) -> Row:
    """The columns that follow from a (re)computed deadline."""
    pending = deadline.warnings[warnings_sent:]
    return {
        "due_at": deadline.due_at,
        "warn_at": [{"fraction": w.fraction, "at": iso(w.at)} for w in deadline.warnings],
        "next_warning_at": pending[0].at if pending else None,
        "target_minutes": deadline.target.minutes,
        "coverage": deadline.target.coverage,
        "target_source": deadline.target.source,
    }


def deadline_checks(incident_id: str, deadline: Deadline, warnings_sent: int) -> list[SlaJob]:
    """One check per pending warning instant and one at the deadline."""
    checks = [job("sla_warning", incident_id, w.at) for w in deadline.warnings[warnings_sent:]]
    checks.append(job("sla_due", incident_id, deadline.due_at))
    return checks


def summary(row: Row, **extra: Any) -> dict[str, Any]:
    """The body of an outbound SLA event."""
    return {
        "incident_id": row["id"],
        "customer_id": row["customer_id"],
        "external_ref": row["external_ref"],
        "priority": row["priority"],
        "tier": row["tier"],
        "sla_status": row["sla_status"],
        "opened_at": iso(row["opened_at"]),
        "due_at": iso(row["due_at"]),
        **extra,
    }


# Hot paths (every open, every check of the worker) write with plain SQL: Piccolo's
# query building costs more than the round trip here.  Column names below come from
# this module, never from input; every value is a bound parameter.

_JSON_COLUMNS: Final = frozenset({"context", "entitlement", "warn_at", "pauses"})

EventValues = tuple[str, str, str, str, datetime, str, datetime]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _decoded(row: Row) -> Row:
    """A raw query's row with its JSONB columns parsed (Piccolo's raw() leaves them text)."""
    return {
        k: msgspec.json.decode(v) if k in _JSON_COLUMNS and isinstance(v, str) else v
        for k, v in row.items()
    }


async def fetch(sql: str, *args: Any) -> list[Row]:
    """Rows of incident-shaped SQL, in the caller's transaction when there is one."""
    rows: list[Row] = await IncidentRow.raw(sql, *args)
    return [_decoded(r) for r in rows]


def event_row(
    row: Row, type_: EventType, at: datetime, data: dict[str, Any] | None = None
) -> EventValues:
    """One ledger entry, ready for ``append_events``."""
    return (new_id("sev"), row["id"], row["customer_id"], type_, at, _json(data or {}), utcnow())


async def append_events(*events: EventValues) -> None:
    if not events:
        return
    rows = ", ".join("({}, {}, {}, {}, {}, {}::jsonb, {})" for _ in events)
    sql = f"INSERT INTO sla_event (id, incident_id, customer_id, type, at, data, created_at) VALUES {rows}"  # noqa: S608, E501 - placeholders only
    await IncidentRow.raw(sql, *(value for event in events for value in event))


async def emit(event_type: str, row: Row, **extra: Any) -> None:
    await outbox.emit(event_type, summary(row, **extra), customer_id=row["customer_id"])


async def save(row: Row, changes: Row) -> Row:
    """Write ``changes`` to the (locked) incident and return the row as it now is."""
    changes = {**changes, "updated_at": utcnow()}
    sets = ", ".join(
        f"{column} = {{}}::jsonb" if column in _JSON_COLUMNS else f"{column} = {{}}"
        for column in changes
    )
    values = [_json(v) if k in _JSON_COLUMNS else v for k, v in changes.items()]
    sql = f"UPDATE incident SET {sets} WHERE id = {{}}"  # noqa: S608 - own column names, bound values
    await IncidentRow.raw(sql, *values, row["id"])
    return {**row, **changes}


async def locked(incident_id: str) -> Row:
    """The incident row under ``FOR UPDATE`` (inside the caller's transaction)."""
    rows = await fetch("SELECT * FROM incident WHERE id = {} FOR UPDATE", incident_id)
    if not rows:
        raise IncidentNotFound(f"no incident {incident_id}")
    return rows[0]


def to_schema(row: Row) -> Incident:
    snapshot = snapshot_of(row)
    credit = (
        ServiceCreditRef(id=row["credit_id"], kind=row["credit_kind"], status=row["credit_status"])
        if row["credit_id"]
        else None
    )
    return Incident(
        id=row["id"],
        customer_id=row["customer_id"],
        external_ref=row["external_ref"],
        priority=row["priority"],
        opened_at=row["opened_at"],
        due_at=row["due_at"],
        warn_at=[parse_instant(w["at"]) for w in row["warn_at"] or []],
        sla_status=row["sla_status"],
        fast_track=row["fast_track"],
        tier=row["tier"],
        plan_version=snapshot.plan_version,
        target=EffectiveTarget(
            first_response_minutes=row["target_minutes"],
            coverage=row["coverage"],
            source=row["target_source"],
        ),
        pauses=[PauseInterval(a, b) for a, b in pauses_of(row)],
        paused_at=row["paused_at"],
        first_response_at=row["first_response_at"],
        resolved_at=row["resolved_at"],
        breached_at=row["breached_at"],
        escalation_level=row["escalation_level"],
        service_credit=credit,
        context=row["context"] or {},
        entitlement=snapshot,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# ---------------------------------------------------------------- the snapshot


def snapshot_from(
    entitlement: Entitlement,
    calendar: CalendarSpec,
    *,
    fast_track: bool,
    purchase_id: str | None = None,
    overage: bool = False,
) -> EntitlementSnapshot:
    """What an incident keeps of its entitlement; a plan that includes fast-track uses it always."""
    ft = entitlement.fast_track
    return EntitlementSnapshot(
        tier=entitlement.tier,
        plan_version=entitlement.plan_version,
        targets={
            p: TargetSnapshot(first_response_minutes=t.first_response_minutes, coverage=t.coverage)
            for p, t in entitlement.targets.items()
        },
        fast_track_used=(fast_track or ft.included) and ft.first_response_minutes is not None,
        fast_track_minutes=ft.first_response_minutes,
        fast_track_coverage=ft.coverage,
        fast_track_purchase_id=purchase_id,
        overage=overage,
        calendar=calendar,
        basis=entitlement.basis,
    )


# ---------------------------------------------------------------- breach and escalation


async def breach(row: Row, now: datetime) -> tuple[Row, list[SlaJob]]:
    """Record the breach of a locked incident whose deadline has passed."""
    rows, jobs = await breach_many([row], now)
    return rows[0], jobs


async def breach_many(rows: Sequence[Row], now: datetime) -> tuple[list[Row], list[SlaJob]]:
    """Record the breach of locked incidents whose deadlines have passed, in three statements
    and the outbound events.

    Escalation starts unless the (late) first response is already known; the credit is
    settled by a job, outside this transaction, because it calls Stripe.
    """
    if not rows:
        return [], []
    ladder = get_settings().sla_escalation_minutes
    updated: list[Row] = []
    for row in rows:
        level, upcoming = 0, None
        if row["first_response_at"] is None:
            level, upcoming = deadlines.escalation(row["due_at"], now, ladder)
        updated.append(
            {
                **row,
                "sla_status": "breached",
                "breached_at": now,
                "escalation_level": level,
                "next_escalation_at": upcoming,
                "next_warning_at": None,
                "credit_status": "pending",
                "updated_at": now,
            }
        )
    await IncidentRow.raw(
        "UPDATE incident AS i SET sla_status = 'breached', breached_at = {},"
        " escalation_level = u.level, next_escalation_at = u.next_at, next_warning_at = NULL,"
        " credit_status = 'pending', updated_at = {}"
        " FROM unnest({}::text[], {}::int[], {}::timestamptz[]) AS u(id, level, next_at)"
        " WHERE i.id = u.id",
        now,
        now,
        [r["id"] for r in updated],
        [r["escalation_level"] for r in updated],
        [r["next_escalation_at"] for r in updated],
    )
    events: list[EventValues] = []
    jobs: list[SlaJob] = []
    for r in updated:
        lateness_ms = (now - r["due_at"]) // timedelta(milliseconds=1)
        events.append(
            event_row(r, "breached", now, {"due_at": iso(r["due_at"]), "lateness_ms": lateness_ms})
        )
        events += [
            event_row(r, "escalated", now, {"level": n})
            for n in range(1, r["escalation_level"] + 1)
        ]
        jobs.append(job("sla_credit", r["id"], now))
        if r["next_escalation_at"] is not None:
            jobs.append(job("sla_escalate", r["id"], r["next_escalation_at"]))
    await append_events(*events)
    for r in updated:
        await emit("sla.breached", r, breached_at=iso(now))
        for n in range(1, r["escalation_level"] + 1):
            await emit("sla.escalated", r, escalation_level=n)
    return updated, jobs


async def escalate_locked(row: Row, now: datetime) -> tuple[Row, list[SlaJob]]:
    """Raise a locked, breached and unanswered incident to the level reached at ``now``."""
    if (
        row["sla_status"] != "breached"
        or row["first_response_at"] is not None
        or row["resolved_at"] is not None
        or row["next_escalation_at"] is None
        or row["next_escalation_at"] > now
    ):
        return row, []
    level, upcoming = deadlines.escalation(
        row["due_at"], now, get_settings().sla_escalation_minutes
    )
    previous = row["escalation_level"]
    row = await save(
        row, {"escalation_level": max(level, previous), "next_escalation_at": upcoming}
    )
    reached = range(previous + 1, level + 1)
    await append_events(*(event_row(row, "escalated", now, {"level": n}) for n in reached))
    for n in reached:
        await emit("sla.escalated", row, escalation_level=n)
    return row, [job("sla_escalate", row["id"], upcoming)] if upcoming is not None else []


# ---------------------------------------------------------------- open


class Opened(msgspec.Struct, frozen=True):
    incident: Incident
    created: bool
    jobs: list[SlaJob]


async def _by_ticket(customer_id: str, external_ref: str) -> Row | None:
    rows = await fetch(
        "SELECT * FROM incident WHERE customer_id = {} AND external_ref = {}",
        customer_id,
        external_ref,
    )
    return rows[0] if rows else None


class _LostRace(Exception):
    """Another request opened the same ticket first; this transaction must roll back."""


_INSERT_OPENED: Final = (
    "WITH incident_row AS (INSERT INTO incident (id, customer_id, external_ref, priority,"
    " opened_at, context, entitlement, tier, fast_track, target_minutes, coverage,"
    " target_source, due_at, warn_at, next_warning_at, sla_status, created_at, updated_at)"
    " VALUES ({}, {}, {}, {}, {}, {}::jsonb, {}::jsonb, {}, {}, {}, {}, {}, {}, {}::jsonb, {},"
    " 'active', {}, {}) ON CONFLICT (customer_id, external_ref) DO NOTHING RETURNING id)"
    " INSERT INTO sla_event (id, incident_id, customer_id, type, at, data, created_at)"
    " SELECT {}, id, {}, 'opened', {}, {}::jsonb, {} FROM incident_row RETURNING incident_id"
)


async def _insert_opened(row: Row, event: dict[str, Any]) -> bool:
    """The new incident and its ``opened`` event in one statement (the hot path of opening).

    False when the ticket was opened meanwhile: the unique (customer_id, external_ref)
    makes a concurrent insert wait for the other transaction, then do nothing.
    """
    inserted = await IncidentRow.raw(
        _INSERT_OPENED,
        row["id"],
        row["customer_id"],
        row["external_ref"],
        row["priority"],
        row["opened_at"],
        _json(row["context"]),
        _json(row["entitlement"]),
        row["tier"],
        row["fast_track"],
        row["target_minutes"],
        row["coverage"],
        row["target_source"],
        row["due_at"],
        _json(row["warn_at"]),
        row["next_warning_at"],
        row["created_at"],
        row["updated_at"],
        new_id("sev"),
        row["customer_id"],
        row["opened_at"],
        _json(event),
        row["created_at"],
    )
    return bool(inserted)


async def open_incident(data: IncidentCreate) -> Opened:
    """Open an incident, or return the one already open for this ticket (``created`` False)."""
    now = utcnow()
    opened_at = now if data.opened_at is None else _not_future(data.opened_at, now, "opened_at")
    existing = await _by_ticket(data.customer_id, data.external_ref)
    if existing is not None:
        return Opened(incident=to_schema(existing), created=False, jobs=[])
    try:
        return await _open(data, opened_at, now)
    except _LostRace:
        # The billing claim rolled back with this transaction: the ticket counts once.
        existing = await _by_ticket(data.customer_id, data.external_ref)
        if existing is None:  # pragma: no cover - the winner's row is committed by now
            raise
        return Opened(incident=to_schema(existing), created=False, jobs=[])


async def _open(data: IncidentCreate, opened_at: datetime, now: datetime) -> Opened:
    async with engine().transaction():
        customer = await billing.get_customer(data.customer_id)
        calendar = calendar_of(customer)
        schedule_of(calendar)  # refuse an unusable calendar before billing counts the incident
        incident_id = new_id("inc")
        claim = await billing.claim_incident(
            data.customer_id, incident_id, opened_at, fast_track=data.fast_track
        )
        snapshot = snapshot_from(
            claim.entitlement,
            calendar,
            fast_track=claim.fast_track_used,
            purchase_id=claim.fast_track_purchase_id,
            overage=claim.overage,
        )
        deadline = deadline_for(opened_at, data.priority, snapshot)
        row: Row = {
            "id": incident_id,
            "customer_id": data.customer_id,
            "external_ref": data.external_ref,
            "priority": data.priority,
            "opened_at": opened_at,
            "context": data.context,
            "entitlement": msgspec.to_builtins(snapshot),
            "tier": snapshot.tier,
            "fast_track": snapshot.fast_track_used,
            "warnings_sent": 0,
            "pauses": [],
            "paused_at": None,
            "first_response_at": None,
            "resolved_at": None,
            "sla_status": "active",
            "breached_at": None,
            "escalation_level": 0,
            "next_escalation_at": None,
            "credit_status": None,
            "credit_id": None,
            "credit_kind": None,
            "created_at": now,
            "updated_at": now,
            **deadline_columns(deadline, 0),
        }
        opened_event = {
            "priority": data.priority,
            "tier": snapshot.tier,
            "plan_version": snapshot.plan_version,
            "fast_track": snapshot.fast_track_used,
            "target_minutes": deadline.target.minutes,
            "coverage": deadline.target.coverage,
            "target_source": deadline.target.source,
            "due_at": iso(deadline.due_at),
            "warn_at": [iso(w.at) for w in deadline.warnings],
        }
        if not await _insert_opened(row, opened_event):
            raise _LostRace
    return Opened(
        incident=to_schema(row), created=True, jobs=deadline_checks(incident_id, deadline, 0)
    )


# ---------------------------------------------------------------- read


async def get_incident(incident_id: str) -> Incident:
    row = (
        await IncidentRow.select()
        .where(IncidentRow.id == incident_id)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise IncidentNotFound(f"no incident {incident_id}")
    return to_schema(row)


async def list_incidents(
    *,
    limit: int,
    starting_after: str | None = None,
    customer_id: str | None = None,
    sla_status: SlaStatus | None = None,
    priority: Priority | None = None,
) -> tuple[list[Incident], bool]:
    """Newest first (ids sort by creation)."""
    query = (
        IncidentRow.select()
        .order_by(IncidentRow.id, ascending=False)
        .limit(limit + 1)
        .output(load_json=True)
    )
    if starting_after:
        query = query.where(IncidentRow.id < starting_after)
    if customer_id:
        query = query.where(IncidentRow.customer_id == customer_id)
    if sla_status:
        query = query.where(IncidentRow.sla_status == sla_status)
    if priority:
        query = query.where(IncidentRow.priority == priority)
    rows = await query
    return [to_schema(r) for r in rows[:limit]], len(rows) > limit


async def list_events(
    incident_id: str, *, limit: int, starting_after: str | None = None
) -> tuple[list[SlaEvent], bool]:
    """The ledger of one incident, oldest first."""
    if not await IncidentRow.exists().where(IncidentRow.id == incident_id):
        raise IncidentNotFound(f"no incident {incident_id}")
    query = (
        SlaEventRow.select()
        .where(SlaEventRow.incident_id == incident_id)
        .order_by(SlaEventRow.seq)
        .limit(limit + 1)
        .output(load_json=True)
    )
    if starting_after:
        after = await (
            SlaEventRow.select(SlaEventRow.seq)
            .where((SlaEventRow.id == starting_after) & (SlaEventRow.incident_id == incident_id))
            .first()
        )
        if after is None:
            raise IncidentNotFound(f"no event {starting_after} on incident {incident_id}")
        query = query.where(SlaEventRow.seq > after["seq"])
    rows = await query
    events = [
        SlaEvent(
            id=r["id"],
            incident_id=r["incident_id"],
            customer_id=r["customer_id"],
            type=r["type"],
            at=r["at"],
            data=r["data"] or {},
        )
        for r in rows[:limit]
    ]
    return events, len(rows) > limit


# ---------------------------------------------------------------- changes


class Changed(msgspec.Struct, frozen=True):
    incident: Incident
    jobs: list[SlaJob]


def _refuse_resolved(row: Row, action: str) -> None:
    if row["resolved_at"] is not None:
        raise IncidentConflict(
            f"incident {row['id']} was resolved at {iso(row['resolved_at'])}; cannot {action}"
        )


def _when(at: datetime | None, row: Row, now: datetime, field: str = "at") -> datetime:
    """A reported instant: defaults to now, never in the future nor before the opening."""
    value = now if at is None else _not_future(at, now, field)
    if value < row["opened_at"]:
        raise InvalidIncidentTime(
            f"{field} {iso(value)} is before the incident was opened ({iso(row['opened_at'])})",
            field=field,
        )
    return value


async def _record_first_response(row: Row, at: datetime, now: datetime) -> tuple[Row, list[SlaJob]]:
    """Achieved when ``at`` is within the deadline, else breached (now, if not already)."""
    if row["first_response_at"] is not None:
        raise IncidentConflict(
            f"the first response of incident {row['id']} was recorded at "
            f"{iso(row['first_response_at'])}"
        )
    if row["sla_status"] == "breached":
        row = await save(row, {"first_response_at": at, "next_escalation_at": None})
        await append_events(event_row(row, "first_response", at, {"late": True}))
        return row, []
    changes: Row = {"first_response_at": at}
    if row["sla_status"] == "paused":
        # The clock stopped at paused_at; a response during the pause ends it.
        pauses = list(row["pauses"])
        if at > row["paused_at"]:
            pauses.append([iso(row["paused_at"]), iso(at)])
        changes["pauses"] = pauses
        changes["paused_at"] = None
        deadline = deadline_for(
            row["opened_at"], row["priority"], snapshot_of(row), pauses_of({"pauses": pauses})
        )
        changes.update(deadline_columns(deadline, row["warnings_sent"]))
    due_at: datetime = changes["due_at"] if "due_at" in changes else row["due_at"]
    if at <= due_at:
        row = await save(row, {**changes, "sla_status": "achieved", "next_warning_at": None})
        await append_events(
            event_row(row, "first_response", at, {"late": False}),
            event_row(row, "achieved", at, {"first_response_at": iso(at), "due_at": iso(due_at)}),
        )
        await emit("sla.achieved", row, first_response_at=iso(at))
        return row, []
    row = await save(row, changes)
    await append_events(event_row(row, "first_response", at, {"late": True}))
    return await breach(row, now)


async def record_first_response(incident_id: str, at: datetime | None = None) -> Changed:
    now = utcnow()
    async with engine().transaction():
        row = await locked(incident_id)
        _refuse_resolved(row, "record a first response")
        when = _when(at, row, now)
        row, jobs = await _record_first_response(row, when, now)
    return Changed(incident=to_schema(row), jobs=jobs)


async def pause(incident_id: str, at: datetime | None = None, reason: str | None = None) -> Changed:
    """Stop the clock (waiting on the customer); only an active, unbreached incident pauses."""
    now = utcnow()
    async with engine().transaction():
        row = await locked(incident_id)
        _refuse_resolved(row, "pause it")
        status = row["sla_status"]
        if status == "paused":
            raise IncidentConflict(
                f"incident {incident_id} is already paused (since {iso(row['paused_at'])})"
            )
        if status != "active":
            raise IncidentConflict(
                f"incident {incident_id} is {status}: its first-response clock has stopped"
            )
        when = _when(at, row, now)
        if row["pauses"] and when < parse_instant(row["pauses"][-1][1]):
            raise InvalidIncidentTime(
                f"at {iso(when)} is before the end of the last pause", field="at"
            )
        if when >= row["due_at"]:
            raise IncidentConflict(
                f"the deadline of incident {incident_id} passed at {iso(row['due_at'])}; "
                "a breached incident cannot be paused"
            )
        row = await save(row, {"sla_status": "paused", "paused_at": when, "next_warning_at": None})
        await append_events(
            event_row(row, "paused", when, {"reason": reason, "due_at": iso(row["due_at"])})
        )
    return Changed(incident=to_schema(row), jobs=[])


async def resume(incident_id: str, at: datetime | None = None) -> Changed:
    """Restart the clock; the deadline moves out by the paused business time."""
    now = utcnow()
    async with engine().transaction():
        row = await locked(incident_id)
        _refuse_resolved(row, "resume it")
        if row["sla_status"] != "paused":
            raise IncidentConflict(f"incident {incident_id} is {row['sla_status']}, not paused")
        when = _when(at, row, now)
        if when < row["paused_at"]:
            raise InvalidIncidentTime(
                f"at {iso(when)} is before the pause began ({iso(row['paused_at'])})", field="at"
            )
        pauses = [*row["pauses"], [iso(row["paused_at"]), iso(when)]]
        deadline = deadline_for(
            row["opened_at"], row["priority"], snapshot_of(row), pauses_of({"pauses": pauses})
        )
        previous = row["due_at"]
        row = await save(
            row,
            {
                "sla_status": "active",
                "paused_at": None,
                "pauses": pauses,
                **deadline_columns(deadline, row["warnings_sent"]),
            },
        )
        await append_events(
            event_row(
                row,
                "resumed",
                when,
                {
                    "paused_from": pauses[-1][0],
                    "previous_due_at": iso(previous),
                    "due_at": iso(deadline.due_at),
                },
            )
        )
    return Changed(
        incident=to_schema(row), jobs=deadline_checks(incident_id, deadline, row["warnings_sent"])
    )


async def change_priority(incident_id: str, priority: Priority) -> Changed:
    """Recompute the deadline from ``opened_at`` with the new priority's target."""
    now = utcnow()
    async with engine().transaction():
        row = await locked(incident_id)
        _refuse_resolved(row, "change its priority")
        if row["priority"] == priority:
            return Changed(incident=to_schema(row), jobs=[])
        if row["sla_status"] in ("achieved", "breached"):
            raise IncidentConflict(
                f"incident {incident_id} is already {row['sla_status']}; its SLA outcome is final"
            )
        deadline = deadline_for(row["opened_at"], priority, snapshot_of(row), pauses_of(row))
        previous = {"priority": row["priority"], "due_at": row["due_at"]}
        changes = {"priority": priority, **deadline_columns(deadline, row["warnings_sent"])}
        if row["sla_status"] == "paused":
            changes["next_warning_at"] = None
        row = await save(row, changes)
        await append_events(
            event_row(
                row,
                "priority_changed",
                now,
                {
                    "from": previous["priority"],
                    "to": priority,
                    "previous_due_at": iso(previous["due_at"]),
                    "due_at": iso(deadline.due_at),
                },
            )
        )
    jobs = (
        []
        if row["sla_status"] == "paused"
        else deadline_checks(incident_id, deadline, row["warnings_sent"])
    )
    return Changed(incident=to_schema(row), jobs=jobs)


async def resolve(incident_id: str, at: datetime | None = None) -> Changed:
    """Close the incident; one without a first response counts the resolution as that response."""
    now = utcnow()
    jobs: list[SlaJob] = []
    async with engine().transaction():
        row = await locked(incident_id)
        _refuse_resolved(row, "resolve it again")
        when = _when(at, row, now)
        if row["first_response_at"] is None:
            row, jobs = await _record_first_response(row, when, now)
        row = await save(row, {"resolved_at": when, "next_escalation_at": None})
        await append_events(event_row(row, "resolved", when, {"sla_status": row["sla_status"]}))
    return Changed(incident=to_schema(row), jobs=jobs)


# ---------------------------------------------------------------- quote


async def quote(customer_id: str, priority: Priority, opened_at: datetime | None = None) -> Quote:
    """The deadline an incident opened at ``opened_at`` (default now) would get, with and
    without fast-track; the same arithmetic ``open_incident`` applies."""
    now = utcnow()
    at = now if opened_at is None else _not_future(opened_at, now, "opened_at")
    customer = await billing.get_customer(customer_id)
    entitlement = await billing.get_entitlement(customer_id, at)
    calendar = calendar_of(customer)
    plain = snapshot_from(entitlement, calendar, fast_track=False)
    fast = snapshot_from(entitlement, calendar, fast_track=True)
    under_plan = deadline_for(at, priority, plain)
    with_fast_track = deadline_for(at, priority, fast)
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


async def retry_credit(credit_id: str) -> SlaJob:
    """Re-issue a failed service credit (admin): returns the job that pays it."""
    from sla import enforcement

    return await enforcement.retry_credit(credit_id)


async def retry_credit_now(credit_id: str) -> str:
    """Re-issue a failed service credit and pay it here and now (the CLI): what happened."""
    from sla import enforcement

    job = await enforcement.retry_credit(credit_id)
    return (await enforcement.settle_credit(job.incident_id)).done


# ---------------------------------------------------------------- calendars


def check_calendar(
    timezone: str, business_hours: dict[str, list[str]] | None, country: str | None
) -> None:
    """Refuse a customer calendar the engine could not count business time on."""
    import zoneinfo

    from sla.calendar import InvalidSchedule, country_holidays

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
