"""Request and response shapes of the webhooks service (msgspec Structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, get_args

import msgspec

from common.schemas import RequestBody
from webhooks.events import EventSelector
from webhooks.policy import MAX_URL_LENGTH

DeliveryStatus = Literal["pending", "sending", "delivered", "failed", "canceled"]
DELIVERY_STATUSES: Final[tuple[str, ...]] = get_args(DeliveryStatus)
PENDING: Final = "pending"
SENDING: Final = "sending"  # an attempt is on the wire; its lease is ``next_attempt_at``
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
# Deliveries that still have an attempt ahead of them.
WAITING: Final = (PENDING, SENDING)


class WebhookEndpointCreate(RequestBody, kw_only=True):
    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=MAX_URL_LENGTH,
            pattern=r"^https?://",
            examples=["https://helpdesk.example.com/hooks/support-billing"],
        ),
    ]
    events: Annotated[
        list[EventSelector],
        msgspec.Meta(
            min_length=1,
            max_length=20,
            description='event types to receive (`sla.breached`…), or `["*"]` for all',
        ),
    ]
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    events: list[str]
    description: str | None
    status: str  # "enabled" or "disabled"
    created_at: datetime
    disabled_at: datetime | None


class WebhookEndpointCreated(WebhookEndpoint, frozen=True, kw_only=True):
    """The endpoint with its signing secret: the only response that ever shows it.

    A replay of the same request (``Idempotency-Key``) answers with ``secret: null``: the
    stored copy never holds it. A client that lost it rotates it
    (``POST /v1/webhook-endpoints/{id}/rotate-secret``).
    """

    secret: str | None


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str  # one of DELIVERY_STATUSES
    attempts: int
    next_attempt_at: datetime | None
    retry_until: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_duration_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    history: list[DeliveryAttempt]


class DueDelivery(msgspec.Struct, frozen=True):
    """A delivery whose next attempt is due at ``due_at``: what the worker enqueues."""

    id: str
    due_at: datetime
