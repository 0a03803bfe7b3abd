"""The admin API of webhook endpoints and their delivery log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from common.tables import AuditLog
from tests.webhooks.helpers import Drive, Receiver, only_delivery
from webhooks import outbox
from webhooks.tables import WebhookDelivery, WebhookEndpoint

PROBLEM = "application/problem+json"
PRODUCTION = {
    "APP_ENV": "production",
    "STRIPE_API_KEY": "sk_test_webhooks",
    "STRIPE_WEBHOOK_SECRET": "whsec_test",
}


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    r = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_created_endpoint_shows_its_secret_once_and_is_audited(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await _create(
        client,
        admin_headers,
        url="https://helpdesk.example.com/hooks",
        events=["sla.breached", "sla.warning", "sla.breached"],
        description="Zendesk",
    )
    assert created["id"].startswith("whep_")
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["sla.breached", "sla.warning"]
    assert created["status"] == "enabled"
    assert created["created_at"].endswith("Z")

    one = await client.get(f"/v1/webhook-endpoints/{created['id']}", headers=admin_headers)
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert one.json()["description"] == "Zendesk"
    listed = await client.get("/v1/webhook-endpoints", headers=admin_headers)
    assert listed.json()["has_more"] is False
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    assert "secret" not in listed.json()["data"][0]

    wildcard = await _create(client, admin_headers, url="http://127.0.0.1:1/h", events=["*"])
    assert wildcard["events"] == ["*"]

    audit = await AuditLog.objects().where(AuditLog.entity_id == created["id"]).first()
    assert audit is not None
    assert audit.action == "webhook_endpoint.created"
    assert created["secret"] not in str(audit.after)


async def test_endpoint_list_pages_newest_first(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ids = [
        (await _create(client, admin_headers, url=f"https://h{i}.example.com", events=["*"]))["id"]
        for i in range(3)
    ]
    page = (await client.get("/v1/webhook-endpoints?limit=2", headers=admin_headers)).json()
    assert [e["id"] for e in page["data"]] == [ids[2], ids[1]]
    assert page["has_more"] is True
    rest = await client.get(
        f"/v1/webhook-endpoints?limit=2&starting_after={ids[1]}", headers=admin_headers
    )
    assert [e["id"] for e in rest.json()["data"]] == [ids[0]]
    assert rest.json()["has_more"] is False


# Cases share one test: each HTTP test pays for emptying every table afterwards.
BAD_BODIES: list[tuple[dict[str, Any], int, str]] = [
    ({"url": "https://h.example.com", "events": ["sla.exploded"]}, 400, "events.0"),
    ({"url": "https://h.example.com", "events": ["*", "nope"]}, 400, "events.1"),
    ({"url": "https://h.example.com", "events": []}, 400, "events"),
    # The schema admits http(s) URLs only (400); the rest is the service's judgement (422).
    ({"url": "ftp://h.example.com/x", "events": ["sla.breached"]}, 400, "url"),
    ({"url": "javascript:alert(1)", "events": ["sla.breached"]}, 400, "url"),
    ({"url": "not a url", "events": ["sla.breached"]}, 400, "url"),
    ({"url": "https://user:pw@h.example.com", "events": ["*"]}, 422, "url"),
    ({"url": "https://h.example.com:99999", "events": ["*"]}, 422, "url"),
    ({"url": "https://h.example.com", "events": ["*"], "secret": "mine"}, 400, "secret"),
    ({"events": ["sla.breached"]}, 400, "url"),
]
INTERNAL_OR_PLAIN = [
    "http://hooks.example.com/x",  # production wants https
    "https://127.0.0.1/x",
    "https://localhost:8443/x",
    "https://api.localhost/x",
    "https://[::1]/x",
    "https://[::ffff:127.0.0.1]/x",
    "https://10.1.2.3/x",
    "https://172.20.0.1/x",
    "https://192.168.1.10/x",
    "https://169.254.169.254/latest/meta-data",
    "https://0.0.0.0/x",
    "https://2130706433/x",
]


async def test_bad_endpoint_is_a_problem_and_writes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    audit_rows = await AuditLog.count()
    for body, status, field in BAD_BODIES:
        r = await client.post("/v1/webhook-endpoints", json=body, headers=admin_headers)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)
        assert field in [e["field"] for e in r.json()["errors"]], (body, r.text)
    assert await WebhookEndpoint.count() == 0
    assert await AuditLog.count() == audit_rows


async def test_production_wants_https_to_a_public_host(
    make_client: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    async with make_client(**PRODUCTION) as client:
        for url in INTERNAL_OR_PLAIN:
            r = await client.post(
                "/v1/webhook-endpoints", json={"url": url, "events": ["*"]}, headers=admin_headers
            )
            assert r.status_code == 422, (url, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
            assert r.json()["errors"][0]["field"] == "url"
        assert await WebhookEndpoint.count() == 0
        created = await _create(
            client, admin_headers, url="https://hooks.example.com/x", events=["*"]
        )
    assert created["url"] == "https://hooks.example.com/x"


async def test_webhook_routes_are_admin_only(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    helpdesk_headers: dict[str, str],
    finance_headers: dict[str, str],
) -> None:
    endpoint = await _create(client, admin_headers, url="https://h.example.com", events=["*"])
    base = f"/v1/webhook-endpoints/{endpoint['id']}"
    calls = [
        ("POST", "/v1/webhook-endpoints", {"url": "https://x.example.com", "events": ["*"]}),
        ("GET", "/v1/webhook-endpoints", None),
        ("GET", base, None),
        ("DELETE", base, None),
        ("GET", f"{base}/deliveries", None),
        ("POST", f"{base}/deliveries/whdl_x/redeliver", None),
    ]
    for headers, status in ((helpdesk_headers, 403), (finance_headers, 403), ({}, 401)):
        for method, path, body in calls:
            r = await client.request(method, path, json=body, headers=headers)
            assert r.status_code == status, (method, path, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
    assert await WebhookEndpoint.count() == 1
    assert (await client.get(base, headers=admin_headers)).json()["status"] == "enabled"


async def test_unknown_endpoint_or_delivery_is_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/v1/webhook-endpoints/whep_missing"),
        ("DELETE", "/v1/webhook-endpoints/whep_missing"),
        ("GET", "/v1/webhook-endpoints/whep_missing/deliveries"),
        ("POST", "/v1/webhook-endpoints/whep_missing/deliveries/whdl_x/redeliver"),
    ):
        r = await client.request(method, path, headers=admin_headers)
        assert r.status_code == 404, (method, path)
        assert r.headers["content-type"].startswith(PROBLEM)
    endpoint = await _create(client, admin_headers, url="https://h.example.com", events=["*"])
    r = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/whdl_missing/redeliver",
        headers=admin_headers,
    )
    assert r.status_code == 404


async def test_delivery_log_lists_attempts_newest_first(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver, drive: Drive
) -> None:
    endpoint = await _create(client, admin_headers, url=receiver.url(), events=["*"])
    receiver.fail_next(1, status=502)
    first = await outbox.emit("sla.warning", {"n": 1}, customer_id=None)
    second = await outbox.emit("sla.breached", {"n": 2}, customer_id=None)
    await drive()

    r = await client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin_headers
    )
    assert r.status_code == 200
    log = r.json()
    assert log["has_more"] is False
    assert [(d["event_id"], d["event_type"]) for d in log["data"]] == [
        (second, "sla.breached"),
        (first, "sla.warning"),
    ]
    by_status = {d["status"]: d for d in log["data"]}
    assert set(by_status) == {"pending", "delivered"}  # the first request failed
    failed = by_status["pending"]
    assert failed["attempts"] == 1
    assert failed["last_status_code"] == 502
    assert failed["next_attempt_at"].endswith("Z")
    assert failed["history"][0]["status_code"] == 502
    assert by_status["delivered"]["delivered_at"] is not None

    page = await client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?limit=1&status=pending",
        headers=admin_headers,
    )
    assert [d["status"] for d in page.json()["data"]] == ["pending"]
    bad = await client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?status=lost", headers=admin_headers
    )
    assert bad.status_code == 422


async def test_redeliver_sends_a_delivered_or_failed_delivery_again(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver, drive: Drive
) -> None:
    endpoint = await _create(client, admin_headers, url=receiver.url(), events=["sla.breached"])
    event_id = await outbox.emit("sla.breached", {"n": 1}, customer_id=None)
    await drive()
    delivery = await only_delivery()
    assert delivery.status == "delivered"
    redeliver = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{delivery.id}/redeliver"

    r = await client.post(redeliver, headers=admin_headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    await drive()
    assert [q.json()["id"] for q in receiver.requests] == [event_id, event_id]
    assert (await only_delivery()).attempts == 2

    # A failed delivery too (its 24 h are over): one more attempt, now.
    await WebhookDelivery.update({WebhookDelivery.status: "failed"}).where(
        WebhookDelivery.id == delivery.id
    )
    receiver.fail_next(1)
    assert (await client.post(redeliver, headers=admin_headers)).status_code == 202
    await drive()
    assert (await only_delivery()).status == "pending"  # still inside its window: retried
    assert (await client.post(redeliver, headers=admin_headers)).status_code == 202
    await drive()
    done = await only_delivery()
    assert (done.status, done.attempts) == ("delivered", 4)
    assert len(receiver.requests) == 4


async def test_deleting_an_endpoint_stops_its_deliveries(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver, drive: Drive
) -> None:
    endpoint = await _create(client, admin_headers, url=receiver.url(), events=["*"])
    receiver.fail_next(10)
    await outbox.emit("sla.warning", {"n": 1}, customer_id=None)
    await drive()
    assert (await only_delivery()).status == "pending"

    r = await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["status"] == "disabled"
    assert r.json()["disabled_at"] is not None
    again = await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=admin_headers)
    assert again.json()["disabled_at"] == r.json()["disabled_at"]
    url = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert (await client.get(url, headers=admin_headers)).status_code == 404
    kept = await client.get(f"{url}?include_disabled=true", headers=admin_headers)
    assert kept.json()["status"] == "disabled"

    canceled = await only_delivery()
    assert (canceled.status, canceled.next_attempt_at) == ("canceled", None)
    await outbox.emit("sla.breached", {"n": 2}, customer_id=None)
    await drive()
    assert len(receiver.requests) == 1
    assert await WebhookDelivery.count() == 1

    redeliver = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries/{canceled.id}/redeliver",
        headers=admin_headers,
    )
    assert redeliver.status_code == 409
    listed = await client.get("/v1/webhook-endpoints", headers=admin_headers)
    assert listed.json()["data"] == []
    listed = await client.get("/v1/webhook-endpoints?include_disabled=true", headers=admin_headers)
    assert [e["id"] for e in listed.json()["data"]] == [endpoint["id"]]
    actions = await AuditLog.select(AuditLog.action).where(AuditLog.entity_id == endpoint["id"])
    assert sorted(a["action"] for a in actions) == [
        "webhook_endpoint.created",
        "webhook_endpoint.disabled",
    ]


async def test_openapi_describes_the_webhook_operations(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    operations = {
        op["operationId"]
        for path, item in schema["paths"].items()
        if path.startswith("/v1/webhook-endpoints")
        for op in item.values()
    }
    assert operations == {
        "createWebhookEndpoint",
        "listWebhookEndpoints",
        "getWebhookEndpoint",
        "deleteWebhookEndpoint",
        "listWebhookDeliveries",
        "redeliverWebhook",
        "rotateWebhookSecret",
    }
