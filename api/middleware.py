"""ASGI middleware: request ids and access logs, API-key auth with rate limits, Idempotency-Key."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth import allowed_roles, authorize
from api.errors import PROBLEM_BASE, PROBLEM_JSON, Problem
from common import apikeys, idempotency, leases, ratelimit
from common.audit import actor_var
from common.errors import DomainError
from common.ids import request_id as new_request_id
from common.logging import request_id_var
from workers import queue

access_log = logging.getLogger("api.access")
log = logging.getLogger("api.middleware")

REQUEST_KEY_SCOPE = "support_billing.request_key"
# How long a request waits for Redis to count it against its key's limit.
RATE_LIMIT_TIMEOUT = 1.0

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def send_problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = msgspec.json.encode(
        Problem(
            type=PROBLEM_BASE + slug,
            title=title,
            status=status,
            detail=detail,
            request_id=request_id_var.get(),
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class RequestContextMiddleware(ASGIMiddleware):
    """Give each request an id (honouring a sane ``X-Request-Id``) and log one line for it."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            principal = scope.get("auth")
            if access_log.isEnabledFor(logging.INFO):
                self._log(scope, status, started, principal)
            request_id_var.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int, started: float, principal: object) -> None:
        access_log.info(
            "%s %s %s",
            scope.get("method", ""),
            scope["path"],
            status,
            extra={
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "key": principal.key_id if isinstance(principal, apikeys.Principal) else None,
            },
        )


class AuthMiddleware(ASGIMiddleware):
    """Resolve the bearer key into a principal, apply its rate limit, then its role.

    Operations name their roles in ``opt`` (``api.auth``); one without roles takes no key.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, rate_limit_per_minute: int) -> None:
        self.rate_limit = rate_limit_per_minute
        self.limiter = ratelimit.Limiter()

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        allowed = allowed_roles(scope["route_handler"].opt)
        if allowed is None:
            await next_app(scope, receive, send)
            return
        authorization = _header(scope, b"authorization")
        principal = None
        if authorization and authorization[:7].lower() == "bearer ":
            principal = await apikeys.authenticate_cached(authorization[7:].strip())
        scope["auth"] = principal
        scope["user"] = principal
        if principal is not None and self.rate_limit > 0:
            redis = scope["litestar_app"].state.redis
            try:
                async with asyncio.timeout(RATE_LIMIT_TIMEOUT):
                    allowed_now, retry_after = await self.limiter.hit(
                        redis, principal.key_id, self.rate_limit, time.time()
                    )
            except queue.REDIS_DOWN as e:
                # Fail open: with Redis away the limits cannot be counted, and refusing
                # every key would turn a Redis outage into an outage of the whole API.
                log.warning("rate limit not applied, Redis is unavailable: %r", e)
                allowed_now, retry_after = True, 0
            if not allowed_now:
                await send_problem(
                    send,
                    429,
                    "rate-limited",
                    "Too many requests",
                    f"this API key may make {self.rate_limit} requests a minute",
                    headers=[(b"retry-after", str(retry_after).encode())],
                )
                return
        token = actor_var.set(authorize(principal, allowed).actor)
        try:
            await next_app(scope, receive, send)
        finally:
            actor_var.reset(token)


class IdempotencyMiddleware(ASGIMiddleware):
    """Replay the stored response of a POST retried with the same ``Idempotency-Key``."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, ttl_hours: int) -> None:
        self.ttl_hours = ttl_hours

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method", "") != "POST":
            await next_app(scope, receive, send)
            return
        key = _header(scope, b"idempotency-key")
        principal = scope.get("auth")
        if key is None or not isinstance(principal, apikeys.Principal):
            await next_app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message: Any = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        print_ = idempotency.fingerprint(
            "POST", scope["path"], scope.get("query_string", b"").decode("latin-1"), body
        )
        try:
            outcome = await idempotency.claim(
                principal.key_id, key, "POST", scope["path"], print_, self.ttl_hours
            )
        except DomainError as e:
            status = 409 if isinstance(e, idempotency.IdempotencyInFlight) else 422
            slug = "request-in-progress" if status == 409 else "idempotency-key-reused"
            retry = [(b"retry-after", str(e.retry_after).encode())] if e.retry_after else None
            await send_problem(send, status, slug, e.title, e.detail, headers=retry)
            return
        if isinstance(outcome, idempotency.StoredResponse):
            await send(
                {
                    "type": "http.response.start",
                    "status": outcome.status_code,
                    "headers": [
                        *(
                            (k.encode("latin-1"), v.encode("latin-1"))
                            for k, v in outcome.headers.items()
                        ),
                        (b"idempotent-replayed", b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": outcome.body, "more_body": False})
            return
        claim = outcome
        # Services that create things in Stripe key their reservations on it, so a retry
        # of a request that died mid-way finishes the same work instead of repeating it.
        scope[REQUEST_KEY_SCOPE] = claim.request_key  # type: ignore[literal-required]

        replayed = False

        async def replay_body() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        headers: dict[str, str] = {}
        out: list[bytes] = []

        async def capture(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    if name not in ("content-length", "x-request-id", "date", "server"):
                        headers[name] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))
            await send(message)

        try:
            async with leases.renewing(lambda: idempotency.renew(claim)):
                await next_app(scope, replay_body, capture)
        except BaseException:
            await _settle(idempotency.release(claim))
            raise
        # Only final answers are kept: a 5xx, a 429 or any answer that says when to come
        # back (a busy 409) may go differently when retried.
        if status >= 500 or status == 429 or "retry-after" in headers:
            await _settle(idempotency.release(claim))
        else:
            await _settle(idempotency.complete(claim, status, headers, b"".join(out)))


async def _settle(step: Awaitable[None]) -> None:
    """Record how a claimed request ended; when the database is away, its lease lapses."""
    try:
        await step
    except Exception as e:
        log.warning("could not record the outcome of an idempotent request: %r", e)


def request_key(scope: Scope) -> str | None:
    """The ``Idempotency-Key`` identity of this request (same across its retries), if any."""
    key = scope.get(REQUEST_KEY_SCOPE)
    return key if isinstance(key, str) else None
