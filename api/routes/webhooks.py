"""Outbound webhook endpoints and their delivery log, for admins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.types import ControllerRouterHandler

from api.auth import ADMIN
from api.middleware import REDACT_OPT
from api.pagination import Limit, Page
from common import tables, webhooks
from common.config import Settings
from common.schemas import RequestBody
from workers import queue

EventType = Literal[
    "*",
    "sla.warning",
    "sla.breached",
    "sla.achieved",
    "sla.escalated",
    "service_credit.issued",
    "entitlement.updated",
    "fast_track.purchased",
]
# tests/hostile/test_contract.py keeps this list equal to common.outbox.EVENT_TYPES + "*".


class WebhookEndpointCreate(RequestBody, kw_only=True):
    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=webhooks.MAX_URL_LENGTH,
            pattern=r"^https?://",
            examples=["https://helpdesk.example.com/hooks/support-billing"],
        ),
    ]
    events: Annotated[
        list[EventType],
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
    status: str  # pending, sending, delivered, failed, canceled
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


def _endpoint_fields(row: tables.WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "description": row.description,
        "status": "disabled" if row.disabled_at is not None else "enabled",
        "created_at": row.created_at,
        "disabled_at": row.disabled_at,
    }


def _endpoint(row: tables.WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint(**_endpoint_fields(row))


def _delivery(row: tables.WebhookDelivery) -> WebhookDelivery:
    return WebhookDelivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        retry_until=row.retry_until,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        last_duration_ms=row.last_duration_ms,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
        history=msgspec.convert(row.history or [], list[DeliveryAttempt], strict=False),
    )


@post(
    "/v1/webhook-endpoints",
    operation_id="createWebhookEndpoint",
    tags=["webhooks"],
    opt={**ADMIN, REDACT_OPT: ("secret",)},
    summary="Subscribe a URL to outbound events; the response shows its signing secret once",
)
async def create_webhook_endpoint(
    request: Request[Any, Any, Any], data: JSONBody[WebhookEndpointCreate]
) -> WebhookEndpointCreated:
    settings: Settings = request.app.state.settings
    row = await webhooks.create_endpoint(
        data.url, data.events, data.description, production=settings.production
    )
    return WebhookEndpointCreated(**_endpoint_fields(row), secret=row.secret)


@post(
    "/v1/webhook-endpoints/{endpoint_id:str}/rotate-secret",
    operation_id="rotateWebhookSecret",
    tags=["webhooks"],
    opt={**ADMIN, REDACT_OPT: ("secret",)},
    status_code=200,
    summary="Replace the endpoint's signing secret; the response shows the new one once",
)
async def rotate_webhook_secret(endpoint_id: FromPath[str]) -> WebhookEndpointCreated:
    row = await webhooks.rotate_secret(endpoint_id)
    return WebhookEndpointCreated(**_endpoint_fields(row), secret=row.secret)


@get(
    "/v1/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    tags=["webhooks"],
    opt=ADMIN,
    summary="Webhook endpoints, newest first (disabled ones only when asked)",
)
async def list_webhook_endpoints(
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
    include_disabled: FromQuery[bool] = False,
) -> Page[WebhookEndpoint]:
    rows, has_more = await webhooks.list_endpoints(
        limit, starting_after, include_disabled=include_disabled
    )
    return Page(data=[_endpoint(r) for r in rows], has_more=has_more)


@get(
    "/v1/webhook-endpoints/{endpoint_id:str}",
    operation_id="getWebhookEndpoint",
    tags=["webhooks"],
    opt=ADMIN,
    summary="One webhook endpoint (without its secret)",
)
async def get_webhook_endpoint(endpoint_id: FromPath[str]) -> WebhookEndpoint:
    return _endpoint(await webhooks.get_endpoint(endpoint_id))


@delete(
    "/v1/webhook-endpoints/{endpoint_id:str}",
    operation_id="deleteWebhookEndpoint",
    tags=["webhooks"],
    opt=ADMIN,
    status_code=200,
    summary="Disable a webhook endpoint: its waiting deliveries are canceled, no new ones made",
)
async def delete_webhook_endpoint(endpoint_id: FromPath[str]) -> WebhookEndpoint:
    return _endpoint(await webhooks.disable_endpoint(endpoint_id))


@get(
    "/v1/webhook-endpoints/{endpoint_id:str}/deliveries",
    operation_id="listWebhookDeliveries",
    tags=["webhooks"],
    opt=ADMIN,
    summary="The endpoint's delivery log, newest first",
)
async def list_webhook_deliveries(
    endpoint_id: FromPath[str],
    limit: Limit = 20,
    starting_after: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
) -> Page[WebhookDelivery]:
    rows, has_more = await webhooks.list_deliveries(endpoint_id, limit, starting_after, status)
    return Page(data=[_delivery(r) for r in rows], has_more=has_more)


@post(
    "/v1/webhook-endpoints/{endpoint_id:str}/deliveries/{delivery_id:str}/redeliver",
    operation_id="redeliverWebhook",
    tags=["webhooks"],
    opt=ADMIN,
    status_code=202,
    summary="Attempt a delivery again now (also a delivered or failed one)",
)
async def redeliver_webhook(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str], delivery_id: FromPath[str]
) -> WebhookDelivery:
    row = await webhooks.redeliver(endpoint_id, delivery_id)
    if row.next_attempt_at is not None:  # None: a worker already made the attempt
        await queue.after_commit(
            queue.enqueue_webhook_delivery(request.app.state.redis, row.id, row.next_attempt_at),
            "the redelivery",
        )
    return _delivery(row)


ROUTES: Sequence[ControllerRouterHandler] = (
    create_webhook_endpoint,
    rotate_webhook_secret,
    list_webhook_endpoints,
    get_webhook_endpoint,
    delete_webhook_endpoint,
    list_webhook_deliveries,
    redeliver_webhook,
)
