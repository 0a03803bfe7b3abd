"""HTTP routes of the billing capability: plans, customers, subscriptions, fast-track,
entitlements, the Stripe webhook inbox and the finance views. Each controller is a
resource: its path, tags and roles are said once; each handler is a call and a return."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler

from api.auth import ADMIN, ANY_ROLE, FINANCE, HELPDESK, HELPDESK_OR_FINANCE, PUBLIC
from api.dependencies import FollowUps
from api.middleware import request_key
from api.pagination import Limit, Page
from billing import schemas
from billing import service as billing
from common.clock import past_instant, window
from common.config import Settings
from common.errors import InvalidRequest
from common.schemas import INT32_MAX
from sla import service as sla

CreditStatus = Literal["pending", "issued", "skipped", "failed"]
From = Annotated[datetime | None, QueryParameter(name="from")]
To = Annotated[datetime | None, QueryParameter(name="to")]


def _past(at: datetime | None, field: str = "at") -> datetime | None:
    return None if at is None else past_instant(at, field=field)


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{field} must carry a timezone offset (RFC 3339)", field=field)
    return value


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """``from``/``to`` of a finance list: each aware, and ``from`` before ``to`` (else 422)."""
    start, end = _aware(start, "from"), _aware(end, "to")
    if start is not None and end is not None:
        return window(start, end)
    return start, end


class PlanController(Controller):
    path = "/v1/plans"
    tags = ["plans"]
    opt = ANY_ROLE

    @get(operation_id="listPlans", summary="Current plan versions, with targets and prices")
    async def list_plans(self) -> Page[schemas.Plan]:
        """The plans on sale now, each at its current version: prices per interval, the
        first-response target of each priority, included incidents, the fast-track price and
        the service-credit policy. Any role."""
        return Page(data=await billing.list_plans(), has_more=False)

    @post(operation_id="createPlan", opt=ADMIN, summary="Create a plan (its first version)")
    async def create_plan(self, data: JSONBody[schemas.PlanCreate]) -> schemas.Plan:
        """Create a plan (version 1). Its Stripe Product and Prices (lookup keys
        `<plan>_v<version>_<interval>`) are made when it is first sold. 409 when the code is
        taken."""
        return await billing.create_plan(data)

    @get(
        "/{code:str}", operation_id="getPlan", summary="One plan: the current version, or ?version="
    )
    async def get_plan(
        self,
        code: FromPath[str],
        version: Annotated[int | None, QueryParameter(ge=1, le=INT32_MAX)] = None,
    ) -> schemas.Plan:
        """One plan at its current version, or at `?version=` (subscribers keep the version
        they subscribed to). 404 for an unknown code or version."""
        return await billing.get_plan(code, version)

    @patch(
        "/{code:str}",
        operation_id="updatePlan",
        opt=ADMIN,
        summary="Make a new version of the plan; subscribers stay on theirs",
    )
    async def update_plan(
        self, code: FromPath[str], data: JSONBody[schemas.PlanUpdate]
    ) -> schemas.Plan:
        """Make the next version of the plan with these fields changed (the rest carried
        over). Existing subscribers stay on their version until they change plan."""
        return await billing.new_plan_version(code, data)


class CustomerController(Controller):
    path = "/v1/customers"
    tags = ["customers"]
    opt = HELPDESK

    @post(operation_id="createCustomer", opt=ADMIN, summary="Create a customer here and in Stripe")
    async def create_customer(
        self, request: Request[Any, Any, State], data: JSONBody[schemas.CustomerCreate]
    ) -> schemas.Customer:
        """Create the customer here and in Stripe, once per `external_id`: a concurrent or
        repeated create is 409, and a retry after a 503 finishes the same Stripe customer.
        Its timezone, business hours and country are the SLA calendar (422 when unusable)."""
        sla.check_calendar(data.timezone, data.business_hours, data.country)
        return await billing.create_customer(data, request_key(request.scope))

    @get(
        operation_id="listCustomers",
        summary="Customers; ?external_id= looks one up by the helpdesk's own id",
    )
    async def list_customers(
        self,
        external_id: FromQuery[str | None] = None,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[schemas.Customer]:
        """Customers in creation order (keyset pages), or the one with `?external_id=`: how a
        helpdesk finds its organisation's customer id."""
        if external_id is not None:
            return Page(data=await billing.find_customers(external_id), has_more=False)
        found, more = await billing.list_customers(limit, starting_after)
        return Page(data=found, has_more=more)

    @get("/{customer_id:str}", operation_id="getCustomer", summary="One customer")
    async def get_customer(self, customer_id: FromPath[str]) -> schemas.Customer:
        """One customer, with whether Stripe keeps a card for off-session charges."""
        return await billing.get_customer(customer_id)

    @get(
        "/{customer_id:str}/entitlements",
        operation_id="getEntitlement",
        tags=["entitlements"],
        summary="What the customer is entitled to now, or at a past ?at= (disputes)",
    )
    async def get_entitlement(
        self, customer_id: FromPath[str], at: FromQuery[datetime | None] = None
    ) -> schemas.Entitlement:
        """What the customer may expect now: the tier (plan or `standard`) and why (`basis`),
        the target of each priority, the incidents left this period and the fast-track credits
        and price. `?at=` answers for a past instant from the subscription history (disputes);
        a future one is 422."""
        return await billing.get_entitlement(customer_id, _past(at))

    @post(
        "/{customer_id:str}/portal-session",
        operation_id="createPortalSession",
        tags=["subscriptions"],
        opt=ADMIN,
        summary="A Stripe customer-portal URL (card, invoices, cancel)",
    )
    async def create_portal_session(
        self, customer_id: FromPath[str], data: JSONBody[schemas.PortalRequest]
    ) -> schemas.PortalSession:
        """A Stripe customer-portal URL where the customer updates the card, reads invoices
        or cancels."""
        return await billing.portal_url(customer_id, data.return_url)


