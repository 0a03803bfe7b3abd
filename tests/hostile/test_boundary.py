"""The input boundary: size, media type, UTF-8, NUL and depth, before anything else runs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.boundary import MAX_BODY_BYTES, MAX_JSON_DEPTH, InputBoundary, Refusal, check_json
from billing.tables import Customer
from common.tables import IdempotencyRecord

PROBLEM = "application/problem+json"
CUSTOMER = {"external_id": "org-1", "name": "Acme", "email": "ops@acme.test"}


def _problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["x-request-id"]
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    assert body["status"] == status
    return body


async def test_a_body_over_the_limit_is_413_with_or_without_idempotency_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    for extra in ({}, {"Idempotency-Key": "big-1"}):
        r = await client.post(
            "/v1/customers",
            content=big,
            headers={**admin_headers, **extra, "Content-Type": "application/json"},
        )
        _problem(r, 413, "payload-too-large")

    async def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        for _ in range(4):
            yield b"x" * (MAX_BODY_BYTES // 2)

    r = await client.post(
        "/v1/customers",
        content=chunks(),
        headers={**admin_headers, "Idempotency-Key": "big-2", "Content-Type": "application/json"},
    )
    _problem(r, 413, "payload-too-large")
    assert await IdempotencyRecord.count() == 0
    assert await Customer.count() == 0


async def test_the_boundary_stops_reading_at_the_limit() -> None:
    """Nothing past the limit is pulled from the client (so nothing past it is buffered)."""
    pulled = 0

    async def receive() -> Any:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the application must not run")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/customers",
        "raw_path": b"/v1/customers",
        "query_string": b"",
        "headers": [(b"idempotency-key", b"k"), (b"content-type", b"application/json")],
    }
    await InputBoundary(app)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pulled == MAX_BODY_BYTES // 65536 + 1


async def test_a_body_that_is_not_json_is_415_and_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = dict(admin_headers)
        if content_type:
            headers["Content-Type"] = content_type
        r = await client.post("/v1/customers", content=json.dumps(CUSTOMER), headers=headers)
        _problem(r, 415, "unsupported-media-type")
    r = await client.post(
        "/v1/customers",
        content=json.dumps(CUSTOMER).encode("utf-16"),
        headers={**admin_headers, "Content-Type": "application/json; charset=utf-16"},
    )
    _problem(r, 415, "unsupported-media-type")
    assert await Customer.count() == 0


@pytest.mark.parametrize(
    ("method", "url", "body", "slug"),
    [
        ("GET", "/v1/customers/cust_%00x", None, "nul-character"),
        ("GET", "/v1/plans/basic%00", None, "nul-character"),
        ("GET", "/v1/customers?external_id=a%00b", None, "nul-character"),
        ("GET", "/v1/incidents?customer_id=%00", None, "nul-character"),
        ("GET", "/v1/audit-log?action=%00", None, "nul-character"),
        ("GET", "/v1/customers/cust_%ff%fe", None, "invalid-encoding"),
        ("GET", "/v1/customers?external_id=%c3%28", None, "invalid-encoding"),
        ("POST", "/v1/customers", b'{"external_id": "a\\u0000", "name": "n"}', "nul-character"),
        ("POST", "/v1/customers", b'{"name\\u0000": "n"}', "nul-character"),
        ("POST", "/v1/incidents", b'{"context": {"k": ["\\u0000"]}}', "nul-character"),
        ("POST", "/v1/customers", b'{"name": "\xff\xfe"}', "invalid-encoding"),
        ("POST", "/v1/incidents", b"[" * 1000 + b"]" * 1000, "too-deeply-nested"),
        ("POST", "/v1/incidents", b'{"context":' * 40 + b"1" + b"}" * 40, "too-deeply-nested"),
    ],
)
async def test_nul_bad_utf8_and_deep_nesting_are_400_naming_the_problem(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    method: str,
    url: str,
    body: bytes | None,
    slug: str,
) -> None:
    r = await client.request(
        method,
        url,
        content=body,
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    problem = _problem(r, 400, slug)
    assert problem["errors"][0]["field"]
    assert await Customer.count() == 0


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    check_json(b'{"a": "C:\\\\u0000dir"}')  # the string is C:\u0000dir, six visible characters
    with pytest.raises(Refusal):
        check_json(b'{"a": "C:\\\\\\u0000"}')  # a backslash, then a real NUL


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(), max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


@given(value=_json, depth=st.integers(min_value=1, max_value=6))
def test_the_scanner_agrees_with_the_decoded_document(value: Any, depth: int) -> None:
    body = json.dumps(value).encode()
    refused: str | None = None
    try:
        check_json(body, max_depth=depth)
    except Refusal as refusal:
        refused = refusal.slug
    if _has_nul(value):  # a NUL may be met first, or the depth limit before it
        assert refused in ("nul-character", "too-deeply-nested")
    elif _depth(value) > depth:
        assert refused == "too-deeply-nested"
    else:
        assert refused is None


def test_the_default_depth_admits_ordinary_documents() -> None:
    check_json(json.dumps({"a": [[{"b": [1]}]] * 200}).encode())
    assert MAX_JSON_DEPTH >= 16
