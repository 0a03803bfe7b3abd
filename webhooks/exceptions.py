"""What the webhooks service refuses; ``api/errors.py`` maps each family to its status."""

from __future__ import annotations

from common.errors import Conflict, InvalidRequest, NotFound


class EndpointNotFound(NotFound):
    pass


class DeliveryNotFound(NotFound):
    pass


class InvalidEndpoint(InvalidRequest):
    title = "Invalid webhook endpoint"


class EndpointDisabled(Conflict):
    title = "Webhook endpoint disabled"


class DeliveryInProgress(Conflict):
    title = "Delivery in progress"
