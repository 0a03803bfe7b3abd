"""Outbound webhook endpoints and their delivery log, for admins."""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import ADMIN
from api.middleware import REDACT_OPT
from api.pagination import Limit, Page
from common.config import Settings
from webhooks import service
from webhooks.schemas import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
)
from workers import queue

# Answers showing a secret once: the idempotency record keeps them without it.
_SHOWS_SECRET = {REDACT_OPT: ("secret",)}


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def _redis(state: State) -> Any:
    # The queue's connection (workers.queue.connect); api does not name arq's types.
    return state.redis


class WebhookEndpointController(Controller):
    """Helpdesk URLs subscribed to outbound events."""

    path = "/v1/webhook-endpoints"
    tags = ["webhooks"]
    opt = ADMIN
    dependencies = {"settings": Provide(_settings, sync_to_thread=False)}

    @post(
        operation_id="createWebhookEndpoint",
        opt=_SHOWS_SECRET,
        summary="Subscribe a URL to outbound events; the response shows its signing secret once",
    )
    async def create(
        self, data: JSONBody[WebhookEndpointCreate], settings: NamedDependency[Settings]
    ) -> WebhookEndpointCreated:
        """Subscribe a URL (https in production; never a private, loopback or otherwise
        non-global address) to outbound events (`*` for all). The answer shows the signing
        secret once: deliveries carry `Support-Billing-Signature: t=<unix>,v1=<hex
        HMAC-SHA256 of "t.body">`."""
        return await service.create_endpoint(data, production=settings.production)

    @post(
        "/{endpoint_id:str}/rotate-secret",
        operation_id="rotateWebhookSecret",
        opt=_SHOWS_SECRET,
        status_code=200,
        summary="Replace the endpoint's signing secret; the response shows the new one once",
    )
    async def rotate_secret(self, endpoint_id: FromPath[str]) -> WebhookEndpointCreated:
        """Replace the endpoint's signing secret (the way back for a client that lost it); the
        answer shows the new one once, the old one stops at once."""
        return await service.rotate_secret(endpoint_id)

    @get(
        operation_id="listWebhookEndpoints",
        summary="Webhook endpoints, newest first (disabled ones only when asked)",
    )
    async def list_endpoints(
        self,
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
        include_disabled: FromQuery[bool] = False,
    ) -> Page[WebhookEndpoint]:
        """Webhook endpoints newest first, without their secrets; deleted ones with
        `?include_disabled=true`."""
        endpoints, more = await service.list_endpoints(
            limit, starting_after, include_disabled=include_disabled
        )
        return Page(data=endpoints, has_more=more)

    @get(
        "/{endpoint_id:str}",
        operation_id="getWebhookEndpoint",
        summary="One webhook endpoint (without its secret)",
    )
    async def get_endpoint(
        self, endpoint_id: FromPath[str], include_disabled: FromQuery[bool] = False
    ) -> WebhookEndpoint:
        """One endpoint, without its secret. A deleted endpoint is 404 unless
        `?include_disabled=true` (its delivery log stays readable)."""
        return await service.get_endpoint(endpoint_id, include_disabled=include_disabled)

    @delete(
        "/{endpoint_id:str}",
        operation_id="deleteWebhookEndpoint",
        status_code=200,
        summary="Disable a webhook endpoint: its waiting deliveries are canceled, no new ones made",
    )
    async def disable(self, endpoint_id: FromPath[str]) -> WebhookEndpoint:
        """Delete (disable) an endpoint: its waiting deliveries are canceled and no new ones are
        made; its delivery log stays readable. Deleting twice changes nothing."""
        return await service.disable_endpoint(endpoint_id)


class WebhookDeliveryController(Controller):
    """The delivery log of one endpoint: every event sent to it, its attempts and outcome."""

    path = "/v1/webhook-endpoints/{endpoint_id:str}/deliveries"
    tags = ["webhooks"]
    opt = ADMIN
    dependencies = {"redis": Provide(_redis, sync_to_thread=False)}

    @get(operation_id="listWebhookDeliveries", summary="The endpoint's delivery log, newest first")
    async def list_deliveries(
        self,
        endpoint_id: FromPath[str],
        limit: Limit = 20,
        starting_after: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
    ) -> Page[WebhookDelivery]:
        """The endpoint's delivery log, newest first: each event, its attempts, the last status
        code or error, and when it is attempted next (retried with backoff for
        `WEBHOOK_RETRY_HOURS`)."""
        deliveries, more = await service.list_deliveries(endpoint_id, limit, starting_after, status)
        return Page(data=deliveries, has_more=more)

    @post(
        "/{delivery_id:str}/redeliver",
        operation_id="redeliverWebhook",
        status_code=202,
        summary="Attempt a delivery again now (also a delivered or failed one)",
    )
    async def redeliver(
        self, endpoint_id: FromPath[str], delivery_id: FromPath[str], redis: NamedDependency[Any]
    ) -> WebhookDelivery:
        """Attempt a delivery again now, whatever its state (a delivered or failed one too); 409
        when its endpoint is deleted."""
        delivery = await service.redeliver(endpoint_id, delivery_id)
        if delivery.next_attempt_at is not None:  # None: a worker already made the attempt
            await queue.after_commit(
                queue.enqueue_webhook_delivery(redis, delivery.id, delivery.next_attempt_at),
                "the redelivery",
            )
        return delivery


ROUTES = (WebhookEndpointController, WebhookDeliveryController)