class SubscriptionController(Controller):
    path = "/v1/customers/{customer_id:str}/subscription"
    tags = ["subscriptions"]
    opt = ADMIN

    @post(
        operation_id="createSubscription",
        summary="Subscribe: Checkout (returns checkout_url), a saved card, or invoicing",
    )
    async def create_subscription(
        self,
        request: Request[Any, Any, State],
        customer_id: FromPath[str],
        data: JSONBody[schemas.SubscriptionCreate],
    ) -> schemas.SubscriptionCreated:
        """Subscribe the customer to a plan. One create per customer reaches Stripe at a
        time (a concurrent one is 409 with `Retry-After`); 409 when a subscription is already
        live (change it with PATCH). With `mode=checkout` the answer carries `checkout_url`
        and the subscription turns `active` when Stripe's webhook reports the payment."""
        return await billing.create_subscription(customer_id, data, request_key(request.scope))

    @get(
        operation_id="getSubscription", opt=HELPDESK_OR_FINANCE, summary="The current subscription"
    )
    async def get_subscription(self, customer_id: FromPath[str]) -> schemas.Subscription:
        """The customer's live subscription, else its latest one; 404 when it never had one."""
        return await billing.get_subscription(customer_id)

    @post(
        "/preview",
        operation_id="previewSubscriptionChange",
        status_code=HTTP_200_OK,
        summary="Proration preview of a plan or interval change (Stripe's create-preview)",
    )
    async def preview_change(
        self, customer_id: FromPath[str], data: JSONBody[schemas.SubscriptionChangeRequest]
    ) -> schemas.ProrationPreview:
        """What a change of plan or interval would cost now (Stripe's create-preview): the
        proration lines and the amount due. Pass its `proration_date` to PATCH to be charged
        exactly this."""
        change = schemas.SubscriptionChange(plan=data.plan, interval=data.interval)
        return await billing.preview_subscription_change(
            customer_id, change, _past(data.proration_date, "proration_date")
        )

    @patch(
        operation_id="changeSubscription",
        summary="Change plan or interval, prorated; pass the preview's proration_date to match it",
    )
    async def change(
        self, customer_id: FromPath[str], data: JSONBody[schemas.SubscriptionChangeRequest]
    ) -> schemas.Subscription:
        """Change plan or interval, prorated and invoiced at once; a change of interval
        starts a new period. 409 when the subscription is not live."""
        change = schemas.SubscriptionChange(plan=data.plan, interval=data.interval)
        return await billing.change_subscription(
            customer_id, change, _past(data.proration_date, "proration_date")
        )

    @delete(
        operation_id="cancelSubscription",
        status_code=HTTP_200_OK,
        summary="Cancel at period end (default) or now (?at_period_end=false)",
    )
    async def cancel(
        self, customer_id: FromPath[str], at_period_end: FromQuery[bool] = True
    ) -> schemas.Subscription:
        """Cancel at the end of the period (the plan holds until then), or at once with
        `?at_period_end=false`."""
        return await billing.cancel_subscription(customer_id, at_period_end)


