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
from api.errors import PROBLEM_BASE, PROBLEM_JSON, FieldError, Problem
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
    *,
    field: str | None = None,
) -> None:
    """Answer with a problem+json from below Litestar's exception handling."""
    body = msgspec.json.encode(
        Problem(
            type=PROBLEM_BASE + slug,
            title=title,
            status=status,
            detail=detail,
            request_id=request_id_var.get(),
            errors=[FieldError(field=field, message=detail)] if field else None,
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


class RequestContext:
    """Give each request an id (honouring a sane ``X-Request-Id``) and log one line for it.

    Pure ASGI around the whole application (``api.app``), outside Litestar's exception
    handling: the status logged is the one the client received (a 401 raised by the auth
    middleware, a 404 from the router), and every response carries ``X-Request-Id``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None

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
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Litestar answers every exception itself; one escaping it is a bug of ours.
            log.exception("unhandled error outside the application")
            if status is None:
                await send_problem(
                    send_with_id,
                    500,
                    "internal-error",
                    "Internal error",
                    "the service failed to handle this request; it has been logged",
                )
        finally:
            if access_log.isEnabledFor(logging.INFO):
                # None: the client left before any answer (uvicorn logs no status either).
                self._log(scope, status or 499, started, scope.get("auth"))
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


class OptionsAnswer:
    """Answer ``OPTIONS`` with every method of the path, as the 405 answer's ``Allow`` does.

    Litestar's own OPTIONS handler lists only the methods of the first handler registered
    for a path, so clients were told two different things.
    """

    def __init__(self, app: ASGIApp, methods_by_path: dict[str, set[str]]) -> None:
        self.app = app
        static: dict[str, str] = {}
        patterns: list[tuple[re.Pattern[str], str]] = []
        for template, methods in methods_by_path.items():
            allow = ", ".join(sorted({*methods, "OPTIONS"}))
            if "{" not in template:
                static[template.rstrip("/") or "/"] = allow
            else:
                regex = "".join(
                    "[^/]+" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"(\{[^}]+\})", template)
                )
                patterns.append((re.compile(f"^{regex}/?$"), allow))
        self.static = static
        self.patterns = patterns

    def allow(self, path: str) -> str | None:
        found = self.static.get(path.rstrip("/") or "/")
        if found is not None:
            return found
        return next((allow for pattern, allow in self.patterns if pattern.match(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allow = self.allow(scope["path"]) if scope.get("method") == "OPTIONS" else None
        if scope["type"] != ScopeType.HTTP or allow is None:
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"allow", allow.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


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
        try:
            idempotency.check_key(key)
        except idempotency.InvalidIdempotencyKey as e:
            await send_problem(
                send, 400, "invalid-idempotency-key", e.title, e.detail, field="Idempotency-Key"
            )
            return
        # The input boundary (api.boundary) has already read the body, at most its size
        # limit, and hands it on as one message: nothing here buffers past that limit.
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
            await send_problem(
                send, status, slug, e.title, e.detail, headers=retry, field="Idempotency-Key"
            )
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
            await _settle(idempotency.complete(claim, status, headers, _stored_body(scope, out)))


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


REDACT_OPT = "idempotency_redact"


def _stored_body(scope: Scope, chunks: list[bytes]) -> bytes:
    """The response body as kept for replays: without the fields the route marks secret.

    A route answering with a secret shown once (``opt={REDACT_OPT: ("secret",)}``) has it
    replaced by null in the stored copy: an idempotency record never holds it in clear.
    """
    body = b"".join(chunks)
    fields = scope["route_handler"].opt.get(REDACT_OPT)
    if not fields or not body:
        return body
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return b""  # never keep what could not be redacted
    if isinstance(document, dict):
        for name in fields:
            if name in document:
                document[name] = None
    return msgspec.json.encode(document)
