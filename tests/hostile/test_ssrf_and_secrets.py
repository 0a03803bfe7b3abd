"""Webhook targets must be globally routable; a webhook secret is shown once, kept nowhere else."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from common.errors import InvalidRequest
from common.tables import AuditLog, IdempotencyRecord
from webhooks import policy
from webhooks.tables import WebhookEndpoint

# Each reaches loopback, link-local, private or reserved space, directly or through IPv6.
INTERNAL = [
    "::127.0.0.1",  # IPv4-compatible (deprecated) loopback
    "::a9fe:a9fe",  # IPv4-compatible link-local (169.254.169.254)
    "::ffff:169.254.169.254",  # IPv4-mapped metadata service
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::808:808",  # local-use NAT64 (RFC 8215), even of a public address
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "100.64.0.1",  # shared address space (CGNAT)
    "192.0.0.8",  # IETF protocol assignments
    "192.0.2.1",  # TEST-NET-1
    "198.18.0.1",  # benchmarking
    "198.51.100.7",  # TEST-NET-2
    "192.88.99.1",  # deprecated 6to4 relay anycast
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "224.0.0.251",  # multicast
    "ff02::1",  # IPv6 multicast
    "fc00::1",  # unique local
    "2001:db8::1",  # documentation
    "100::1",  # discard-only
    "3fff::1",  # documentation (RFC 9637)
    "192.0.0.9",  # PCP anycast: reachable, but no webhook receiver
]
PUBLIC = ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", INTERNAL)
def test_not_globally_routable_addresses_are_internal(address: str) -> None:
    assert policy.is_internal_host(address)
    url = f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"
    with pytest.raises(InvalidRequest, match="public host"):
        policy.check_url(url, production=True)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_also_when_translated(address: str) -> None:
    assert not policy.is_internal_host(address)
    url = f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"
    assert policy.check_url(url, production=True) == url


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "::127.0.0.1", "2002:a9fe:a9fe::1"])
async def test_delivery_refuses_what_the_target_resolves_to(address: str) -> None:
    refusal = await policy.refused_target(f"https://[{address}]/hook")
    assert refusal is not None
    assert str(ipaddress.ip_address(address)) in refusal


async def test_the_webhook_secret_is_shown_once_and_never_stored_for_replay(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "endpoint-1"}
    body = {"url": "https://hooks.example.com/x", "events": ["*"]}
    first = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_")
    replay = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["secret"] is None
    assert replay.json()["id"] == first.json()["id"]
    stored = await IdempotencyRecord.select(IdempotencyRecord.response_body)
    assert stored and all(secret not in r["response_body"] for r in stored)
    audit = await AuditLog.select(AuditLog.before, AuditLog.after)
    assert secret not in str(audit)

    endpoint_id = first.json()["id"]
    rotated = await client.post(
        f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        headers={**admin_headers, "Idempotency-Key": "rotate-1"},
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    row = await WebhookEndpoint.objects().where(WebhookEndpoint.id == endpoint_id).first()
    assert row is not None and row.secret == new_secret
    stored = await IdempotencyRecord.select(IdempotencyRecord.response_body)
    assert all(new_secret not in r["response_body"] for r in stored)
    gone = await client.post(
        "/v1/webhook-endpoints/whep_missing/rotate-secret", headers=admin_headers
    )
    assert gone.status_code == 404
    await client.delete(f"/v1/webhook-endpoints/{endpoint_id}", headers=admin_headers)
    disabled = await client.post(
        f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", headers=admin_headers
    )
    assert disabled.status_code == 409
