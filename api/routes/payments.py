"""Finance: one-off payments (fast-track PaymentIntents) mirrored from Stripe."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.types import ControllerRouterHandler

from api.auth import FINANCE
from api.pagination import Limit, Page
from billing import schemas
from billing import service as billing
from common.errors import InvalidRequest

From = Annotated[datetime | None, QueryParameter(name="from")]
To = Annotated[datetime | None, QueryParameter(name="to")]


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{field} must carry a timezone offset (RFC 3339)", field=field)
    return value


class PaymentController(Controller):
    path = "/v1/payments"
    tags = ["finance"]
    opt = FINANCE

    @get(
        operation_id="listPayments",
        summary="One-off payments (fast-track purchases); filter by customer, status, time",
    )
    async def list_payments(
        self,
        customer_id: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        created_from: From = None,
        created_to: To = None,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
    ) -> Page[schemas.PaymentView]:
        """The payments Stripe took outside invoices (fast-track purchases paid in Checkout
        or charged to a saved card), newest first, each with its refunds: what finance
        counts next to the invoices. ``status`` is the PaymentIntent's (``succeeded``, …);
        ``from``/``to`` bound its creation time."""
        found, more = await billing.list_payments(
            customer_id=customer_id,
            status=status,
            created_from=_aware(created_from, "from"),
            created_to=_aware(created_to, "to"),
            limit=limit,
            starting_after=starting_after,
        )
        return Page(data=found, has_more=more)

    @get(
        "/{payment_id:str}",
        operation_id="getPayment",
        summary="One payment (our id or the PaymentIntent's)",
    )
    async def get_payment(self, payment_id: FromPath[str]) -> schemas.PaymentView:
        """One one-off payment with its amounts received and refunded and its refunds."""
        return await billing.get_payment(payment_id)


ROUTES: Sequence[ControllerRouterHandler] = (PaymentController,)
