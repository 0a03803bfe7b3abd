"""Webhook use cases for the API and the worker; what they return are Structs, never Table rows."""

from __future__ import annotations

from typing import Any

import msgspec

from common import audit, db
from common.clock import utcnow
from common.errors import InvalidRequest
from common.ids import new_id
from common.pagination import keyset_page
from webhooks import tables

# The worker's use cases, written beside their mechanics: this module stays the one door.
from webhooks.delivery import attempt_delivery as attempt_delivery
from webhooks.dispatch import dispatch_pending as dispatch_pending
from webhooks.dispatch import due_deliveries as due_deliveries
from webhooks.events import normalize_events
from webhooks.exceptions import (
    DeliveryInProgress,
    DeliveryNotFound,
    EndpointDisabled,
    EndpointNotFound,
)
from webhooks.policy import check_url
from webhooks.schemas import (
    CANCELED,
    DELIVERY_STATUSES,
    PENDING,
    SENDING,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
)
from webhooks.signing import new_secret

_Endpoint = tables.WebhookEndpoint
_Delivery = tables.WebhookDelivery


def _fields(row: _Endpoint) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "events": list(row.events),
        "description": row.description,
        "status": "disabled" if row.disabled_at is not None else "enabled",
        "created_at": row.created_at,
        "disabled_at": row.disabled_at,
    }


def _endpoint(row: _Endpoint) -> WebhookEndpoint:
    return WebhookEndpoint(**_fields(row))


def _with_secret(row: _Endpoint) -> WebhookEndpointCreated:
    return WebhookEndpointCreated(**_fields(row), secret=row.secret)


def _delivery(row: _Delivery) -> WebhookDelivery:
    # Lax: the attempts' instants are stored as JSON strings.
    return msgspec.convert(row, WebhookDelivery, from_attributes=True, strict=False)


def _summary(row: _Endpoint) -> dict[str, Any]:
    # Never the secret: audit rows are readable by every admin.
    return {
        "url": row.url,
        "events": list(row.events),
        "description": row.description,
        "disabled_at": row.disabled_at,
    }


async def _endpoint_row(endpoint_id: str, *, lock: bool = False) -> _Endpoint:
    query = _Endpoint.objects().where(_Endpoint.id == endpoint_id)
    row = await (query.lock_rows() if lock else query).first()
    if row is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id!r}")
    return row


# --- endpoints ------------------------------------------------------------------------------


async def create_endpoint(
    new: WebhookEndpointCreate, *, production: bool
) -> WebhookEndpointCreated:
    """A new enabled endpoint with a fresh signing secret, shown in this answer only."""
    row = _Endpoint(
        id=new_id("whep"),
        url=check_url(new.url, production=production),
        description=new.description,
        events=normalize_events(new.events),
        secret=new_secret(),
        created_at=utcnow(),
        disabled_at=None,
    )
    async with db.engine().transaction():
        await _Endpoint.insert(row)
        await audit.record(
            "webhook_endpoint.created", "webhook_endpoint", row.id, after=_summary(row)
        )
    return _with_secret(row)


async def rotate_secret(endpoint_id: str) -> WebhookEndpointCreated:
    """Give the endpoint a new signing secret (shown in this answer only); the old one stops.

    The way back for a client that lost the secret: it is never shown again, nor kept
    anywhere in clear but on the endpoint row that signs deliveries.
    """
    async with db.engine().transaction():
        row = await _endpoint_row(endpoint_id, lock=True)
        if row.disabled_at is not None:
            raise EndpointDisabled(f"webhook endpoint {endpoint_id!r} is disabled")
        row.secret = new_secret()
        await _Endpoint.update({_Endpoint.secret: row.secret}).where(_Endpoint.id == endpoint_id)
        await audit.record(
            "webhook_endpoint.secret_rotated", "webhook_endpoint", endpoint_id, after=_summary(row)
        )
    return _with_secret(row)


async def get_endpoint(endpoint_id: str, *, include_disabled: bool = False) -> WebhookEndpoint:
    """One endpoint; a deleted (disabled) one only when asked for (its history stays)."""
    row = await _endpoint_row(endpoint_id)
    if row.disabled_at is not None and not include_disabled:
        raise EndpointNotFound(f"webhook endpoint {endpoint_id!r} was deleted")
    return _endpoint(row)


