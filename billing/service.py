"""Billing's public use cases: what the API, the SLA engine, the worker and the CLI call.

Everything else in the package is internal; import-linter holds the other packages to
this module (with ``billing.schemas`` and ``billing.exceptions`` for shapes and errors).
"""

from __future__ import annotations

from datetime import datetime

from billing import (
    catalog,
    catchup,
    credits,
    customers,
    entitlement_cache,
    entitlements,
    fasttrack,
    finance,
    inbox,
    payments,
    reconcile,
    reports,
    reservations,
    schemas,
    seed,
    stripe_catalog,
    stripe_gateway,
    subscriptions,
    usage,
)

# ---------------------------------------------------------------- the Stripe connection

configure_stripe = stripe_gateway.configure_from_settings
close_stripe = stripe_gateway.close

# ---------------------------------------------------------------- plans

list_plans = catalog.list_current
create_plan = catalog.create_plan
get_plan = catalog.get_plan
new_plan_version = catalog.new_version
seed_catalog = seed.seed_if_empty
sync_catalog_to_stripe = stripe_catalog.sync_to_stripe

# ---------------------------------------------------------------- customers

create_customer = customers.create_customer
get_customer = customers.get_customer
find_customers = customers.find_by_external_id
list_customers = customers.list_customers

# ---------------------------------------------------------------- subscriptions

create_subscription = subscriptions.create
get_subscription = subscriptions.get_current
preview_subscription_change = subscriptions.preview_change
change_subscription = subscriptions.change
cancel_subscription = subscriptions.cancel
portal_url = subscriptions.portal_url

# ---------------------------------------------------------------- fast-track

buy_fast_track = fasttrack.purchase
list_fast_track = fasttrack.list_purchases
refund_fast_track = fasttrack.refund_unused
refresh_fast_track = fasttrack.refresh
expire_fast_track = fasttrack.expire_due

# ---------------------------------------------------------------- entitlements and incidents


async def get_entitlement(customer_id: str, at: datetime | None = None) -> schemas.Entitlement:
    return await entitlements.entitlement(customer_id, at)


async def claim_incident(
    customer_id: str, incident_id: str, opened_at: datetime, *, fast_track: bool
) -> schemas.IncidentClaim:
    return await usage.claim_incident(customer_id, incident_id, opened_at, fast_track=fast_track)


bill_overages = usage.bill_pending_overages
# The API process keeps a cache of entitlements true by listening to PostgreSQL.
start_entitlement_cache = entitlement_cache.start
stop_entitlement_cache = entitlement_cache.stop
announce_lapsed_grace = entitlements.announce_lapsed_grace

# ---------------------------------------------------------------- service credits

issue_breach_credit = credits.issue_breach_credit
reissue_credit = credits.reissue
failed_credit_ids = credits.failed_ids
get_credit = credits.get_credit
list_credits = credits.list_credits

# ---------------------------------------------------------------- Stripe events

verify_stripe_delivery = inbox.verify
store_stripe_event = inbox.store
process_stripe_event = inbox.process
pending_stripe_events = inbox.pending
dead_stripe_events = inbox.dead
mark_stripe_events_for_replay = inbox.mark_for_replay
catch_up_stripe_events = catchup.catch_up
expire_abandoned_reservations = reservations.expire_abandoned

# ---------------------------------------------------------------- finance

list_invoices = finance.list_invoices
get_invoice = finance.get_invoice
list_credit_notes = finance.list_credit_notes
# CSV as an async iterator of chunks, read from a server-side cursor (never a list).
invoices_csv = finance.invoices_csv
INVOICE_CSV_HEADER = finance.CSV_HEADER
# A small table (a report's rows) as CSV chunks.
rows_csv = finance.rows_csv

# ---------------------------------------------------------------- finance reports

revenue_report = reports.revenue_report
mrr_report = reports.mrr_report
revenue_csv = reports.revenue_csv
mrr_csv = reports.mrr_csv
# The issued service credits of some incidents (the SLA reports add them up per tier).
incident_credits = reports.incident_credits

# ---------------------------------------------------------------- the mirror: payments, reconcile

list_payments = payments.list_payments
get_payment = payments.get_payment
reconcile_with_stripe = reconcile.reconcile