class FastTrackController(Controller):
    path = "/v1/customers/{customer_id:str}/fast-track-purchases"
    tags = ["fast-track"]
    opt = HELPDESK

    @post(
        operation_id="buyFastTrack",
        summary="Buy fast-tracked incidents: Checkout (checkout_url) or the saved card",
    )
    async def buy(
        self,
        request: Request[Any, Any, State],
        customer_id: FromPath[str],
        data: JSONBody[schemas.FastTrackPurchaseCreate],
    ) -> schemas.FastTrackPurchase:
        """Buy fast-track credits at the plan's price (422 when the plan includes fast-track,
        or does not sell it). `mode=checkout` answers `pending` with a `checkout_url`;
        `charge_saved_method` charges the saved card off-session and answers `paid`, or
        `requires_action` when the bank wants the customer (use Checkout then), or 402. With
        an `Idempotency-Key`, a retry after a 503 converges on the same payment."""
        return await billing.buy_fast_track(customer_id, data, request_key(request.scope))

    @get(operation_id="listFastTrack", opt=HELPDESK_OR_FINANCE, summary="The customer's purchases")
    async def list_purchases(self, customer_id: FromPath[str]) -> Page[schemas.FastTrackPurchase]:
        """The customer's fast-track purchases, newest first."""
        return Page(data=await billing.list_fast_track(customer_id), has_more=False)

    @post(
        "/{purchase_id:str}/refund",
        operation_id="refundFastTrack",
        opt=ADMIN,
        status_code=HTTP_200_OK,
        summary="Refund unused credits of a purchase through Stripe",
    )
    async def refund(
        self,
        customer_id: FromPath[str],
        purchase_id: FromPath[str],
        data: JSONBody[schemas.RefundRequest],
    ) -> schemas.FastTrackPurchase:
        """Refund unused credits of a paid purchase through Stripe (all of them by default);
        422 when fewer are unused."""
        return await billing.refund_fast_track(customer_id, purchase_id, data.quantity)

    @post(
        "/{purchase_id:str}/refresh",
        operation_id="refreshFastTrack",
        status_code=HTTP_200_OK,
        summary="Re-read a purchase from Stripe (after the customer returns from Checkout)",
    )
    async def refresh(
        self, customer_id: FromPath[str], purchase_id: FromPath[str]
    ) -> schemas.FastTrackPurchase:
        """Ask Stripe how a Checkout purchase stands (a storefront's success page calls this,
        not waiting for the webhook)."""
        return await billing.refresh_fast_track(customer_id, purchase_id)


class StripeWebhookController(Controller):
    path = "/v1/stripe/webhook"
    tags = ["stripe"]
    opt = PUBLIC
    security = [{}]

    @post(
        operation_id="stripeWebhook",
        status_code=HTTP_200_OK,
        summary="Inbound Stripe events (signature-verified)",
    )
    async def receive(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        followups: NamedDependency[FollowUps],
    ) -> schemas.StripeWebhookAck:
        """Stripe's webhook endpoint: the `Stripe-Signature` header is checked on the raw
        body (300 s tolerance either way), the event is stored once by id and applied by a
        job; a duplicate is acknowledged as such. A signed event that cannot be applied is
        stored `dead` and still answered 200 (Stripe would retry it for days)."""
        payload = await request.body()
        delivery = billing.verify_stripe_delivery(
            payload, request.headers.get("stripe-signature"), settings.webhook_secret
        )
        fresh = await billing.store_stripe_event(delivery)
        if fresh and delivery.problem is None:
            await followups.stripe_event(delivery.id)
        # A signed event that cannot be applied is kept dead and still answered 2xx: Stripe
        # would otherwise redeliver it for days, failing the same way each time.
        return schemas.StripeWebhookAck(
            received=True, duplicate=not fresh, id=delivery.id, dead=delivery.problem is not None
        )


# Stored as sent and verified on the exact bytes: the input boundary checks only size.
RAW_BODY_PATHS = frozenset({StripeWebhookController.path})


