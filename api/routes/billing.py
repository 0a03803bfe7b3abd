"""HTTP routes of the billing capability: plans, customers, subscriptions, fast-track,
entitlements, the Stripe webhook inbox and the finance views."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler

from api.auth import ADMIN, ANY_ROLE, FINANCE, HELPDESK, HELPDESK_OR_FINANCE, PUBLIC
from api.middleware import request_key
from api.pagination import Limit, Page
from billing import (
    catalog,
    credits,
    customers,
    entitlements,
    fasttrack,
    finance,
    inbox,
    schemas,
    subscriptions,
)
from common.clock import utcnow
from common.config import Settings
from common.errors import InvalidRequest
from common.schemas import INT32_MAX, AwareDatetime, RequestBody
from sla import enforcement
from workers import queue
from workers.sla_jobs import schedule

CreditStatus = Literal["pending", "issued", "skipped", "failed"]

# ---------------------------------------------------------------- plans


@get(
    "/v1/plans",
    operation_id="listPlans",
    tags=["plans"],
    opt=ANY_ROLE,
    summary="Current plan versions, with targets per priority and prices",
)
async def list_plans() -> Page[schemas.Plan]:
    return Page(data=await catalog.list_current(), has_more=False)


@post(
    "/v1/plans",
    operation_id="createPlan",
    tags=["plans"],
    opt=ADMIN,
    summary="Create a plan (its first version)",
)
async def create_plan(data: JSONBody[schemas.PlanCreate]) -> schemas.Plan:
    return await catalog.create_plan(data)


@get(
    "/v1/plans/{code:str}",
    operation_id="getPlan",
    tags=["plans"],
    opt=ANY_ROLE,
    summary="One plan: the current version, or ?version=",
)
async def get_plan(
    code: FromPath[str],
    version: Annotated[int | None, QueryParameter(ge=1, le=INT32_MAX)] = None,
) -> schemas.Plan:
    return await catalog.get_plan(code, version)


@patch(
    "/v1/plans/{code:str}",
    operation_id="updatePlan",
    tags=["plans"],
    opt=ADMIN,
    summary="Make a new version of the plan; subscribers stay on theirs",
)
async def update_plan(code: FromPath[str], data: JSONBody[schemas.PlanUpdate]) -> schemas.Plan:
    return await catalog.new_version(code, data)


# ---------------------------------------------------------------- customers


@post(
    "/v1/customers",
    operation_id="createCustomer",
    tags=["customers"],
    opt=ADMIN,
    summary="Create a customer here and in Stripe",
)
async def create_customer(
    request: Request[Any, Any, State], data: JSONBody[schemas.CustomerCreate]
) -> schemas.Customer:
    return await customers.create_customer(data, request_key(request.scope))


@get(
    "/v1/customers",
    operation_id="listCustomers",
    tags=["customers"],
    opt=HELPDESK,
    summary="Customers; ?external_id= looks one up by the helpdesk's own id",
)
async def list_customers(
    external_id: FromQuery[str | None] = None,
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
) -> Page[schemas.Customer]:
    if external_id is not None:
        return Page(data=await customers.find_by_external_id(external_id), has_more=False)
    found, more = await customers.list_customers(limit, starting_after)
    return Page(data=found, has_more=more)


@get(
    "/v1/customers/{customer_id:str}",
    operation_id="getCustomer",
    tags=["customers"],
    opt=HELPDESK,
    summary="One customer",
)
async def get_customer(customer_id: FromPath[str]) -> schemas.Customer:
    return await customers.get_customer(customer_id)


# ---------------------------------------------------------------- subscriptions


@post(
    "/v1/customers/{customer_id:str}/subscription",
    operation_id="createSubscription",
    tags=["subscriptions"],
    opt=ADMIN,
    summary="Subscribe: Checkout (returns checkout_url), a saved card, or invoicing",
)
async def create_subscription(
    request: Request[Any, Any, State],
    customer_id: FromPath[str],
    data: JSONBody[schemas.SubscriptionCreate],
) -> schemas.SubscriptionCreated:
    return await subscriptions.create(customer_id, data, request_key(request.scope))


@get(
    "/v1/customers/{customer_id:str}/subscription",
    operation_id="getSubscription",
    tags=["subscriptions"],
    opt=HELPDESK_OR_FINANCE,
    summary="The current subscription",
)
async def get_subscription(customer_id: FromPath[str]) -> schemas.Subscription:
    return await subscriptions.get_current(customer_id)


class ChangeRequest(schemas.SubscriptionChange, kw_only=True):
    proration_date: AwareDatetime | None = None


@post(
    "/v1/customers/{customer_id:str}/subscription/preview",
    operation_id="previewSubscriptionChange",
    tags=["subscriptions"],
    opt=ADMIN,
    status_code=HTTP_200_OK,
    summary="Proration preview of a plan or interval change (Stripe's create-preview)",
)
async def preview_subscription_change(
    customer_id: FromPath[str], data: JSONBody[ChangeRequest]
) -> schemas.ProrationPreview:
    change = schemas.SubscriptionChange(plan=data.plan, interval=data.interval)
    return await subscriptions.preview_change(customer_id, change, _past(data.proration_date))


@patch(
    "/v1/customers/{customer_id:str}/subscription",
    operation_id="changeSubscription",
    tags=["subscriptions"],
    opt=ADMIN,
    summary="Change plan or interval, prorated; pass the preview's proration_date to match it",
)
async def change_subscription(
    customer_id: FromPath[str], data: JSONBody[ChangeRequest]
) -> schemas.Subscription:
    change = schemas.SubscriptionChange(plan=data.plan, interval=data.interval)
    return await subscriptions.change(customer_id, change, _past(data.proration_date))


@delete(
    "/v1/customers/{customer_id:str}/subscription",
    operation_id="cancelSubscription",
    tags=["subscriptions"],
    opt=ADMIN,
    status_code=HTTP_200_OK,
    summary="Cancel at period end (default) or now (?at_period_end=false)",
)
async def cancel_subscription(
    customer_id: FromPath[str], at_period_end: FromQuery[bool] = True
) -> schemas.Subscription:
    return await subscriptions.cancel(customer_id, at_period_end)


class PortalRequest(RequestBody, kw_only=True):
    return_url: schemas.HttpUrl | None = None


@post(
    "/v1/customers/{customer_id:str}/portal-session",
    operation_id="createPortalSession",
    tags=["subscriptions"],
    opt=ADMIN,
    summary="A Stripe customer-portal URL (card, invoices, cancel)",
)
async def create_portal_session(
    customer_id: FromPath[str], data: JSONBody[PortalRequest]
) -> schemas.PortalSession:
    return await subscriptions.portal_url(customer_id, data.return_url)


# ---------------------------------------------------------------- fast-track and entitlements


@post(
    "/v1/customers/{customer_id:str}/fast-track-purchases",
    operation_id="buyFastTrack",
    tags=["fast-track"],
    opt=HELPDESK,
    summary="Buy fast-tracked incidents: Checkout (checkout_url) or the saved card",
)
async def buy_fast_track(
    request: Request[Any, Any, State],
    customer_id: FromPath[str],
    data: JSONBody[schemas.FastTrackPurchaseCreate],
) -> schemas.FastTrackPurchase:
    return await fasttrack.purchase(customer_id, data, request_key(request.scope))


@get(
    "/v1/customers/{customer_id:str}/fast-track-purchases",
    operation_id="listFastTrack",
    tags=["fast-track"],
    opt=HELPDESK_OR_FINANCE,
    summary="The customer's purchases",
)
async def list_fast_track(customer_id: FromPath[str]) -> Page[schemas.FastTrackPurchase]:
    return Page(data=await fasttrack.list_purchases(customer_id), has_more=False)


class RefundRequest(RequestBody, kw_only=True):
    quantity: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


@post(
    "/v1/customers/{customer_id:str}/fast-track-purchases/{purchase_id:str}/refund",
    operation_id="refundFastTrack",
    tags=["fast-track"],
    opt=ADMIN,
    status_code=HTTP_200_OK,
    summary="Refund unused credits of a purchase through Stripe",
)
async def refund_fast_track(
    customer_id: FromPath[str], purchase_id: FromPath[str], data: JSONBody[RefundRequest]
) -> schemas.FastTrackPurchase:
    return await fasttrack.refund_unused(customer_id, purchase_id, data.quantity)


@post(
    "/v1/customers/{customer_id:str}/fast-track-purchases/{purchase_id:str}/refresh",
    operation_id="refreshFastTrack",
    tags=["fast-track"],
    opt=HELPDESK,
    status_code=HTTP_200_OK,
    summary="Re-read a purchase from Stripe (after the customer returns from Checkout)",
)
async def refresh_fast_track(
    customer_id: FromPath[str], purchase_id: FromPath[str]
) -> schemas.FastTrackPurchase:
    return await fasttrack.refresh(customer_id, purchase_id)


def _past(at: datetime | None, field: str = "at") -> datetime | None:
    if at is None:
        return None
    if at.tzinfo is None:
        raise InvalidRequest(f"{field} must carry a timezone offset (RFC 3339)", field=field)
    if at > utcnow():
        raise InvalidRequest(f"{field} must not be in the future", field=field)
    return at


@get(
    "/v1/customers/{customer_id:str}/entitlements",
    operation_id="getEntitlement",
    tags=["entitlements"],
    opt=HELPDESK,
    summary="What the customer is entitled to now, or at a past ?at= (disputes)",
)
async def get_entitlement(
    customer_id: FromPath[str], at: FromQuery[datetime | None] = None
) -> schemas.Entitlement:
    return await entitlements.entitlement(customer_id, _past(at))


# ---------------------------------------------------------------- Stripe webhook inbox


class WebhookAck(msgspec.Struct, frozen=True):
    received: bool
    duplicate: bool
    id: str
    dead: bool = False  # stored, but cannot be applied as sent (see `support-billing stripe dead`)


@post(
    "/v1/stripe/webhook",
    operation_id="stripeWebhook",
    tags=["stripe"],
    security=[{}],
    opt=PUBLIC,
    status_code=HTTP_200_OK,
    summary="Inbound Stripe events (signature-verified)",
)
async def stripe_webhook(request: Request[Any, Any, Any], state: State) -> WebhookAck:
    settings: Settings = state.settings
    secret = settings.webhook_secret
    payload = await request.body()
    inbound = inbox.verify(payload, request.headers.get("stripe-signature"), secret)
    fresh = await inbox.store(inbound)
    if fresh and inbound.problem is None:
        await queue.after_commit(
            queue.enqueue_stripe_event(state.redis, inbound.id), "the Stripe event"
        )
    # A signed event that cannot be applied is kept dead and still answered 2xx: Stripe
    # would otherwise redeliver it for days, failing the same way each time.
    return WebhookAck(
        received=True, duplicate=not fresh, id=inbound.id, dead=inbound.problem is not None
    )


# Stored as sent and verified on the exact bytes: the input boundary checks only size.
RAW_BODY_PATHS = frozenset({"/v1/stripe/webhook"})


# ---------------------------------------------------------------- finance


@get(
    "/v1/service-credits",
    operation_id="listServiceCredits",
    tags=["finance"],
    opt=FINANCE,
    summary="Service credits paid (or skipped) for breached incidents",
)
async def list_service_credits(
    customer_id: FromQuery[str | None] = None,
    status: FromQuery[CreditStatus | None] = None,
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
) -> Page[schemas.ServiceCreditOutcome]:
    found, more = await credits.list_credits(customer_id, limit, starting_after, status)
    return Page(data=found, has_more=more)


@post(
    "/v1/service-credits/{credit_id:str}/retry",
    operation_id="retryServiceCredit",
    tags=["finance"],
    opt=ADMIN,
    status_code=202,
    summary="Re-issue a failed service credit (Stripe refused it past the retry policy)",
)
async def retry_service_credit(
    state: State, credit_id: FromPath[str]
) -> schemas.ServiceCreditOutcome:
    job = await enforcement.retry_credit(credit_id)
    await queue.after_commit(schedule(state.redis, [job]), "the service credit")
    return await credits.get_credit(credit_id)


@get(
    "/v1/invoices",
    operation_id="listInvoices",
    tags=["finance"],
    opt=FINANCE,
    summary="The invoice mirror; filter by customer, status and creation time",
)
async def list_invoices(
    customer_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    created_from: Annotated[datetime | None, QueryParameter(name="from")] = None,
    created_to: Annotated[datetime | None, QueryParameter(name="to")] = None,
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
) -> Page[finance.InvoiceView]:
    found, more = await finance.list_invoices(
        customer_id=customer_id,
        status=status,
        created_from=_aware(created_from, "from"),
        created_to=_aware(created_to, "to"),
        limit=limit,
        starting_after=starting_after,
    )
    return Page(data=found, has_more=more)


@get(
    "/v1/invoices/export.csv",
    operation_id="exportInvoices",
    tags=["finance"],
    opt=FINANCE,
    summary="The same filters, as CSV (amounts in minor units)",
    media_type="text/csv",
)
async def export_invoices(
    customer_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    created_from: Annotated[datetime | None, QueryParameter(name="from")] = None,
    created_to: Annotated[datetime | None, QueryParameter(name="to")] = None,
) -> Response[str]:
    found, _ = await finance.list_invoices(
        customer_id=customer_id,
        status=status,
        created_from=_aware(created_from, "from"),
        created_to=_aware(created_to, "to"),
        limit=100_000,
        starting_after=None,
    )
    return Response(
        finance.to_csv(found),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="invoices.csv"'},
    )


@get(
    "/v1/invoices/{invoice_id:str}",
    operation_id="getInvoice",
    tags=["finance"],
    opt=FINANCE,
    summary="One invoice (our id or Stripe's)",
)
async def get_invoice(invoice_id: FromPath[str]) -> finance.InvoiceView:
    return await finance.get_invoice(invoice_id)


@get(
    "/v1/credit-notes",
    operation_id="listCreditNotes",
    tags=["finance"],
    opt=FINANCE,
    summary="Credit notes mirrored from Stripe",
)
async def list_credit_notes(
    customer_id: FromQuery[str | None] = None,
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
) -> Page[finance.CreditNoteView]:
    found, more = await finance.list_credit_notes(customer_id, limit, starting_after)
    return Page(data=found, has_more=more)


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{field} must carry a timezone offset (RFC 3339)", field=field)
    return value


ROUTES: Sequence[ControllerRouterHandler] = (
    list_plans,
    create_plan,
    get_plan,
    update_plan,
    create_customer,
    list_customers,
    get_customer,
    create_subscription,
    get_subscription,
    preview_subscription_change,
    change_subscription,
    cancel_subscription,
    create_portal_session,
    buy_fast_track,
    list_fast_track,
    refund_fast_track,
    refresh_fast_track,
    get_entitlement,
    stripe_webhook,
    list_service_credits,
    retry_service_credit,
    list_invoices,
    export_invoices,
    get_invoice,
    list_credit_notes,
)