async def list_endpoints(
    limit: int, starting_after: str | None = None, *, include_disabled: bool = False
) -> tuple[list[WebhookEndpoint], bool]:
    """Endpoints newest first, and whether more follow."""
    query = _Endpoint.objects()
    if not include_disabled:
        query = query.where(_Endpoint.disabled_at.is_null())
    rows, more = await keyset_page(
        query, _Endpoint.id, limit=limit, starting_after=starting_after or None
    )
    return [_endpoint(r) for r in rows], more


async def disable_endpoint(endpoint_id: str) -> WebhookEndpoint:
    """Disable the endpoint and cancel its waiting deliveries; disabling twice changes nothing."""
    async with db.engine().transaction():
        row = await _endpoint_row(endpoint_id, lock=True)
        if row.disabled_at is None:
            before = _summary(row)
            row.disabled_at = utcnow()
            await _Endpoint.update({_Endpoint.disabled_at: row.disabled_at}).where(
                _Endpoint.id == endpoint_id
            )
            # An attempt already on the wire finishes; its outcome is still recorded.
            await _Delivery.update(
                {_Delivery.status: CANCELED, _Delivery.next_attempt_at: None}
            ).where((_Delivery.endpoint_id == endpoint_id) & (_Delivery.status == PENDING))
            await audit.record(
                "webhook_endpoint.disabled",
                "webhook_endpoint",
                endpoint_id,
                before=before,
                after=_summary(row),
            )
    return _endpoint(row)


# --- delivery log ---------------------------------------------------------------------------


async def list_deliveries(
    endpoint_id: str, limit: int, starting_after: str | None = None, status: str | None = None
) -> tuple[list[WebhookDelivery], bool]:
    """The endpoint's deliveries newest first, and whether more follow."""
    await _endpoint_row(endpoint_id)
    query = _Delivery.objects().where(_Delivery.endpoint_id == endpoint_id).output(load_json=True)
    if status:
        if status not in DELIVERY_STATUSES:
            raise InvalidRequest(
                f"status must be one of {', '.join(DELIVERY_STATUSES)}", field="status"
            )
        query = query.where(_Delivery.status == status)
    rows, more = await keyset_page(
        query, _Delivery.id, limit=limit, starting_after=starting_after or None
    )
    return [_delivery(r) for r in rows], more


async def redeliver(endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Make the delivery due now, whatever its state (delivered and failed ones too).

    Its retry window stays the original one (24 h after the event); past it, a redelivery
    is one attempt, and a failed one leaves the delivery failed again. The caller enqueues
    the attempt once this has committed, unless ``next_attempt_at`` is None (a worker was
    quicker).
    """
    async with db.engine().transaction():
        endpoint = await _endpoint_row(endpoint_id)
        if endpoint.disabled_at is not None:
            raise EndpointDisabled(f"webhook endpoint {endpoint_id!r} is disabled")
        row = (
            await _Delivery.objects()
            .where((_Delivery.id == delivery_id) & (_Delivery.endpoint_id == endpoint_id))
            .lock_rows()
            .first()
        )
        if row is None:
            raise DeliveryNotFound(f"no delivery {delivery_id!r} for endpoint {endpoint_id!r}")
        now = utcnow()
        if row.status == SENDING and row.next_attempt_at > now:
            raise DeliveryInProgress(
                f"delivery {delivery_id!r} is being attempted; retry once the attempt ends"
            )
        await _Delivery.update(
            {
                _Delivery.status: PENDING,
                _Delivery.next_attempt_at: now,
                _Delivery.retry_until: max(row.retry_until, now),
            }
        ).where(_Delivery.id == delivery_id)
        await audit.record(
            "webhook_delivery.redelivered",
            "webhook_delivery",
            delivery_id,
            before={"status": row.status, "attempts": row.attempts},
            after={"status": PENDING, "next_attempt_at": now},
        )
    query = _Delivery.objects().where(_Delivery.id == delivery_id).output(load_json=True)
    redelivered = await query.first()
    if redelivered is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id!r}")
    return _delivery(redelivered)
