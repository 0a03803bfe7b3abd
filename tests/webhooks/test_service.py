"""The webhooks service answers with Structs: the secret only where it is shown once."""

from __future__ import annotations

import msgspec
import pytest

from webhooks import outbox, service
from webhooks.exceptions import EndpointDisabled, EndpointNotFound
from webhooks.schemas import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
)

pytestmark = pytest.mark.usefixtures("clean_db")


async def test_reads_never_carry_the_secret_and_a_rotation_shows_the_new_one() -> None:
    new = WebhookEndpointCreate(url="https://h.example.com/x", events=["sla.breached"])
    created = await service.create_endpoint(new, production=True)
    assert type(created) is WebhookEndpointCreated
    assert created.secret is not None and created.secret.startswith("whsec_")

    read = await service.get_endpoint(created.id)
    listed, more = await service.list_endpoints(10)
    for endpoint in (read, *listed):
        assert type(endpoint) is WebhookEndpoint
        assert "secret" not in msgspec.structs.asdict(endpoint)
    assert more is False
    assert msgspec.structs.asdict(read) == {
        k: v for k, v in msgspec.structs.asdict(created).items() if k != "secret"
    }

    rotated = await service.rotate_secret(created.id)
    assert rotated.secret not in (None, created.secret)
    disabled = await service.disable_endpoint(created.id)
    assert (type(disabled), disabled.status) == (WebhookEndpoint, "disabled")
    with pytest.raises(EndpointDisabled):
        await service.rotate_secret(created.id)
    with pytest.raises(EndpointNotFound):
        await service.get_endpoint("whep_missing")


async def test_the_delivery_log_and_a_redelivery_are_structs() -> None:
    new = WebhookEndpointCreate(url="http://127.0.0.1:9/x", events=["*"])
    endpoint = await service.create_endpoint(new, production=False)
    event_id = await outbox.emit("sla.warning", {"n": 1}, customer_id=None)
    assert await service.dispatch_pending(retry_hours=24) == 1
    (logged,), more = await service.list_deliveries(endpoint.id, 10)
    assert (type(logged), logged.event_id, logged.status, more) == (
        WebhookDelivery,
        event_id,
        "pending",
        False,
    )
    assert await service.attempt_delivery(logged.id) is not None  # nothing listens on port 9
    (failed,), _ = await service.list_deliveries(endpoint.id, 10)
    assert failed.attempts == 1
    assert [(a.attempt, a.status_code) for a in failed.history] == [(1, None)]
    assert failed.history[0].at.tzinfo is not None

    again = await service.redeliver(endpoint.id, logged.id)
    assert type(again) is WebhookDelivery
    assert (again.status, again.attempts) == ("pending", 1)
    assert again.next_attempt_at is not None and again.next_attempt_at <= again.retry_until
