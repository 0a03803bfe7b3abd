"""The terms an incident is opened under: its entitlement snapshot, calendar and deadline.

Pure functions: what ``sla.incident`` transitions and the quote compute a deadline from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from billing.schemas import Customer, Entitlement
from sla import deadlines
from sla.calendar import InvalidSchedule, Pause, Schedule
from sla.deadlines import Deadline, DeadlineTarget
from sla.exceptions import InvalidCalendar, NoTarget
from sla.schemas import CalendarSpec, EntitlementSnapshot, TargetSnapshot


def calendar_of(customer: Customer) -> CalendarSpec:
    """The customer's calendar as an incident keeps it (Mon-Fri 09:00-17:00 by default)."""
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
    fractions: Iterable[float] = (),
) -> Deadline:
    """The effective deadline of an incident opened at ``opened_at`` under ``snapshot``."""
    return deadlines.effective_deadline(
        opened_at,
        targets_for(snapshot, priority),
        schedule_of(snapshot.calendar),
        pauses,
        fractions,
    )
