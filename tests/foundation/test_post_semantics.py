"""POST semantics shared by every route: body validation, Idempotency-Key, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import msgspec
import pytest
from litestar import post
from litestar.params import JSONBody

from api.auth import ADMIN
from common import audit
from common.tables import AuditLog, IdempotencyRecord

PROBLEM = "application/problem+json"


class WidgetCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    amount: Annotated[int, msgspec.Meta(ge=1)]


class Widget(msgspec.Struct, frozen=True):
    id: str
    name: str
    amount: int


@post("/v1/test-widgets", operation_id="createTestWidget", opt=ADMIN)
async def create_widget(data: JSONBody[WidgetCreate]) -> Widget:
    """A write with a visible effect (an audit row), standing in for any real POST."""
    row_id = await audit.record("widget.created", "widget", data.name, after=data)
    return Widget(id=row_id, name=data.name, amount=data.amount)


@pytest.fixture
async def widget_client(make_client: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    import contextlib
    import os

    from api.app import create_app
    from common.config import load_settings

    @contextlib.asynccontextmanager
    async def build() -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            load_settings({**os.environ, "RATE_LIMIT_PER_MINUTE": "0"}),
            extra_routes=[create_widget],
        )
        for hook in app.on_startup:
            await hook(app)
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as c:
                yield c
        finally:
            for hook in app.on_shutdown:
                await hook(app)

    async with build() as c:
        yield c


async def _widgets() -> int:
    return await AuditLog.count().where(AuditLog.action == "widget.created")


async def test_malformed_json_is_400_and_writes_nothing(
    widget_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await widget_client.post(
        "/v1/test-widgets",
        content=b'{"name": "a", "amount": ',
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["errors"][0]["field"] == "body"
    assert await _widgets() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a", "amount": "ten"}, "amount"),
        ({"name": "a", "amount": 0}, "amount"),
        ({"name": "", "amount": 3}, "name"),
        ({"amount": 3}, "name"),
        ({"name": "a", "amount": 3, "colour": "red"}, "colour"),
    ],
)
async def test_invalid_fields_are_400_naming_the_field(
    widget_client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    r = await widget_client.post("/v1/test-widgets", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith(PROBLEM)
    assert field in [e["field"] for e in problem["errors"]] or field in problem["detail"]
    assert field in problem["detail"] or any(field in e["message"] for e in problem["errors"])
    assert await _widgets() == 0


async def test_same_idempotency_key_twice_has_one_effect_and_same_response(
    widget_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "order-42"}
    first = await widget_client.post(
        "/v1/test-widgets", json={"name": "w", "amount": 5}, headers=headers
    )
    second = await widget_client.post(
        "/v1/test-widgets", json={"name": "w", "amount": 5}, headers=headers
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _widgets() == 1


async def test_same_key_with_a_different_body_is_422(
    widget_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "k1"}
    await widget_client.post("/v1/test-widgets", json={"name": "w", "amount": 5}, headers=headers)
    r = await widget_client.post(
        "/v1/test-widgets", json={"name": "w", "amount": 6}, headers=headers
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM)
    assert await _widgets() == 1


async def test_idempotency_keys_are_scoped_per_api_key(
    widget_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    from common import apikeys

    _, other = await apikeys.create_key("other admin", "admin")
    body = {"name": "w", "amount": 5}
    await widget_client.post(
        "/v1/test-widgets", json=body, headers={**admin_headers, "Idempotency-Key": "same"}
    )
    await widget_client.post(
        "/v1/test-widgets",
        json=body,
        headers={"Authorization": f"Bearer {other}", "Idempotency-Key": "same"},
    )
    assert await _widgets() == 2


async def test_failed_validation_is_replayed_not_reexecuted(
    widget_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "Idempotency-Key": "bad-1"}
    first = await widget_client.post("/v1/test-widgets", json={"name": "w"}, headers=headers)
    second = await widget_client.post("/v1/test-widgets", json={"name": "w"}, headers=headers)
    assert first.status_code == second.status_code == 400
    assert first.json()["errors"] == second.json()["errors"]
    assert await IdempotencyRecord.count() == 1


async def test_an_unusable_idempotency_key_is_400_not_key_reused(
    widget_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for key in (b"k" * 256, b"has space", "caf\u00e9".encode()):
        r = await widget_client.post(
            "/v1/test-widgets",
            json={"name": "w", "amount": 1},
            headers={**admin_headers, "Idempotency-Key": key},  # type: ignore[dict-item]
        )
        assert r.status_code == 400, key
        assert r.json()["type"].endswith("/invalid-idempotency-key")
        assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    ok = await widget_client.post(
        "/v1/test-widgets",
        json={"name": "w", "amount": 1},
        headers={**admin_headers, "Idempotency-Key": "k" * 255},
    )
    assert ok.status_code == 201
    assert await _widgets() == 1
    assert await IdempotencyRecord.count() == 1


async def test_rate_limit_answers_429_with_retry_after(
    make_client: Callable[..., Any], admin_headers: dict[str, str]
) -> None:
    async with make_client(RATE_LIMIT_PER_MINUTE="3") as c:
        statuses = [
            (await c.get("/v1/audit-log", headers=admin_headers)).status_code for _ in range(5)
        ]
        r = await c.get("/v1/audit-log", headers=admin_headers)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    assert r.status_code == 429
    assert r.headers["content-type"].startswith(PROBLEM)
    assert 1 <= int(r.headers["retry-after"]) <= 60