class ServiceCreditController(Controller):
    path = "/v1/service-credits"
    tags = ["finance"]
    opt = FINANCE

    @get(
        operation_id="listServiceCredits",
        summary="Service credits paid (or skipped) for breached incidents",
    )
    async def list_credits(
        self,
        customer_id: FromQuery[str | None] = None,
        status: FromQuery[CreditStatus | None] = None,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[schemas.ServiceCreditOutcome]:
        """Every service credit decided for a breached incident, newest first: its incident,
        the kind (`refund` of a fast-track payment, `credit_note` on the latest paid invoice,
        `none` when the plan pays nothing), the amount, and `status` (`pending`, `issued`,
        `skipped`, `failed` with the last error). Filter by customer and status."""
        found, more = await billing.list_credits(customer_id, limit, starting_after, status)
        return Page(data=found, has_more=more)

    @post(
        "/{credit_id:str}/retry",
        operation_id="retryServiceCredit",
        opt=ADMIN,
        status_code=202,
        summary="Re-issue a failed service credit (Stripe refused it past the retry policy)",
    )
    async def retry(
        self, followups: NamedDependency[FollowUps], credit_id: FromPath[str]
    ) -> schemas.ServiceCreditOutcome:
        """Ask Stripe again for a credit that failed, once an operator fixed the cause (202:
        the worker pays it; it first looks in Stripe for an object already made for this
        credit, so it is never made twice). Only a `failed` credit can be retried (409
        otherwise)."""
        job = await sla.retry_credit(credit_id)
        await followups.sla([job])
        return await billing.get_credit(credit_id)


class InvoiceController(Controller):
    path = "/v1/invoices"
    tags = ["finance"]
    opt = FINANCE

    @get(
        operation_id="listInvoices",
        summary="The invoice mirror; filter by customer, status and creation time",
    )
    async def list_invoices(
        self,
        customer_id: FromQuery[str | None] = None,
        status: FromQuery[schemas.InvoiceStatus | None] = None,
        created_from: From = None,
        created_to: To = None,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[schemas.InvoiceView]:
        """Mirrored invoices, newest first (keyset pages), created in `[from, to)` when
        given; an unknown `status` is 400, a `from` not before `to` 422."""
        start, end = _range(created_from, created_to)
        found, more = await billing.list_invoices(
            customer_id=customer_id,
            status=status,
            created_from=start,
            created_to=end,
            limit=limit,
            starting_after=starting_after,
        )
        return Page(data=found, has_more=more)

    @get(
        "/export.csv",
        operation_id="exportInvoices",
        summary="The same filters, as CSV streamed row by row (minor units and decimals)",
        media_type="text/csv",
    )
    async def export(
        self,
        customer_id: FromQuery[str | None] = None,
        status: FromQuery[schemas.InvoiceStatus | None] = None,
        created_from: From = None,
        created_to: To = None,
    ) -> Stream:
        """Every invoice the list would show with the same filters (no page limit), one CSV
        row each, newest first, written as it is read from a server-side cursor: memory
        stays flat however many invoices there are. Amounts in minor units and again as
        decimals of the row's currency (`total_decimal`: `123.45`); `refunded` and
        `credited` come from the invoice's credit notes, `net` is amount_paid - refunded -
        credited."""
        start, end = _range(created_from, created_to)
        chunks = billing.invoices_csv(
            customer_id=customer_id, status=status, created_from=start, created_to=end
        )
        # The header and first rows before the answer starts: an outage is still a 503.
        first = await anext(chunks)
        return Stream(
            _after(first, chunks),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="invoices.csv"'},
        )

    @get("/{invoice_id:str}", operation_id="getInvoice", summary="One invoice (our id or Stripe's)")
    async def get_invoice(self, invoice_id: FromPath[str]) -> schemas.InvoiceView:
        """One mirrored invoice by our `inv_…` id or Stripe's `in_…` id, with its lines (each
        with the `source` that produced it: plan subscription, proration, overage or
        fast-track) and amounts in minor units."""
        return await billing.get_invoice(invoice_id)


class CreditNoteController(Controller):
    path = "/v1/credit-notes"
    tags = ["finance"]
    opt = FINANCE

    @get(operation_id="listCreditNotes", summary="Credit notes mirrored from Stripe")
    async def list_credit_notes(
        self,
        customer_id: FromQuery[str | None] = None,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[schemas.CreditNoteView]:
        """Credit notes mirrored from Stripe, newest first, each linked to its invoice and,
        when it is a service credit, to the breached incident (`incident_id`)."""
        found, more = await billing.list_credit_notes(customer_id, limit, starting_after)
        return Page(data=found, has_more=more)


ROUTES: Sequence[ControllerRouterHandler] = (
    PlanController,
    CustomerController,
    SubscriptionController,
    FastTrackController,
    StripeWebhookController,
    ServiceCreditController,
    InvoiceController,
    CreditNoteController,
)
