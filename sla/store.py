"""The incident store: typed rows in, typed rows out, a transition written in one statement.

Hot paths (every open, every check of the worker) use plain SQL: Piccolo's query
building costs more than the round trip there.  Column names come from this module
and from ``IncidentState``'s fields (the table's columns), never from input; every
value is a bound parameter.  Everything runs in the caller's transaction, if any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

import msgspec

from common.clock import utcnow
from common.ids import new_id
from common.pagination import keyset_page
from sla.exceptions import IncidentNotFound
from sla.incident import Aware, CreditStatus, IncidentState, LedgerEvent, Transition, WarningAt
from sla.schemas import Priority, SlaEvent, SlaStatus
from sla.tables import Incident as IncidentRow
from sla.tables import SlaEvent as SlaEventRow
from webhooks import outbox

T = TypeVar("T")

_COLUMNS: Final = IncidentState.__struct_fields__
_JSON_COLUMNS: Final = frozenset({"context", "entitlement", "warn_at", "pauses"})


def _sql_type(column: str) -> str:
    """The array element type of a column in a batched UPDATE (JSONB travels as text)."""
    declared = IncidentRow._meta.get_column_by_name(column).column_type.split("(")[0].lower()
    return "text" if declared in ("varchar", "jsonb") else declared


_SQL_TYPES: Final = {column: _sql_type(column) for column in _COLUMNS}


class Peek(msgspec.Struct, frozen=True, kw_only=True):
    """What a job reads without a lock to find out, cheaply, that it is stale."""

    id: str
    sla_status: SlaStatus
    due_at: Aware
    warn_at: tuple[WarningAt, ...]
    warnings_sent: int
    next_escalation_at: Aware | None
    credit_status: CreditStatus | None


class Instant(msgspec.Struct, frozen=True, kw_only=True):
    """An incident and one of its instants (a deadline, a breach)."""

    id: str
    at: Aware


# ---------------------------------------------------------------- rows in


def _typed(row: dict[str, Any], into: type[T]) -> T:
    """A row (a raw query's JSONB columns still text) converted into ``into``."""
    for column in _JSON_COLUMNS.intersection(row):
        if isinstance(row[column], str):
            row[column] = msgspec.json.decode(row[column])
    return msgspec.convert(row, into)


async def _fetch(into: type[T], sql: str, *args: Any) -> list[T]:
    return [_typed(r, into) for r in await IncidentRow.raw(sql, *args)]


async def _first(into: type[T], sql: str, *args: Any) -> T | None:
    rows = await _fetch(into, sql, *args)
    return rows[0] if rows else None


async def locked(incident_id: str) -> IncidentState:
    """The incident under ``FOR UPDATE`` (inside the caller's transaction)."""
    state = await _first(
        IncidentState, "SELECT * FROM incident WHERE id = {} FOR UPDATE", incident_id
    )
    if state is None:
        raise IncidentNotFound(f"no incident {incident_id}")
    return state


async def read(incident_id: str) -> IncidentState | None:
    return await _first(IncidentState, "SELECT * FROM incident WHERE id = {}", incident_id)


async def by_ticket(customer_id: str, external_ref: str) -> IncidentState | None:
    return await _first(
        IncidentState,
        "SELECT * FROM incident WHERE customer_id = {} AND external_ref = {}",
        customer_id,
        external_ref,
    )


async def peek(incident_id: str) -> Peek | None:
    """The incident's enforcement columns, without a lock."""
    return await _first(
        Peek,
        "SELECT id, sla_status, due_at, warn_at, warnings_sent, next_escalation_at,"
        " credit_status FROM incident WHERE id = {}",
        incident_id,
    )


_DueColumn = Literal["due_at", "next_warning_at", "next_escalation_at"]


async def _locked_due(
    column: _DueColumn, by: datetime, limit: int, *, active: bool
) -> list[IncidentState]:
    """Up to ``limit`` incidents whose ``column`` fell due by ``by`` (only the active ones if
    ``active``), earliest first, locked; rows another worker holds are skipped."""
    only_active = "sla_status = 'active' AND " if active else ""
    return await _fetch(
        IncidentState,
        f"SELECT * FROM incident WHERE {only_active}{column} <= {{}}"  # noqa: S608 - a Literal
        f" ORDER BY {column} LIMIT {{}} FOR UPDATE SKIP LOCKED",
        by,
        limit,
    )


async def overdue(now: datetime, limit: int) -> list[IncidentState]:
    """Up to ``limit`` active incidents past their deadline that nobody else holds, locked."""
    return await _locked_due("due_at", now, limit, active=True)


async def escalations_due(before: datetime, limit: int) -> list[IncidentState]:
    """Up to ``limit`` incidents whose next escalation fell due by ``before``, locked."""
    return await _locked_due("next_escalation_at", before, limit, active=False)


async def warnings_due(now: datetime, limit: int) -> list[IncidentState]:
    """Up to ``limit`` active incidents with a warning due by ``now`` nobody else holds, locked."""
    return await _locked_due("next_warning_at", now, limit, active=True)


async def pending_credits(breached_by: datetime, limit: int) -> list[Instant]:
    """Incidents breached by ``breached_by`` whose credit is still pending, with the breach."""
    return await _fetch(
        Instant,
        "SELECT id, breached_at AS at FROM incident"
        " WHERE credit_status = 'pending' AND breached_at <= {} LIMIT {}",
        breached_by,
        limit,
    )


async def next_instant() -> datetime | None:
    """The earliest deadline, warning or escalation still to enforce (three index lookups)."""
    rows = await IncidentRow.raw(
        "SELECT LEAST("
        "(SELECT min(due_at) FROM incident WHERE sla_status = 'active'),"
        " (SELECT min(next_warning_at) FROM incident"
        "   WHERE sla_status = 'active' AND next_warning_at IS NOT NULL),"
        " (SELECT min(next_escalation_at) FROM incident WHERE next_escalation_at IS NOT NULL)"
        ") AS at"
    )
    at: datetime | None = rows[0]["at"]
    return at


async def page(
    *,
    limit: int,
    starting_after: str | None,
    customer_id: str | None,
    sla_status: SlaStatus | None,
    priority: Priority | None,
) -> tuple[list[IncidentState], bool]:
    """Newest first (ids sort by creation)."""
    query = IncidentRow.select()
    if customer_id:
        query = query.where(IncidentRow.customer_id == customer_id)
    if sla_status:
        query = query.where(IncidentRow.sla_status == sla_status)
    if priority:
        query = query.where(IncidentRow.priority == priority)
    rows, more = await keyset_page(
        query, IncidentRow.id, limit=limit, starting_after=starting_after
    )
    return [_typed(r, IncidentState) for r in rows], more


async def exists(incident_id: str) -> bool:
    return bool(await IncidentRow.exists().where(IncidentRow.id == incident_id))


async def events_page(
    incident_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[SlaEvent], bool]:
    """The ledger of one incident, oldest first; ``starting_after`` is an event id of it."""
    after = None
    if starting_after:
        found = await (
            SlaEventRow.select(SlaEventRow.seq)
            .where((SlaEventRow.id == starting_after) & (SlaEventRow.incident_id == incident_id))
            .first()
        )
        if found is None:
            raise IncidentNotFound(f"no event {starting_after} on incident {incident_id}")
        after = found["seq"]
    query = (
        SlaEventRow.select(
            SlaEventRow.id,
            SlaEventRow.incident_id,
            SlaEventRow.customer_id,
            SlaEventRow.type,
            SlaEventRow.at,
            SlaEventRow.data,
        )
        .where(SlaEventRow.incident_id == incident_id)
        .output(load_json=True)
    )
    rows, more = await keyset_page(
        query, SlaEventRow.seq, limit=limit, starting_after=after, newest_first=False
    )
    return [msgspec.convert({**r, "data": r["data"] or {}}, SlaEvent) for r in rows], more


# ---------------------------------------------------------------- rows out


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _changes(before: IncidentState, after: IncidentState) -> dict[str, Any]:
    """The columns ``after`` changes, with their values as bound parameters."""
    if after.id != before.id:
        raise ValueError(f"a transition of {before.id} cannot become {after.id}")
    changes: dict[str, Any] = {}
    for column in _COLUMNS:
        value, old = getattr(after, column), getattr(before, column)
        # A transition keeps what it does not change (the same object): no deep comparison.
        if value is not old and value != old:
            changes[column] = _json(value) if column in _JSON_COLUMNS else value
    return changes


_INSERT_EVENTS: Final = (
    "INSERT INTO sla_event (id, incident_id, customer_id, type, at, data, created_at)"
    " SELECT e.id, e.incident_id, e.customer_id, e.type, e.at, e.data::jsonb, {}"
    " FROM unnest({}::text[], {}::text[], {}::text[], {}::text[], {}::timestamptz[], {}::text[])"
    " WITH ORDINALITY AS e(id, incident_id, customer_id, type, at, data, n) ORDER BY e.n"
)


def _event_arrays(entries: Sequence[tuple[IncidentState, LedgerEvent]]) -> list[Any]:
    """The parameters of ``_INSERT_EVENTS``: one array per column, in ledger order."""
    return [
        utcnow(),
        [new_id("sev") for _ in entries],
        [state.id for state, _ in entries],
        [state.customer_id for state, _ in entries],
        [event.type for _, event in entries],
        [event.at for _, event in entries],
        [_json(event.data) for _, event in entries],
    ]


async def _write(update: str | None, update_args: list[Any], events: list[Any] | None) -> None:
    """An UPDATE and the ledger INSERT as one statement (a round trip per transition)."""
    if update is not None and events is not None:
        sql = f"WITH changed AS ({update}) {_INSERT_EVENTS}"
        await IncidentRow.raw(sql, *update_args, *events)
    elif update is not None:
        await IncidentRow.raw(update, *update_args)
    elif events is not None:
        await IncidentRow.raw(_INSERT_EVENTS, *events)


async def _announce(transitions: Sequence[Transition]) -> None:
    await outbox.emit_many(
        [(out.type, out.data, t.state.customer_id) for t in transitions for out in t.outbound]
    )


def _batched_update(columns: Sequence[str]) -> str:
    """One UPDATE of ``columns`` for many incidents, each row's values from parallel arrays."""
    sets = ", ".join(
        f"{c} = u.{c}::jsonb" if c in _JSON_COLUMNS else f"{c} = u.{c}" for c in columns
    )
    arrays = ", ".join(f"{{}}::{_SQL_TYPES[c]}[]" for c in ("id", *columns))
    names = ", ".join(("id", *columns))
    # The column names are the table's own, never input; every value is a bound array.
    return (
        f"UPDATE incident AS i SET {sets}"  # noqa: S608
        f" FROM unnest({arrays}) AS u({names}) WHERE i.id = u.id"
    )


async def apply(before: IncidentState, transition: Transition) -> None:
    """Write a transition of the locked ``before``: the changed columns, its ledger entries
    and its outbound events."""
    await apply_many([(before, transition)])


async def apply_many(pairs: Sequence[tuple[IncidentState, Transition]]) -> None:
    """Write transitions of locked incidents: one UPDATE per set of changed columns, each
    with the ledger entries of its batch in the same statement, then their announcements.

    A batch of breaches (or warnings, or escalations) changes the same columns of every
    incident, so it costs one statement whatever its size.
    """
    groups: dict[tuple[str, ...], list[tuple[IncidentState, dict[str, Any]]]] = {}
    for before, t in pairs:
        changes = _changes(before, t.state)
        groups.setdefault(tuple(changes), []).append((t.state, changes))
    entries = [(t.state, e) for _, t in pairs for e in t.events]
    events = _event_arrays(entries) if entries else None
    for columns, rows in groups.items():
        if not columns:
            continue
        args: list[Any] = [[state.id for state, _ in rows]]
        args += [[changes[c] for _, changes in rows] for c in columns]
        await _write(_batched_update(columns), args, events)
        events = None  # the ledger rides with the first statement
    await _write(None, [], events)
    await _announce([t for _, t in pairs])


async def insert_opened(transition: Transition) -> bool:
    """The new incident and its ``opened`` entry in one statement (the hot path of opening).

    False when the ticket was opened meanwhile: the unique (customer_id, external_ref)
    makes a concurrent insert wait for the other transaction, then do nothing.
    """
    state = transition.state
    (opened,) = transition.events
    inserted = await IncidentRow.raw(
        "WITH incident_row AS (INSERT INTO incident (id, customer_id, external_ref, priority,"
        " opened_at, context, entitlement, tier, fast_track, target_minutes, coverage,"
        " target_source, due_at, warn_at, next_warning_at, sla_status, created_at, updated_at)"
        " VALUES ({}, {}, {}, {}, {}, {}::jsonb, {}::jsonb, {}, {}, {}, {}, {}, {}, {}::jsonb,"
        " {}, {}, {}, {}) ON CONFLICT (customer_id, external_ref) DO NOTHING RETURNING id)"
        " INSERT INTO sla_event (id, incident_id, customer_id, type, at, data, created_at)"
        " SELECT {}, id, {}, {}, {}, {}::jsonb, {} FROM incident_row RETURNING incident_id",
        state.id,
        state.customer_id,
        state.external_ref,
        state.priority,
        state.opened_at,
        _json(state.context),
        _json(state.entitlement),
        state.tier,
        state.fast_track,
        state.target_minutes,
        state.coverage,
        state.target_source,
        state.due_at,
        _json(state.warn_at),
        state.next_warning_at,
        state.sla_status,
        state.created_at,
        state.updated_at,
        new_id("sev"),
        state.customer_id,
        opened.type,
        opened.at,
        _json(opened.data),
        state.created_at,
    )
    return bool(inserted)


async def record_credit(
    incident_id: str, status: CreditStatus, credit_id: str | None, kind: str | None
) -> IncidentState | None:
    """Move the credit out of ``pending`` once: the conditional update is the guard."""
    return await _first(
        IncidentState,
        "UPDATE incident SET credit_status = {}, credit_id = {}, credit_kind = {}, updated_at = {}"
        " WHERE id = {} AND credit_status = 'pending' RETURNING *",
        status,
        credit_id,
        kind,
        utcnow(),
        incident_id,
    )


async def reopen_failed_credit(incident_id: str) -> None:
    """A failed credit waits for its outcome again (an admin re-issued it)."""
    await IncidentRow.raw(
        "UPDATE incident SET credit_status = 'pending', updated_at = {}"
        " WHERE id = {} AND credit_status = 'failed'",
        utcnow(),
        incident_id,
    )
