"""Billing domain errors; api/errors.py turns each family into problem+json."""

from __future__ import annotations

from common.errors import (
    BadRequest,
    Conflict,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    UpstreamUnavailable,
)


class PlanNotFound(NotFound):
    pass


class PlanConflict(Conflict):
    pass


class CustomerNotFound(NotFound):
    pass


class CustomerConflict(Conflict):
    pass


class SubscriptionNotFound(NotFound):
    pass


class SubscriptionConflict(Conflict):
    pass


class PurchaseNotFound(NotFound):
    pass


class FastTrackUnavailable(InvalidRequest):
    """Fast-track is not sold on the plan, or the customer has no credit left."""


class NoPaymentMethod(InvalidRequest):
    pass


class PaymentDeclined(PaymentRequired):
    def __init__(self, detail: str, *, decline_code: str | None = None) -> None:
        super().__init__(detail)
        self.decline_code = decline_code


class StripeRejected(InvalidRequest):
    """Stripe refused a request as invalid (the message is Stripe's)."""


class StripeUnavailable(UpstreamUnavailable):
    pass


class StripeIdempotencyConflict(Conflict):
    """Stripe has seen this idempotency key with other parameters and did nothing now.

    Not a refusal of the operation (an object may exist from the key's first use) and not
    an outage (asking again gets the same answer): whoever asked looks before going on.
    """


class InvalidEvent(BadRequest):
    """An inbound webhook whose signature or payload is not acceptable."""


class InvoiceNotFound(NotFound):
    pass


class PaymentNotFound(NotFound):
    pass


class ServiceCreditNotFound(NotFound):
    pass
