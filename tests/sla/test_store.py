"""The incident store on real PostgreSQL: a state reads back as written, in one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.db import engine
from sla import incident, store
from sla.incident import IncidentState, Policy, Transition
from sla.schemas import CalendarSpec, EntitlementSnapshot, IncidentCreate, TargetSnapshot
from sla.tables import Incident as IncidentRow
from sla.tables import SlaEvent
from tests.sla.conftest import ledger
from webhooks.tables import OutboundEvent

POLICY = Policy()
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SNAPSHOT = EntitlementSnapshot(
    tier="business",
    plan_version=3,
    targets={
        "p1": TargetSnapshot(first_response_minutes=240, coverage="24x7"),
        "p2": TargetSnapshot(first_response_minutes=600, coverage="business_hours"),
    },
    fast_track_used=False,
    fast_track_minutes=None,
    calendar=CalendarSpec(
        timezone="Europe/Berlin",
        business_hours={"mon": ["09:00-12:00", "13:00-17:00"], "tue": ["09:00-17:00"]},
        country="DE",
    ),
    basis="an active business subscription",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def _open(ref: str, opened_at: datetime = T0) -> Transition:
    request = IncidentCreate(
        customer_id="cust_store",
        external_ref=ref,
        priority="p1",
        context={"subject": "Drucker brennt 🔥", "tags": ["a", 1, None]},
    )
    opened = incident.open(
        f"inc_{ref}", request, SNAPSHOT, opened_at=opened_at, now=opened_at, policy=POLICY
    )
    assert await store.insert_opened(opened)
    return opened


async def _apply(before: IncidentState, transition: Transition) -> IncidentState:
    async with engine().transaction():
        assert await store.locked(before.id) == before
        await store.apply(before, transition)
    return transition.state


async def test_every_transition_reads_back_as_it_was_written(clean_db: None) -> None:
    s = (await _open("RT-1")).state
    assert await store.read(s.id) == s
    steps = [
        lambda s: incident.warn(s, incident.micros(s.warn_at[0].at), now=at(121), policy=POLICY),
        lambda s: incident.pause(s, at(130), "waiting", now=at(131), policy=POLICY),
        lambda s: incident.reprioritise(s, "p2", now=at(140), policy=POLICY),
        lambda s: incident.resume(s, at(150), now=at(151), policy=POLICY),
        lambda s: incident.respond(s, at(160), now=at(161), policy=POLICY),
        lambda s: incident.resolve(s, at(170), now=at(171), policy=POLICY),
    ]
    for step in steps:
        s = await _apply(s, step(s))
        assert await store.read(s.id) == s
    assert [(p.start, p.end) for p in s.pauses] == [(at(130), at(150))]
    assert (s.sla_status, s.coverage, s.warnings_sent) == ("achieved", "business_hours", 1)
    assert await ledger(s.id) == [
        "opened",
        "warning",
        "paused",
        "priority_changed",
        "resumed",
        "first_response",
        "achieved",
        "resolved",
    ]
    announced = await OutboundEvent.select(OutboundEvent.type)
    assert sorted(r["type"] for r in announced) == ["sla.achieved", "sla.warning"]


async def _overwrite_json(incident_id: str, *, pauses: str, warn_at: str) -> None:
    await IncidentRow.raw(
        "UPDATE incident SET pauses = {}::jsonb, warn_at = {}::jsonb WHERE id = {}",
        pauses,
        warn_at,
        incident_id,
    )


async def test_a_row_the_dict_code_wrote_reads_as_a_typed_state(clean_db: None) -> None:
    """Rows written before the typed store (the same JSON shapes) need no migration."""
    s = (await _open("OLD-1")).state
    await _overwrite_json(
        s.id,
        pauses='[["2026-11-23T09:30:00Z", "2026-11-23T09:45:00.250000Z"]]',
        warn_at='[{"fraction": 0.5, "at": "2026-11-23T11:07:30Z"}]',
    )
    read = await store.read(s.id)
    assert read is not None
    assert [(p.start, p.end) for p in read.pauses] == [
        (at(30), at(45) + timedelta(milliseconds=250))
    ]
    assert [(w.fraction, w.at) for w in read.warn_at] == [(0.5, at(127.5))]
    assert read.entitlement == SNAPSHOT


async def test_a_ticket_is_inserted_once(clean_db: None) -> None:
    first = await _open("DUP-1")
    again = incident.open(
        "inc_other",
        IncidentCreate(customer_id="cust_store", external_ref="DUP-1", priority="p2"),
        SNAPSHOT,
        opened_at=T0,
        now=T0,
        policy=POLICY,
    )
    assert not await store.insert_opened(again)
    assert await store.by_ticket("cust_store", "DUP-1") == first.state
    assert await store.read("inc_other") is None
    assert await SlaEvent.count() == 1


async def test_a_batch_of_breaches_is_written_whole_and_in_ledger_order(clean_db: None) -> None:
    states = [(await _open(f"B-{i}", opened_at=at(-60 * i))).state for i in range(3)]
    now = at(250)  # 10, 70 and 130 minutes late: escalation levels 1, 2 and 2
    async with engine().transaction():
        overdue = await store.overdue(now, 10)
        assert [s.id for s in overdue] == [s.id for s in reversed(states)]
        pairs = [(s, incident.breach(s, now=now, policy=POLICY)) for s in overdue]
        await store.apply_many(pairs)
    for _, t in pairs:
        assert await store.read(t.state.id) == t.state
        assert await ledger(t.state.id) == ["opened", *(e.type for e in t.events)]
    assert [t.state.escalation_level for _, t in pairs] == [2, 2, 1]
    assert await OutboundEvent.count().where(OutboundEvent.type == "sla.breached") == 3


async def test_a_mixed_batch_writes_each_transition_whole(clean_db: None) -> None:
    """Transitions changing different columns go in one call: each lands exactly."""
    answered_first, paused_first, overdue = [
        (await _open(f"MX-{i}", opened_at=at(-300 if i == 2 else 0))).state for i in range(3)
    ]
    pairs = [
        (answered_first, incident.respond(answered_first, at(10), now=at(10), policy=POLICY)),
        (paused_first, incident.pause(paused_first, at(20), None, now=at(20), policy=POLICY)),
        (overdue, incident.breach(overdue, now=at(30), policy=POLICY)),
    ]
    async with engine().transaction():
        await store.apply_many(pairs)
    for _, t in pairs:
        assert await store.read(t.state.id) == t.state
        assert await ledger(t.state.id) == ["opened", *(e.type for e in t.events)]
    assert [t.state.sla_status for _, t in pairs] == ["achieved", "paused", "breached"]
