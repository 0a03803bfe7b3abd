"""Breaches and escalations of locked incidents, one or a batch, in the caller's transaction.

Built on ``sla.incident``'s transitions and ``sla.store``; a batch of breaches is one
statement plus its outbound events, so a burst of deadlines costs a transaction per
batch.  Each function returns the follow-up jobs for the caller to schedule once the
transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from common.config import get_settings
from sla import incident, store
from sla.incident import IncidentState, Policy, Transition
from sla.schemas import SlaJob


def _policy() -> Policy:
    return Policy.from_settings(get_settings())


def _jobs(transitions: Sequence[Transition]) -> list[SlaJob]:
    return [j for t in transitions for j in t.jobs]


async def breach(states: Sequence[IncidentState], now: datetime) -> list[SlaJob]:
    """Breach the locked ``states`` whose deadlines have passed (the others stay as they are)."""
    policy = _policy()
    pairs = [(s, incident.breach(s, now=now, policy=policy)) for s in states]
    await store.apply_breaches(pairs)
    return _jobs([t for _, t in pairs])


async def breach_overdue(now: datetime, limit: int) -> tuple[int, list[SlaJob]]:
    """Breach up to ``limit`` overdue active incidents nobody else holds; how many, and the
    follow-ups."""
    states = await store.overdue(now, limit)
    return len(states), await breach(states, now)


async def escalate(state: IncidentState, now: datetime) -> Transition:
    """Raise the locked ``state`` to the escalation level reached at ``now``, if it is due."""
    transition = incident.escalate(state, now=now, policy=_policy())
    await store.apply(state, transition)
    return transition


async def escalate_overdue(before: datetime, now: datetime, limit: int) -> tuple[int, list[SlaJob]]:
    """Apply the escalations due by ``before`` of up to ``limit`` incidents nobody else holds."""
    states = await store.escalations_due(before, limit)
    return len(states), _jobs([await escalate(s, now) for s in states])
