"""msgspec shapes of the billing domain: requests (``…Create``) and frozen responses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from common.money import Currency, Money
from common.schemas import AwareDatetime, NonNegativeInt32, RequestBody

Priority = Literal["p1", "p2", "p3", "p4"]
PRIORITIES: tuple[Priority, ...] = ("p1", "p2", "p3", "p4")
Coverage = Literal["24x7", "business_hours"]
Interval = Literal["month", "year"]
PlanCode = Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9_-]{1,59}$", examples=["business"])]
Amount = Annotated[int, msgspec.Meta(ge=0, le=10_000_000_00)]
Minutes = Annotated[int, msgspec.Meta(ge=1, le=60 * 24 * 30)]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
# Where a URL is stored or handed to Stripe for a redirect: http(s) only, no javascript:.
HttpUrl = Annotated[
    str,
    msgspec.Meta(
        # Explicit ranges, not \s: Python's and ECMAScript's \s differ (\x1c…\x1f, \x85).
        pattern=r"^https?://[^\x00-\x20\x7f/?#@]+(?:[/?#][^\x00-\x20\x7f]*)?$",
        max_length=2048,
        examples=["https://helpdesk.example.com/billing/done"],
    ),
]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Window = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}$", examples=["09:00-17:00"])
]


class Target(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A first-response target for one priority."""

    first_response_minutes: Minutes
    coverage: Coverage
    update_minutes: Minutes | None = None


# ---------------------------------------------------------------- plans


class PlanCreate(RequestBody, kw_only=True):
    code: PlanCode
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    currency: Currency = "usd"
    monthly_price: Amount
    annual_price: Amount
    targets: dict[Priority, Target]
    included_incidents: NonNegativeInt32 | None = None
    overage_price: Amount | None = None
    fast_track_price: Amount | None = None
    fast_track_minutes: Minutes | None = None
    credit_percent: Percent = 0
    credit_cap_percent: Percent = 0


