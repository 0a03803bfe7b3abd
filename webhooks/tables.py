"""The outbox, the endpoints helpdesks subscribe and the delivery log (Piccolo app ``common``)."""

from __future__ import annotations

from piccolo.columns import JSONB, Array, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class OutboundEvent(Table, tablename="outbound_event"):
    """An event for helpdesk webhooks (``sla.breached``, ``entitlement.updated``…)."""

    id = Varchar(length=40, primary_key=True)
    type = Varchar(length=60, index=True)
    created_at = Timestamptz(default=TimestamptzNow(), index=True)
    customer_id = Varchar(length=40, null=True, default=None, index=True)
    data = JSONB(default={})
    # Set once the dispatcher has fanned the event out into webhook deliveries.
    dispatched_at = Timestamptz(null=True, default=None)


class WebhookEndpoint(Table, tablename="webhook_endpoint"):
    """A helpdesk's URL and the event types it subscribed to (``*`` = every type)."""

    id = Varchar(length=40, primary_key=True)
    url = Text()
    description = Text(null=True, default=None)
    events = Array(base_column=Varchar(length=60))
    # Kept in clear: it is the HMAC key the worker signs every delivery with.
    secret = Varchar(length=100, secret=True)
    created_at = Timestamptz(default=TimestamptzNow())
    disabled_at = Timestamptz(null=True, default=None)


class WebhookDelivery(Table, tablename="webhook_delivery"):
    """One event to one endpoint: its exact body, attempts and outcome (unique per pair)."""

    id = Varchar(length=40, primary_key=True)
    endpoint_id = Varchar(length=40, index=True)
    event_id = Varchar(length=40, index=True)
    event_type = Varchar(length=60)
    payload = Text()
    status = Varchar(length=20)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True, default=None)
    retry_until = Timestamptz()
    last_attempt_at = Timestamptz(null=True, default=None)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(null=True, default=None)
    last_duration_ms = Integer(null=True, default=None)
    history = JSONB(default=[])
    delivered_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
