"""msgspec shapes of the sla domain: requests (``…Create``), frozen responses, stored snapshots."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

from common.money import Money
from common.schemas import AwareDatetime, RequestBody

Priority = Literal["p1", "p2", "p3", "p4"]
PRIORITIES: tuple[Priority, ...] = ("p1", "p2", "p3", "p4")
Coverage = Literal["24x7", "business_hours"]
SlaStatus = Literal["active", "paused", "achieved", "breached"]
SLA_STATUSES: tuple[SlaStatus, ...] = ("active", "paused", "achieved", "breached")
EventType = Literal[
    "opened",
    "warning",
    "paused",
    "resumed",
    "priority_changed",
    "first_response",
    "achieved",
    "breached",
    "escalated",
    "credit_issued",
    "resolved",
]
JobKind = Literal["sla_credit"]

# Requests carry an explicit offset (API.md: RFC 3339 with offset); naive times are refused
# (common.schemas.AwareDatetime, with the accepted range).
ExternalRef = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
CustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


# ---------------------------------------------------------------- requests


MAX_CONTEXT_BYTES = 16_384


class IncidentCreate(RequestBody, kw_only=True):
    customer_id: CustomerId
    external_ref: ExternalRef
    priority: Priority
    opened_at: AwareDatetime | None = None
    fast_track: bool = False
    context: Annotated[
        dict[str, Any],
        msgspec.Meta(
            max_length=100,
            description=f"the helpdesk's own data, kept as given; at most {MAX_CONTEXT_BYTES} "
            "bytes as JSON",
        ),
    ] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        # Every incident read returns it: a list page must stay small whatever was sent.
        if len(msgspec.json.encode(self.context)) > MAX_CONTEXT_BYTES:
            raise ValueError(
                f"Invalid value for field `context`: more than {MAX_CONTEXT_BYTES} bytes as JSON"
            )


class IncidentUpdate(RequestBody, kw_only=True):
    priority: Priority


class FirstResponse(RequestBody, kw_only=True):
    at: AwareDatetime | None = None


class PauseRequest(RequestBody, kw_only=True):
    at: AwareDatetime | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class ResumeRequest(RequestBody, kw_only=True):
    at: AwareDatetime | None = None


class ResolveRequest(RequestBody, kw_only=True):
    at: AwareDatetime | None = None


# ---------------------------------------------------------------- stored snapshot


class CalendarSpec(msgspec.Struct, frozen=True, kw_only=True):
    """The customer's calendar as it was when the incident opened."""

    timezone: str
    business_hours: dict[str, list[str]]
    country: str | None = None
    holidays: list[date] = []


class TargetSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    first_response_minutes: int
    coverage: Coverage


class EntitlementSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What the incident was opened under; a priority change re-reads its targets from here."""

    tier: str
    plan_version: int | None
    targets: dict[str, TargetSnapshot]
    fast_track_used: bool
    fast_track_minutes: int | None
    fast_track_coverage: Coverage = "24x7"
    fast_track_purchase_id: str | None = None
    overage: bool = False
    calendar: CalendarSpec
    # Why this tier applied at opened_at, in a sentence (billing's entitlement basis).
    basis: str = ""


# ---------------------------------------------------------------- responses


class PauseInterval(msgspec.Struct, frozen=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime | None = None


class EffectiveTarget(msgspec.Struct, frozen=True):
    """The target the deadline follows: the plan's, or the fast-track's when that is earlier."""

    first_response_minutes: int
    coverage: Coverage
    source: Literal["plan", "fast_track"]


class ServiceCreditRef(msgspec.Struct, frozen=True):
    id: str
    kind: str
    status: str


class Incident(msgspec.Struct, frozen=True):
    id: str
    customer_id: str
    external_ref: str
    priority: Priority
    opened_at: datetime
    due_at: datetime
    warn_at: list[datetime]
    sla_status: SlaStatus
    fast_track: bool
    tier: str
    plan_version: int | None
    target: EffectiveTarget
    pauses: list[PauseInterval]
    paused_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    breached_at: datetime | None
    escalation_level: int
    service_credit: ServiceCreditRef | None
    context: dict[str, Any]
    entitlement: EntitlementSnapshot
    created_at: datetime
    updated_at: datetime


class SlaEvent(msgspec.Struct, frozen=True):
    id: str
    incident_id: str
    customer_id: str
    type: EventType
    at: datetime
    data: dict[str, Any]


class QuoteFastTrack(msgspec.Struct, frozen=True):
    due_at: datetime
    price: Money | None
    credits: int
    included: bool
    faster: bool
    first_response_minutes: int | None
    available: bool


class Quote(msgspec.Struct, frozen=True):
    customer_id: str
    priority: Priority
    opened_at: datetime
    tier: str
    plan_version: int | None
    due_at: datetime
    target: EffectiveTarget
    fast_track: QuoteFastTrack


# ---------------------------------------------------------------- jobs


class SlaJob(msgspec.Struct, frozen=True):
    """Work the service asks the caller to schedule once its transaction has committed.

    ``ts`` is the instant in epoch microseconds: part of the deterministic job id
    and what a job compares with the incident's current instant to detect staleness.
    """

    kind: JobKind
    incident_id: str
    at: datetime
    ts: int


# ---------------------------------------------------------------- reports


class SlaReportRow(msgspec.Struct, frozen=True, kw_only=True):
    """Incidents of one tier and priority opened in the window. ``attainment_percent`` is
    achieved / (achieved + breached) * 100 (null when none is decided yet); first-response
    figures are over incidents that got one, in wall-clock minutes and in the business
    minutes their coverage counts (24x7: every minute; business hours: the customer's
    calendar), paused time excluded from the business figures."""

    tier: str
    priority: str
    incidents: int
    achieved: int
    breached: int
    open: int
    attainment_percent: float | None
    responded: int
    median_first_response_minutes: float | None
    p95_first_response_minutes: float | None
    median_first_response_business_minutes: float | None
    p95_first_response_business_minutes: float | None
    credits_paid: list[Money]  # one per currency


class SlaReport(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    rows: list[SlaReportRow]


class WorthItRow(msgspec.Struct, frozen=True, kw_only=True):
    """One tier over the window, side by side with ``standard``: what it earned (net
    revenue of its subscriptions), what its broken promises cost (service credits), how
    often the promise held and how fast a first response came."""

    tier: str
    revenue: list[Money]  # net, one per currency
    credits_paid: list[Money]  # one per currency
    incidents: int
    achieved: int
    breached: int
    attainment_percent: float | None
    median_first_response_minutes: float | None
    median_first_response_business_minutes: float | None
    # Against standard in the same window: percentage points, and standard's median over
    # this tier's (2.0: first responses came twice as fast). Null when either side is empty.
    attainment_vs_standard_points: float | None
    first_response_speedup_vs_standard: float | None


class WorthItReport(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    rows: list[WorthItRow]
