"""Idempotent replays, injected faults and the SDK's retries: one object, whatever happens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from stripe_emulator.testing import RunningEmulator

from .helpers import make_client


async def requests_log(
    control: httpx.AsyncClient, path: str = "/v1/customers"
) -> list[dict[str, Any]]:
    response = await control.get("/requests", params={"path": path})
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def customers(client: stripe.StripeClient) -> list[str]:
    return [c.id for c in (await client.v1.customers.list_async()).data]


async def test_same_key_same_params_replays_the_first_response_byte_for_byte(
    raw: httpx.AsyncClient, client: stripe.StripeClient
) -> None:
    headers = {"Idempotency-Key": "key-1"}
    first = await raw.post("/v1/customers", data={"email": "a@example.com"}, headers=headers)
    second = await raw.post("/v1/customers", data={"email": "a@example.com"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert first.headers["Request-Id"].startswith("req_")
    assert second.headers["Request-Id"] != first.headers["Request-Id"]
    assert second.headers["Original-Request"] == first.headers["Request-Id"]
    assert len(await customers(client)) == 1


async def test_same_key_with_other_params_is_an_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    options: Any = {"idempotency_key": "key-2"}
    await client.v1.customers.create_async(params={"email": "a@example.com"}, options=options)
    with pytest.raises(stripe.IdempotencyError) as caught:
        await client.v1.customers.create_async(params={"email": "b@example.com"}, options=options)
    assert caught.value.http_status == 400
    assert caught.value.error.type == "idempotency_error"


async def test_rate_limit_before_the_request_is_retried(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    await control.post("/faults", json={"method": "POST", "path": "/v1/customers", "status": 429})
    customer = await client.v1.customers.create_async(params={"email": "a@example.com"})

    log = await requests_log(control)
    assert [(e["status"], e["replayed"]) for e in log] == [(429, False), (200, False)]
    assert log[0]["idempotency_key"] == log[1]["idempotency_key"] is not None
    assert await customers(client) == [customer.id]


async def test_server_error_after_the_write_is_replayed_on_retry(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    await control.post(
        "/faults", json={"method": "POST", "path": "/v1/customers", "status": 500, "when": "after"}
    )
    customer = await client.v1.customers.create_async(params={"email": "a@example.com"})

    log = await requests_log(control)
    assert [(e["status"], e["replayed"]) for e in log] == [(500, False), (200, True)]
    assert log[0]["idempotency_key"] == log[1]["idempotency_key"]
    assert await customers(client) == [customer.id]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_client_timeout_is_retried_with_the_same_key(
    emulator: RunningEmulator,
    client: stripe.StripeClient,
    control: httpx.AsyncClient,
    when: str,
) -> None:
    await control.post(
        "/faults", json={"method": "POST", "path": "/v1/customers", "timeout": 0.6, "when": when}
    )
    impatient, http = make_client(emulator, retries=2, timeout=0.3)
    try:
        customer = await impatient.v1.customers.create_async(params={"email": "a@example.com"})
    finally:
        await http.close_async()

    log = await requests_log(control)
    assert len(log) == 2
    assert log[0]["idempotency_key"] == log[1]["idempotency_key"]
    assert log[1]["replayed"] is (when == "after")
    assert await customers(client) == [customer.id]


async def test_persistent_outage_surfaces_after_the_retries(
    client: stripe.StripeClient, control: httpx.AsyncClient
) -> None:
    await control.post("/faults", json={"path": "/v1/customers", "status": 503, "count": 5})
    with pytest.raises(stripe.APIError):
        await client.v1.customers.create_async(params={"email": "a@example.com"})
    assert len(await requests_log(control)) == 3  # first try + max_network_retries=2
    assert (await control.get("/faults")).json()["data"][0]["count"] == 2
    await control.delete("/faults")
    assert await customers(client) == []


async def test_faults_are_validated(control: httpx.AsyncClient) -> None:
    response = await control.post("/faults", json={"path": "/v1/customers"})
    assert response.status_code == 400


async def test_api_keys_are_required(raw: httpx.AsyncClient) -> None:
    missing = await raw.get("/v1/customers", headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    # Assembled here so that no live-looking key literal sits in the repository.
    fake_live_key = "sk_" + "live_" + "x" * 12
    live = await raw.get("/v1/customers", headers={"Authorization": f"Bearer {fake_live_key}"})
    assert live.status_code == 401
    assert "sk_live_" in live.json()["error"]["message"]
    restricted = await raw.get("/v1/customers", headers={"Authorization": "Bearer rk_test_x"})
    assert restricted.status_code == 200


async def test_unknown_ids_and_urls_are_404(
    client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.customers.retrieve_async("cus_missing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")
    assert caught.value.error.message == "No such customer: 'cus_missing'"
    unknown = await raw.post("/v1/nothing_here")
    assert unknown.status_code == 404
    assert unknown.headers["Request-Id"].startswith("req_")


async def test_missing_params_are_400_with_the_param(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v1.prices.create_async(params={"currency": "usd", "unit_amount": 100})
    assert (caught.value.http_status, caught.value.param) == (400, "product")
