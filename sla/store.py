"""The incident store: typed rows in, typed rows out, a transition written in one statement.

Hot paths (every open, every check of the worker) use plain SQL: Piccolo's query
building costs more than the round trip there.  Column names come from this module
and from ``IncidentState``'s fields (the table's columns), never from input; every
value is a bound parameter.  Everything runs in the caller's transaction, if any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

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
# What a breach writes: the batched UPDATE sets exactly these.
_BREACH_COLUMNS: Final = (
    "sla_status",
    "breached_at",
    "escalation_level",
    "next_escalation_at",
    "next_warning_at",
    "credit_status",
    "updated_at",
)
_KEPT_BY_BREACH: Final = tuple(c for c in _COLUMNS if c not in _BREACH_COLUMNS)


class Peek(msgspec.Struct, frozen=True, kw_only=True):
    """What a job reads without a lock to find out, cheaply, that it is stale."""

    id: str
    sla_status: SlaStatus
    due_at: Aware
    warn_at: tuple[WarningAt, ...]
    warnings_sent: int
    next_escalation_at: Aware | None
    credit_status: CreditStatus | None


class PendingWarnings(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    warn_at: tuple[WarningAt, ...]
    warnings_sent: int


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


async def overdue(now: datetime, limit: int) -> list[IncidentState]:
    """Up to ``limit`` active incidents past their deadline that nobody else holds, locked."""
    return await _fetch(
        IncidentState,
        "SELECT * FROM incident WHERE sla_status = 'active' AND due_at <= {}"
        " ORDER BY due_at LIMIT {} FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )


async def escalations_due(before: datetime, limit: int) -> list[IncidentState]:
    """Up to ``limit`` incidents whose next escalation fell due by ``before``, locked."""
    return await _fetch(
        IncidentState,
        "SELECT * FROM incident WHERE next_escalation_at <= {}"
        " ORDER BY next_escalation_at LIMIT {} FOR UPDATE SKIP LOCKED",
        before,
        limit,
    )


async def late_warnings(cutoff: datetime, limit: int) -> list[PendingWarnings]:
    """Active incidents whose next warning was due by ``cutoff``."""
    return await _fetch(
        PendingWarnings,
        "SELECT id, warn_at, warnings_sent FROM incident"
        " WHERE sla_status = 'active' AND next_warning_at <= {} LIMIT {}",
        cutoff,
        limit,
    )


async def pending_credits(breached_by: datetime, limit: int) -> list[Instant]:
    """Incidents breached by ``breached_by`` whose credit is still pending, with the breach."""
    return await _fetch(
        Instant,
        "SELECT id, breached_at AS at FROM incident"
        " WHERE credit_status = 'pending' AND breached_at <= {} LIMIT {}",
        breached_by,
        limit,
    )


async def falling_due(after: datetime, until: datetime, limit: int) -> list[Instant]:
    """Active incidents due in (``after``, ``until``], with their deadline."""
    return await _fetch(
        Instant,
        "SELECT id, due_at AS at FROM incident"
        " WHERE sla_status = 'active' AND due_at > {} AND due_at <= {} LIMIT {}",
        after,
        until,
        limit,
    )


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
    for t in transitions:
        for out in t.outbound:
            await outbox.emit(out.type, out.data, customer_id=t.state.customer_id)


async def apply(before: IncidentState, transition: Transition) -> None:
    """Write a transition of the locked ``before``: the changed columns, its ledger entries
    and its outbound events."""
    changes = _changes(before, transition.state)
    update = None
    if changes:
        sets = ", ".join(
            f"{column} = {{}}::jsonb" if column in _JSON_COLUMNS else f"{column} = {{}}"
            for column in changes
        )
        update = f"UPDATE incident SET {sets} WHERE id = {{}}"  # noqa: S608 - own column names
    events = (
        _event_arrays([(transition.state, e) for e in transition.events])
        if transition.events
        else None
    )
    await _write(update, [*changes.values(), before.id], events)
    await _announce([transition])


_BREACH_UPDATE: Final = (
    "UPDATE incident AS i SET sla_status = u.sla_status, breached_at = u.breached_at,"
    " escalation_level = u.escalation_level, next_escalation_at = u.next_escalation_at,"
    " next_warning_at = u.next_warning_at, credit_status = u.credit_status,"
    " updated_at = u.updated_at"
    " FROM unnest({}::text[], {}::text[], {}::timestamptz[], {}::int[], {}::timestamptz[],"
    " {}::timestamptz[], {}::text[], {}::timestamptz[])"
    " AS u(id, sla_status, breached_at, escalation_level, next_escalation_at, next_warning_at,"
    " credit_status, updated_at) WHERE i.id = u.id"
)


async def apply_breaches(pairs: Sequence[tuple[IncidentState, Transition]]) -> None:
    """Write breach transitions of locked incidents: one statement for the whole batch."""
    # A transition with nothing to do returns the very state it was given.
    changed = [t for before, t in pairs if t.state is not before]
    for before, t in pairs:
        moved = [c for c in _KEPT_BY_BREACH if getattr(t.state, c) is not getattr(before, c)]
        if moved:
            raise ValueError(f"not a breach of {before.id}: it changes {moved}")
    if not changed:
        return
    after = [t.state for t in changed]
    update_args: list[Any] = [[s.id for s in after]]
    update_args += [[getattr(s, column) for s in after] for column in _BREACH_COLUMNS]
    entries = [(t.state, e) for t in changed for e in t.events]
    await _write(_BREACH_UPDATE, update_args, _event_arrays(entries) if entries else None)
    await _announce(changed)


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
