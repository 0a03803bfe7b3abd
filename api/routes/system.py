"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from common import db

log = logging.getLogger("api.system")


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    postgres: str
    redis: str


async def _check(check: Awaitable[bool], seconds: float = 2.0) -> str:
    try:
        ok = await asyncio.wait_for(check, seconds)
    except Exception as e:  # readiness reports any failure rather than raising it
        log.warning("readiness check failed: %s", e)
        return "unavailable"
    return "ok" if ok else "unavailable"


@get(
    "/health",
    operation_id="health",
    tags=["system"],
    summary="Liveness",
    security=[{}],
    exclude_from_auth=True,
)
async def health() -> Health:
    """200 while the process serves requests (a liveness probe); needs no key."""
    return Health(status="ok")


@get(
    "/ready",
    operation_id="ready",
    tags=["system"],
    summary="Readiness: PostgreSQL and Redis answer",
    security=[{}],
    responses={503: ResponseSpec(data_container=Readiness, description="A dependency is down")},
)
async def ready(state: State) -> Response[Readiness]:
    """200 when PostgreSQL and Redis both answer within 2 s, else 503 naming which does not
    (a readiness probe); needs no key."""
    postgres, redis = await asyncio.gather(_check(db.ping()), _check(state.redis.ping()))
    ok = postgres == "ok" and redis == "ok"
    return Response(
        Readiness(status="ok" if ok else "unavailable", postgres=postgres, redis=redis),
        status_code=200 if ok else 503,
    )
