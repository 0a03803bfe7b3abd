"""Piccolo tables of the billing domain: plans, customers, subscriptions, money mirrors."""

from __future__ import annotations

from piccolo.columns import (
    JSONB,
    BigInt,
    Boolean,
    Bytea,
    Integer,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class Plan(Table, tablename="plan"):
    """One version of a plan; a price or target change inserts a new row."""

    id = Varchar(length=40, primary_key=True)
    code = Varchar(length=60, index=True)
    version = Integer()
    is_current = Boolean(default=True, index=True)
    name = Varchar(length=200)
    description = Text(default="")
    currency = Varchar(length=3)
    monthly_price = BigInt()
    annual_price = BigInt()
    # {"p1": {"first_response_minutes": 120, "coverage": "24x7"}, ...}
    targets = JSONB()
    included_incidents = Integer(null=True, default=None)  # null = unlimited
    overage_price = BigInt(null=True, default=None)
    fast_track_price = BigInt(null=True, default=None)  # null: not sold; 0: included
    fast_track_minutes = Integer(null=True, default=None)
    credit_percent = Integer(default=0)
    credit_cap_percent = Integer(default=0)
    stripe_product_id = Varchar(length=100, null=True, default=None)
    stripe_price_month_id = Varchar(length=100, null=True, default=None)
    stripe_price_year_id = Varchar(length=100, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class Customer(Table, tablename="customer"):
    id = Varchar(length=40, primary_key=True)
    external_id = Varchar(length=200, unique=True, index=True)
    name = Varchar(length=200)
    email = Varchar(length=320)
    timezone = Varchar(length=64, default="UTC")
    country = Varchar(length=2, null=True, default=None)
    business_hours = JSONB(null=True, default=None)
    stripe_customer_id = Varchar(length=100, null=True, default=None, unique=True)
    default_payment_method = Varchar(length=100, null=True, default=None)
    # Set while a request creates the Stripe customer (the row is reserved first).
    stripe_lease_until = Timestamptz(null=True, default=None)
    request_key = Varchar(length=100, null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class Subscription(Table, tablename="subscription"):
    """The mirror of one Stripe subscription; ``status`` follows Stripe."""

    id = Varchar(length=40, primary_key=True)
    customer_id = Varchar(length=40, index=True)
    plan_id = Varchar(length=40)
    plan_code = Varchar(length=60)
    plan_version = Integer()
    interval = Varchar(length=5)
    status = Varchar(length=20, index=True)
    collection_method = Varchar(length=30, default="charge_automatically")
    current_period_start = Timestamptz(null=True, default=None)
    current_period_end = Timestamptz(null=True, default=None)
    cancel_at_period_end = Boolean(default=False)
    canceled_at = Timestamptz(null=True, default=None)
    past_due_since = Timestamptz(null=True, default=None)
    stripe_subscription_id = Varchar(length=100, null=True, default=None, unique=True)
    stripe_checkout_session_id = Varchar(length=100, null=True, default=None, unique=True)
    stripe_item_id = Varchar(length=100, null=True, default=None)
    # Set while a request creates the Stripe subscription or Checkout Session.
    stripe_lease_until = Timestamptz(null=True, default=None)
    request_key = Varchar(length=100, null=True, default=None, index=True)
    # Order key of the last Stripe state applied (see subscriptions.event_key):
    # an older event never overwrites newer state.
    stripe_event_key = Varchar(length=160, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class SubscriptionHistory(Table, tablename="subscription_history"):
    """Append-only: the subscription's plan and status from ``effective_at`` on (disputes)."""

    id = Varchar(length=40, primary_key=True)
    subscription_id = Varchar(length=40, index=True)
    customer_id = Varchar(length=40, index=True)
    effective_at = Timestamptz(index=True)
    plan_id = Varchar(length=40)
    status = Varchar(length=20)
    interval = Varchar(length=5)
    current_period_start = Timestamptz(null=True, default=None)
    current_period_end = Timestamptz(null=True, default=None)
    past_due_since = Timestamptz(null=True, default=None)


class FastTrackPurchase(Table, tablename="fast_track_purchase"):
    id = Varchar(length=40, primary_key=True)
    customer_id = Varchar(length=40, index=True)
    quantity = Integer()
    unit_amount = BigInt()
    currency = Varchar(length=3)
    mode = Varchar(length=30)
    status = Varchar(length=30, index=True)  # pending, paid, failed, requires_action, refunded
    checkout_url = Text(null=True, default=None)
    stripe_checkout_session_id = Varchar(length=100, null=True, default=None, unique=True)
    stripe_payment_intent_id = Varchar(length=100, null=True, default=None, unique=True)
    failure_reason = Text(null=True, default=None)
    refunded_quantity = Integer(default=0)
    # Set while a request creates the PaymentIntent or Checkout Session.
    stripe_lease_until = Timestamptz(null=True, default=None)
    request_key = Varchar(length=100, null=True, default=None, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    paid_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None, index=True)


class FastTrackLedger(Table, tablename="fast_track_ledger"):
    """Append-only credit movements; the balance is their sum."""

    id = Varchar(length=40, primary_key=True)
    customer_id = Varchar(length=40, index=True)
    delta = Integer()
    reason = Varchar(length=20)  # purchase, use, return, expiry, refund
    purchase_id = Varchar(length=40, null=True, default=None, index=True)
    incident_id = Varchar(length=40, null=True, default=None, index=True)
    # Idempotency of each movement: one row per (reason, subject).
    dedupe_key = Varchar(length=120, unique=True)
    expires_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)


class IncidentUsage(Table, tablename="incident_usage"):
    """One row per incident counted against a customer's allowance (and overage billing)."""

    id = Varchar(length=40, primary_key=True)
    incident_id = Varchar(length=40, unique=True)
    customer_id = Varchar(length=40, index=True)
    opened_at = Timestamptz(index=True)
    subscription_id = Varchar(length=40, null=True, default=None)
    period_start = Timestamptz(null=True, default=None)
    fast_track = Boolean(default=False)
    fast_track_purchase_id = Varchar(length=40, null=True, default=None)
    overage = Boolean(default=False)
    overage_amount = BigInt(default=0)
    currency = Varchar(length=3, null=True, default=None)
    stripe_invoice_item_id = Varchar(length=100, null=True, default=None)
    claim = JSONB(default={})  # the IncidentClaim answered, replayed on a second call


class ServiceCredit(Table, tablename="service_credit"):
    """At most one per breached incident: a refund or a credit note."""

    id = Varchar(length=40, primary_key=True)
    incident_id = Varchar(length=40, unique=True)
    customer_id = Varchar(length=40, index=True)
    kind = Varchar(length=20)  # refund, credit_note, none
    amount = BigInt()
    currency = Varchar(length=3)
    reason = Text()
    status = Varchar(length=20, index=True)  # pending, issued, skipped, failed
    stripe_object_id = Varchar(length=100, null=True, default=None)
    stripe_invoice_id = Varchar(length=100, null=True, default=None)
    period_start = Timestamptz(null=True, default=None)
    last_error = Text(null=True, default=None)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None, index=True)
    # Definitive refusals by Stripe so far: each re-issue asks under a new idempotency key.
    refusals = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    issued_at = Timestamptz(null=True, default=None)


class Invoice(Table, tablename="invoice"):
    """Mirror of a Stripe invoice."""

    id = Varchar(length=40, primary_key=True)
    stripe_invoice_id = Varchar(length=100, unique=True)
    customer_id = Varchar(length=40, null=True, default=None, index=True)
    subscription_id = Varchar(length=40, null=True, default=None, index=True)
    number = Varchar(length=100, null=True, default=None)
    status = Varchar(length=20, index=True)
    billing_reason = Varchar(length=40, null=True, default=None)
    currency = Varchar(length=3)
    subtotal = BigInt(default=0)
    tax = BigInt(default=0)
    total = BigInt(default=0)
    amount_paid = BigInt(default=0)
    amount_due = BigInt(default=0)
    period_start = Timestamptz(null=True, default=None)
    period_end = Timestamptz(null=True, default=None)
    created = Timestamptz(index=True)
    finalized_at = Timestamptz(null=True, default=None)
    paid_at = Timestamptz(null=True, default=None)
    hosted_invoice_url = Text(null=True, default=None)
    lines = JSONB(default=[])
    stripe_object = JSONB(default={})
    # The ordering key (billing.ordering) of the event the row was last built from.
    stripe_event_key = Varchar(length=160, default="")


class CreditNote(Table, tablename="credit_note"):
    """Mirror of a Stripe credit note."""

    id = Varchar(length=40, primary_key=True)
    stripe_credit_note_id = Varchar(length=100, unique=True)
    stripe_invoice_id = Varchar(length=100, index=True)
    customer_id = Varchar(length=40, null=True, default=None, index=True)
    number = Varchar(length=100, null=True, default=None)
    status = Varchar(length=20)
    currency = Varchar(length=3)
    amount = BigInt()
    reason = Varchar(length=60, null=True, default=None)
    memo = Text(null=True, default=None)
    created = Timestamptz(index=True)
    stripe_object = JSONB(default={})
    # The breached incident (and our service credit) it pays, from our metadata.
    incident_id = Varchar(length=40, null=True, default=None, index=True)
    service_credit_id = Varchar(length=40, null=True, default=None)
    stripe_event_key = Varchar(length=160, default="")


class Refund(Table, tablename="refund"):
    """Mirror of a Stripe refund."""

    id = Varchar(length=40, primary_key=True)
    stripe_refund_id = Varchar(length=100, unique=True)
    stripe_payment_intent_id = Varchar(length=100, null=True, default=None, index=True)
    customer_id = Varchar(length=40, null=True, default=None, index=True)
    amount = BigInt()
    currency = Varchar(length=3)
    status = Varchar(length=20)
    reason = Text(null=True, default=None)
    created = Timestamptz(index=True)
    stripe_charge_id = Varchar(length=100, null=True, default=None)
    # What it gives back: a fast-track purchase, and the breached incident when it is a
    # service credit (from our metadata).
    fast_track_purchase_id = Varchar(length=40, null=True, default=None)
    incident_id = Varchar(length=40, null=True, default=None, index=True)
    service_credit_id = Varchar(length=40, null=True, default=None)
    stripe_object = JSONB(default={})
    stripe_event_key = Varchar(length=160, default="")


class Payment(Table, tablename="payment"):
    """Mirror of a one-off Stripe PaymentIntent (a fast-track purchase), with its charge."""

    id = Varchar(length=40, primary_key=True)
    stripe_payment_intent_id = Varchar(length=100, unique=True)
    stripe_charge_id = Varchar(length=100, null=True, default=None)
    customer_id = Varchar(length=40, null=True, default=None, index=True)
    fast_track_purchase_id = Varchar(length=40, null=True, default=None, index=True)
    amount = BigInt(default=0)
    amount_received = BigInt(default=0)
    amount_refunded = BigInt(default=0)
    currency = Varchar(length=3)
    status = Varchar(length=40, index=True)
    description = Text(null=True, default=None)
    created = Timestamptz(index=True)
    paid_at = Timestamptz(null=True, default=None)
    stripe_object = JSONB(default={})
    stripe_event_key = Varchar(length=160, default="")


class StripeEvent(Table, tablename="stripe_event"):
    """The webhook inbox: each Stripe event once, processed by a job."""

    id = Varchar(length=100, primary_key=True)  # Stripe's evt_ id
    type = Varchar(length=100, index=True)
    created = BigInt()
    # ``body`` as Stripe sent it; ``payload`` is its parsed copy, only for an event that
    # can be applied (jsonb cannot hold NUL, and a tree is only as sane as its sender).
    body = Bytea(null=True, default=None)
    payload = JSONB(null=True, default=None)
    received_at = Timestamptz(default=TimestamptzNow())
    processed_at = Timestamptz(null=True, default=None, index=True)
    attempts = Integer(default=0)
    last_error = Text(null=True, default=None)
    # Set when the event cannot be applied as it is: no automatic retry, `stripe replay`.
    dead_at = Timestamptz(null=True, default=None, index=True)


class StripeSyncState(Table, tablename="stripe_sync_state"):
    """Cursors of the pulls from Stripe (``events``: every event created before
    ``position`` is in the inbox)."""

    name = Varchar(length=40, primary_key=True)
    position = Timestamptz()
    updated_at = Timestamptz(default=TimestamptzNow())


TABLES: tuple[type[Table], ...] = (
    Plan,
    Customer,
    Subscription,
    SubscriptionHistory,
    FastTrackPurchase,
    FastTrackLedger,
    IncidentUsage,
    ServiceCredit,
    Invoice,
    CreditNote,
    Refund,
    Payment,
    StripeEvent,
    StripeSyncState,
)