class PlanUpdate(RequestBody, kw_only=True):
    """Fields to change; anything omitted is carried over into the new version."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    monthly_price: Amount | None = None
    annual_price: Amount | None = None
    targets: dict[Priority, Target] | None = None
    included_incidents: NonNegativeInt32 | None = None
    overage_price: Amount | None = None
    fast_track_price: Amount | None = None
    fast_track_minutes: Minutes | None = None
    credit_percent: Percent | None = None
    credit_cap_percent: Percent | None = None


class CreditPolicy(msgspec.Struct, frozen=True):
    percent_per_breach: int
    cap_percent_per_period: int


class Plan(msgspec.Struct, frozen=True):
    id: str
    code: str
    version: int
    name: str
    description: str
    currency: str
    monthly_price: Money
    annual_price: Money
    targets: dict[str, Target]
    included_incidents: int | None
    overage_price: Money | None
    fast_track_price: Money | None
    fast_track_minutes: int | None
    fast_track_included: bool
    credit_policy: CreditPolicy
    is_current: bool
    created_at: datetime
    stripe_product_id: str | None = None
    stripe_price_ids: dict[str, str] = {}


# ---------------------------------------------------------------- customers


class CustomerCreate(RequestBody, kw_only=True):
    external_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=200,
            description="The helpdesk's own id of the organisation; unique (a second create "
            "with it is 409).",
            examples=["org-42"],
        ),
    ]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Acme GmbH"])]
    email: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$",
            max_length=320,
        ),
    ]
    timezone: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            description="IANA timezone of the customer's business hours.",
            examples=["Europe/Berlin"],
        ),
    ] = "UTC"
    country: (
        Annotated[
            str,
            msgspec.Meta(
                pattern="^[A-Z]{2}$",
                description="ISO 3166 country whose public holidays are not business time.",
                examples=["DE"],
            ),
        ]
        | None
    ) = None
    business_hours: (
        Annotated[
            dict[str, Annotated[list[Window], msgspec.Meta(max_length=12)]],
            msgspec.Meta(
                max_length=7,
                extra_json_schema={"propertyNames": {"enum": WEEKDAYS}},
                description="Windows per weekday, several a day allowed; a missing day is "
                "closed. Default: Monday to Friday 09:00-17:00.",
                examples=[{"mon": ["09:00-12:00", "13:00-17:00"], "fri": ["09:00-15:00"]}],
            ),
        ]
        | None
    ) = None


class Customer(msgspec.Struct, frozen=True):
    id: str
    external_id: str
    name: str
    email: str
    timezone: str
    country: str | None
    business_hours: dict[str, list[str]] | None
    stripe_customer_id: str | None
    has_payment_method: bool
    created_at: datetime


# ---------------------------------------------------------------- subscriptions


class SubscriptionCreate(RequestBody, kw_only=True):
    plan: PlanCode
    interval: Interval = "month"
    mode: Annotated[
        Literal["checkout", "charge_saved_method", "send_invoice"],
        msgspec.Meta(
            description="`checkout`: returns a Stripe Checkout `checkout_url` for the customer; "
            "`charge_saved_method`: charges the saved card now (402 when declined); "
            "`send_invoice`: Stripe emails an invoice due in `days_until_due` days."
        ),
    ] = "checkout"
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None
    days_until_due: Annotated[int, msgspec.Meta(ge=1, le=90)] = 30


class SubscriptionChange(RequestBody, kw_only=True):
    plan: PlanCode
    interval: Interval = "month"


class Subscription(msgspec.Struct, frozen=True):
    id: str
    customer_id: str
    plan: str
    plan_version: int
    interval: str
    status: str
    collection_method: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    stripe_subscription_id: str | None
    created_at: datetime


class SubscriptionCreated(msgspec.Struct, frozen=True):
    subscription: Subscription
    checkout_url: str | None = None


class ProrationLine(msgspec.Struct, frozen=True):
    description: str
    amount: int
    proration: bool
    period_start: datetime | None
    period_end: datetime | None


class ProrationPreview(msgspec.Struct, frozen=True):
    customer_id: str
    from_plan: str
    to_plan: str
    interval: str
    proration_date: datetime
    currency: str
    prorations: Money
    amount_due: Money
    lines: list[ProrationLine]


class PortalSession(msgspec.Struct, frozen=True):
    url: str


# ---------------------------------------------------------------- fast-track


class FastTrackPurchaseCreate(RequestBody, kw_only=True):
    quantity: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=100, description="Fast-tracked incidents to buy (credits).", examples=[2]
        ),
    ]
    mode: Annotated[
        Literal["checkout", "charge_saved_method"],
        msgspec.Meta(
            description="`checkout`: a Checkout URL for the customer; `charge_saved_method`: "
            "charge the card Stripe keeps for the customer now, off-session. Send an "
            "`Idempotency-Key`: a retry then never charges twice."
        ),
    ] = "checkout"
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None


class FastTrackPurchase(msgspec.Struct, frozen=True):
    id: str
    customer_id: str
    quantity: int
    unit_price: Money
    total: Money
    mode: str
    status: str
    checkout_url: str | None
    failure_reason: str | None
    created_at: datetime
    paid_at: datetime | None
    refunded_quantity: int


# ---------------------------------------------------------------- entitlement


class IncidentAllowance(msgspec.Struct, frozen=True):
    included: Annotated[
        int | None,
        msgspec.Meta(description="Incidents the plan includes a period; null: no limit."),
    ]
    used: Annotated[int, msgspec.Meta(description="Incidents opened in the current period.")]
    remaining: int | None


class FastTrackEntitlement(msgspec.Struct, frozen=True):
    credits: int
    price: Money | None  # None: not sold on this plan
    first_response_minutes: int | None
    included: bool  # the plan itself fast-tracks every incident
    coverage: Coverage = "24x7"  # a fast-tracked incident's clock always runs


class Entitlement(msgspec.Struct, frozen=True):
    """What a customer may expect at ``at`` (the API.md entitlement object)."""

    customer_id: str
    at: Annotated[datetime, msgspec.Meta(description="The instant this entitlement is for.")]
    tier: Annotated[
        str,
        msgspec.Meta(
            description="The plan in force (its code), or `standard` when no paid plan applies.",
            examples=["business"],
        ),
    ]
    plan_version: Annotated[int | None, msgspec.Meta(description="Null under `standard`.")]
    subscription_status: Annotated[
        str | None,
        msgspec.Meta(
            description="Stripe's status of the subscription; `active`, `trialing` and "
            "`past_due` within the grace period grant the plan. Null when none."
        ),
    ]
    valid_until: Annotated[
        datetime | None,
        msgspec.Meta(
            description="When this answer may change by itself: the period end, or the end of "
            "a past_due grace period."
        ),
    ]
    targets: Annotated[
        dict[str, Target],
        msgspec.Meta(description="First-response target and coverage per priority (p1 to p4)."),
    ]
    incidents: IncidentAllowance
    fast_track: FastTrackEntitlement
    in_grace_period: bool = False
    plan_id: str | None = None
    subscription_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    monthly_price: Money | None = None
    overage_price: Money | None = None
    credit_policy: CreditPolicy | None = None
    basis: Annotated[
        str,
        msgspec.Meta(
            description="Why this tier applies, in a sentence.",
            examples=["business v3: subscription subs_0mx4k3h8s5gtfvjjsretf90l8 is active"],
        ),
    ] = ""


class IncidentClaim(msgspec.Struct, frozen=True):
    """What billing decided when an incident was opened (idempotent per incident)."""

    incident_id: str
    entitlement: Entitlement
    fast_track_used: bool
    fast_track_purchase_id: str | None
    overage: bool
    overage_amount: Money | None


class ServiceCreditOutcome(msgspec.Struct, frozen=True):
    id: str
    incident_id: str
    customer_id: str
    kind: str  # refund, credit_note, none
    amount: Money
    status: str  # issued, skipped, failed, pending
    reason: str
    stripe_object_id: str | None
    created_at: datetime
    issued_at: datetime | None
    # While pending after a failed attempt: attempts so far, the last error, the next try.
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None


# ---------------------------------------------------------------- finance (the Stripe mirror)


LineSource = Literal["subscription", "proration", "overage", "fast_track", "other"]
LINE_SOURCES: tuple[LineSource, ...] = (
    "subscription",
    "proration",
    "overage",
    "fast_track",
    "other",
)


class InvoiceLine(msgspec.Struct, frozen=True):
    """One line of an invoice, with what produced it (``source``) when known."""

    description: str | None
    amount: int
    stripe_line_id: str | None = None
    source: Annotated[
        LineSource,
        msgspec.Meta(
            description=(
                "What produced the line: the plan's subscription, a proration of a plan"
                " change, an incident beyond the allowance (overage), a fast-track purchase,"
                " or something else."
            )
        ),
    ] = "other"
    proration: bool = False
    plan_code: str | None = None
    plan_version: int | None = None
    incident_id: str | None = None
    fast_track_purchase_id: str | None = None
    stripe_price_id: str | None = None
    stripe_invoice_item_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


class InvoiceView(msgspec.Struct, frozen=True):
    id: str
    stripe_invoice_id: str
    customer_id: str | None
    subscription_id: str | None
    number: str | None
    status: str
    billing_reason: str | None
    currency: str
    subtotal: Money
    tax: Money
    total: Money
    amount_paid: Money
    amount_due: Money
    period_start: datetime | None
    period_end: datetime | None
    created: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    hosted_invoice_url: str | None
    lines: list[InvoiceLine]


class CreditNoteView(msgspec.Struct, frozen=True):
    id: str
    stripe_credit_note_id: str
    stripe_invoice_id: str
    customer_id: str | None
    number: str | None
    status: str
    amount: Money
    reason: str | None
    memo: str | None
    created: datetime
    incident_id: str | None = None
    service_credit_id: str | None = None


class RefundView(msgspec.Struct, frozen=True):
    id: str
    stripe_refund_id: str
    stripe_payment_intent_id: str | None
    customer_id: str | None
    amount: Money
    status: str
    reason: str | None
    created: datetime
    fast_track_purchase_id: str | None = None
    incident_id: str | None = None
    service_credit_id: str | None = None


class PaymentView(msgspec.Struct, frozen=True):
    """A one-off payment (a fast-track purchase's PaymentIntent), as Stripe last told us."""

    id: str
    stripe_payment_intent_id: str
    stripe_charge_id: str | None
    customer_id: str | None
    fast_track_purchase_id: str | None
    amount: Money
    amount_received: Money
    amount_refunded: Money
    currency: str
    status: str
    description: str | None
    created: datetime
    paid_at: datetime | None
    refunds: list[RefundView] = []


class ReconcileCounts(msgspec.Struct, frozen=True):
    """One Stripe object type: how many were checked, restored (no row) and repaired."""

    checked: int = 0
    restored: int = 0
    repaired: int = 0
    restored_ids: list[str] = []
    repaired_ids: list[str] = []


class ReconcileReport(msgspec.Struct, frozen=True):
    """What a reconcile run found different between Stripe and the mirror, and fixed."""

    started_at: datetime
    finished_at: datetime
    since: datetime | None
    invoices: ReconcileCounts
    credit_notes: ReconcileCounts
    payments: ReconcileCounts
    refunds: ReconcileCounts

    @property
    def total_fixed(self) -> int:
        return sum(
            c.restored + c.repaired
            for c in (self.invoices, self.credit_notes, self.payments, self.refunds)
        )


# ---------------------------------------------------------------- requests on a customer's billing


class SubscriptionChangeRequest(SubscriptionChange, kw_only=True):
    """A change of plan or interval; ``proration_date`` is the preview's, to match it."""

    proration_date: AwareDatetime | None = None


class PortalRequest(RequestBody, kw_only=True):
    return_url: HttpUrl | None = None


class RefundRequest(RequestBody, kw_only=True):
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


class StripeWebhookAck(msgspec.Struct, frozen=True):
    received: bool
    duplicate: bool
    id: str
    dead: bool = False  # stored, but cannot be applied as sent (see `support-billing stripe dead`)


# ---------------------------------------------------------------- finance reports

InvoiceStatus = Literal["draft", "open", "paid", "uncollectible", "void"]
INVOICE_STATUSES: tuple[InvoiceStatus, ...] = ("draft", "open", "paid", "uncollectible", "void")
RevenueGroup = Literal["month", "plan"]
# Subscription invoices, or fast-track purchases (one-off payments): never summed together.
RevenueLine = Literal["subscriptions", "fast_track"]


class RevenueRow(msgspec.Struct, frozen=True, kw_only=True):
    """One group (a UTC month ``2026-11``, or a plan code) of one line of income, in one
    currency. ``net`` is ``paid - refunded - credited``; ``service_credits`` is the part of
    ``refunded`` and ``credited`` that SLA service credits paid (not added again)."""

    group: str
    line: RevenueLine
    currency: str
    documents: int  # invoices (subscriptions) or purchases (fast_track) in the group
    invoiced: Money
    paid: Money
    refunded: Money
    credited: Money
    service_credits: Money
    net: Money


class RevenueTotal(msgspec.Struct, frozen=True, kw_only=True):
    """Every line and group of one currency (currencies are never summed together)."""

    currency: str
    invoiced: Money
    paid: Money
    refunded: Money
    credited: Money
    service_credits: Money
    net: Money


class RevenueReport(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime = msgspec.field(name="from")
    end: datetime = msgspec.field(name="to")
    group_by: RevenueGroup
    rows: list[RevenueRow]
    totals: list[RevenueTotal]


class MrrRow(msgspec.Struct, frozen=True, kw_only=True):
    """Monthly recurring revenue of one plan in one currency at ``at`` (annual prices / 12).
    ``mrr`` counts ``active`` subscriptions; trialing and ``past_due`` ones are shown apart."""

    plan: str
    currency: str
    active: int
    mrr: Money
    trialing: int
    trialing_mrr: Money
    past_due: int
    past_due_mrr: Money


class MrrMovement(msgspec.Struct, frozen=True, kw_only=True):
    """How the ``active`` MRR of one currency moved from ``from`` to ``at``:
    ``end_mrr = start_mrr + new + expansion - contraction - churn``."""

    currency: str
    start_mrr: Money
    new: Money
    expansion: Money
    contraction: Money
    churn: Money
    end_mrr: Money


class MrrReport(msgspec.Struct, frozen=True, kw_only=True):
    at: datetime
    start: datetime | None = msgspec.field(name="from")
    rows: list[MrrRow]
    totals: list[MrrRow]  # one per currency, plan "*"
    movement: list[MrrMovement]  # empty without ``from``


class IncidentCredit(msgspec.Struct, frozen=True):
    """A service credit issued for one incident (what the SLA reports add up)."""

    incident_id: str
    kind: str
    amount: Money
