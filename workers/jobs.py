"""Job functions: each is a few lines that call a service, and is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from common import idempotency

log = logging.getLogger("workers.jobs")


async def noop(ctx: dict[str, Any], token: str) -> str:
    return token


async def purge_idempotency_records(ctx: dict[str, Any]) -> int:
    purged = await idempotency.purge_expired()
    if purged:
        log.info("purged expired idempotency records", extra={"count": purged})
    return purged
