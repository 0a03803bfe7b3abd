"""The access log tells the truth, every answer carries a request id, the contract stays closed."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import msgspec
import msgspec.inspect
import pytest

from webhooks.events import EVENT_TYPES, WILDCARD
from webhooks.schemas import WebhookEndpointCreate


def _access(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [int(r.__dict__["status"]) for r in caplog.records if r.name == "api.access"]


async def test_the_access_log_records_the_status_the_client_received(
    client: httpx.AsyncClient,
    helpdesk_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="api.access")
    calls = [
        ("GET", "/v1/audit-log", {}, 401),  # no key
        ("GET", "/v1/audit-log", {"Authorization": "Bearer sbk_nope"}, 401),
        ("GET", "/v1/audit-log", helpdesk_headers, 403),  # wrong role
        ("GET", "/v1/no-such-thing", helpdesk_headers, 404),
        ("PUT", "/v1/plans", helpdesk_headers, 405),
        ("GET", "/v1/customers/%00", helpdesk_headers, 400),
        ("GET", "/health", {}, 200),
    ]
    for method, url, headers, status in calls:
        r = await client.request(method, url, headers=headers)
        assert r.status_code == status, (url, r.text)
        assert r.headers["x-request-id"].startswith("req_"), url
        if status >= 400:
            assert r.json()["request_id"] == r.headers["x-request-id"]
    assert _access(caplog) == [status for *_, status in calls]
    assert 500 not in _access(caplog)


async def test_a_sane_incoming_request_id_is_kept_and_a_hostile_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/v1/audit-log", headers={"X-Request-Id": "trace-42.a:b"})
    assert kept.status_code == 401
    assert kept.headers["x-request-id"] == "trace-42.a:b"
    replaced = await client.get("/health", headers={"X-Request-Id": "x" * 65})
    assert replaced.headers["x-request-id"].startswith("req_")


@pytest.mark.parametrize("path", ["/v1/plans", "/v1/plans/basic", "/v1/webhook-endpoints"])
async def test_options_and_405_name_the_same_methods(client: httpx.AsyncClient, path: str) -> None:
    options = await client.options(path)
    refused = await client.request("PUT", path)
    assert options.status_code == 204
    assert refused.status_code == 405
    assert refused.headers["content-type"].startswith("application/problem+json")

    def methods(r: httpx.Response) -> set[str]:
        return {m.strip() for m in r.headers["allow"].split(",")}

    assert methods(options) == methods(refused)
    assert "x-request-id" in options.headers


def test_the_event_type_enum_is_the_outbox_list() -> None:
    info = msgspec.inspect.type_info(WebhookEndpointCreate)
    assert isinstance(info, msgspec.inspect.StructType)
    events = next(f.type for f in info.fields if f.name == "events")
    if isinstance(events, msgspec.inspect.Metadata):  # the list's length bounds
        events = events.type
    assert isinstance(events, msgspec.inspect.ListType)
    assert isinstance(events.item_type, msgspec.inspect.LiteralType)
    assert set(events.item_type.values) == {WILDCARD, *EVENT_TYPES}


async def test_the_openapi_document_declares_problems_and_headers_everywhere(
    client: httpx.AsyncClient,
) -> None:
    schema: dict[str, Any] = (await client.get("/schema/openapi.json")).json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("400", "422", "503"):
                assert status in responses, (method, path, status)
            if path.startswith("/v1/") and path != "/v1/stripe/webhook":
                for status in ("401", "403", "429"):
                    assert status in responses, (method, path, status)
                assert "Retry-After" in responses["429"]["headers"]
            for status, response in responses.items():
                assert "X-Request-Id" in response.get("headers", {}), (method, path, status)
                if (status.startswith("4") and status != "404") or status == "503":
                    if path == "/ready" and status == "503":
                        continue
                    assert "application/problem+json" in response["content"], (path, status)
    components = schema["components"]["schemas"]
    for name in ("CustomerCreate", "IncidentCreate", "PlanCreate", "WebhookEndpointCreate"):
        assert components[name]["additionalProperties"] is False, name
    assert components["PlanCreate"]["properties"]["currency"]["enum"][0] == "aed"
