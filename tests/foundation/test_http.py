"""The HTTP foundation: health, readiness, auth and roles, problem+json, OpenAPI, request ids."""

from __future__ import annotations

import httpx
from litestar.routes import HTTPRoute

from api.auth import PUBLIC_OPT, allowed_roles
from common import apikeys
from common.config import Settings
from common.tables import AuditLog

PROBLEM = "application/problem+json"


async def _audit_rows() -> int:
    return await AuditLog.count()


async def test_health_and_ready_answer_without_a_key(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    ready = await client.get("/ready")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}


async def test_v1_route_without_a_key_is_401_problem_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    before = await _audit_rows()
    r = await client.get("/v1/audit-log")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == 401
    assert body["type"].endswith("/unauthenticated")
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert "Traceback" not in r.text
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert await _audit_rows() == before


async def test_unknown_or_malformed_key_is_401(client: httpx.AsyncClient) -> None:
    for value in ("Bearer sbk_deadbeefnotakey", "Bearer ", "Basic abc", "Bearer " + "x" * 500):
        r = await client.get("/v1/audit-log", headers={"Authorization": value})
        assert r.status_code == 401, value
        assert r.headers["content-type"].startswith(PROBLEM)


async def test_revoked_key_is_401(client: httpx.AsyncClient, clean_db: None) -> None:
    info, secret = await apikeys.create_key("soon gone", "admin")
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/audit-log", headers=headers)).status_code == 200
    await apikeys.revoke_key(info.prefix)
    assert (await client.get("/v1/audit-log", headers=headers)).status_code == 401


async def test_wrong_role_is_403_problem(
    client: httpx.AsyncClient, helpdesk_headers: dict[str, str], finance_headers: dict[str, str]
) -> None:
    for headers in (helpdesk_headers, finance_headers):
        r = await client.get("/v1/audit-log", headers=headers)
        assert r.status_code == 403
        assert r.headers["content-type"].startswith(PROBLEM)
        assert "admin" in r.json()["detail"]


async def test_unknown_path_and_method_are_problems(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await client.get("/v1/no-such-thing", headers=admin_headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["detail"] == "no resource at /v1/no-such-thing"
    r = await client.get("/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    r = await client.delete("/health")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_bad_query_parameter_names_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    r = await client.get("/v1/audit-log?limit=1000", headers=admin_headers)
    assert r.status_code == 400
    body = r.json()
    assert r.headers["content-type"].startswith(PROBLEM)
    assert [e["field"] for e in body["errors"]] == ["limit"]


async def test_audit_log_lists_key_creation_newest_first(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    await apikeys.create_key("second", "finance")
    r = await client.get("/v1/audit-log?limit=1", headers=admin_headers)
    assert r.status_code == 200
    page = r.json()
    assert page["has_more"] is True
    assert page["data"][0]["action"] == "api_key.created"
    assert page["data"][0]["after"] == {"name": "second", "role": "finance"}
    r = await client.get(
        f"/v1/audit-log?starting_after={page['data'][0]['id']}", headers=admin_headers
    )
    assert [e["after"]["name"] for e in r.json()["data"]] == ["test admin"]


def test_every_v1_operation_names_who_may_call_it(settings: Settings) -> None:
    from api.app import create_app

    public = []
    for route in create_app(settings).routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith("/v1/"):
            continue
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"}:
                continue  # Litestar's automatic OPTIONS answer: allowed methods only
            allowed = allowed_roles(handler.opt)
            if allowed is None:
                assert handler.opt.get(PUBLIC_OPT) is True, f"{route.path} declares no roles"
                public.append(route.path)
            else:
                assert "admin" in allowed and allowed <= set(apikeys.ROLES), route.path
    assert public == ["/v1/stripe/webhook"]


async def test_request_id_is_returned_and_honoured(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.headers["x-request-id"].startswith("req_")
    assert (await client.get("/health")).headers["x-request-id"] != r.headers["x-request-id"]
    r = await client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/health", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")


async def test_openapi_describes_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key created with `support-billing keys create`.",
    }
    assert doc["security"] == [{"ApiKey": []}]
    operation_ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {"health", "ready", "listAuditLog"} <= operation_ids


async def test_every_operation_has_an_id_a_summary_and_a_description(
    client: httpx.AsyncClient,
) -> None:
    """The served document is what a client generator and a newcomer read: nothing blank."""
    doc = (await client.get("/schema/openapi.json")).json()
    blank = [
        f"{method.upper()} {path}: {', '.join(k for k in wanted if not op.get(k))}"
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
        for wanted in [("operationId", "summary", "description")]
        if not all(op.get(k) for k in wanted)
    ]
    assert blank == []
