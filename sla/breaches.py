"""Breaches, warnings and escalations of locked incidents, in batches, in the caller's
transaction.

Built on ``sla.incident``'s transitions and ``sla.store``: a batch is a ``SKIP LOCKED``
select and one write (``store.apply_many``), so a burst of deadlines costs a few
statements per batch and two workers split the rows instead of queueing behind each
other.  Each function returns how many incidents it moved and the follow-up jobs
(breach credits) for the caller to schedule once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from common.config import get_settings
from sla import incident, store
from sla.incident import IncidentState, Policy, Transition, micros
from sla.schemas import SlaJob

Moved = tuple[int, list[SlaJob]]


def _policy() -> Policy:
    return Policy.from_settings(get_settings())


async def _write(pairs: Sequence[tuple[IncidentState, Transition]]) -> Moved:
    # A transition with nothing to do returns the very state it was given.
    moved = [(before, t) for before, t in pairs if t.state is not before]
    await store.apply_many(moved)
    return len(moved), [j for _, t in moved for j in t.jobs]


async def breach(states: Sequence[IncidentState], now: datetime) -> Moved:
    """Breach the locked ``states`` whose deadlines have passed (the others stay as they are)."""
    policy = _policy()
    return await _write([(s, incident.breach(s, now=now, policy=policy)) for s in states])


async def breach_overdue(now: datetime, limit: int) -> tuple[int, Moved]:
    """Breach up to ``limit`` overdue active incidents nobody else holds: (rows seen, moved)."""
    states = await store.overdue(now, limit)
    return len(states), await breach(states, now)


def _warning(state: IncidentState, now: datetime, policy: Policy) -> Transition:
    latest = incident.latest_passed_warning(state.warn_at, state.warnings_sent, now)
    if latest is None:
        return Transition(state=state)
    return incident.warn(state, micros(latest.at), now=now, policy=policy)


async def warn_due(now: datetime, limit: int) -> tuple[int, Moved]:
    """Record the passed warnings of up to ``limit`` active incidents: (rows seen, moved)."""
    policy = _policy()
    states = await store.warnings_due(now, limit)
    return len(states), await _write([(s, _warning(s, now, policy)) for s in states])


async def escalate_overdue(now: datetime, limit: int) -> tuple[int, Moved]:
    """Apply the escalations due by ``now`` of up to ``limit`` incidents: (rows seen, moved)."""
    policy = _policy()
    states = await store.escalations_due(now, limit)
    return len(states), await _write(
        [(s, incident.escalate(s, now=now, policy=policy)) for s in states]
    )
