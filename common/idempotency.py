"""Idempotency-Key records: the first response to a POST is replayed to its retries."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from common.clock import utcnow
from common.errors import BadRequest, Conflict, InvalidRequest
from common.ids import new_id
from common.tables import IdempotencyRecord

MAX_KEY_LENGTH = 255
# Visible ASCII, as Stripe accepts: the key is compared byte for byte and shown in logs.
_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$")


class InvalidIdempotencyKey(BadRequest):
    """The header itself is unusable (empty, too long, not visible ASCII)."""

    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(InvalidRequest):
    """Same key, different request."""

    title = "Idempotency key reused"


class IdempotencyInFlight(Conflict):
    """The first request with this key is still being processed."""

    title = "Request in progress"


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    record_id: str


def check_key(key: str) -> None:
    """Refuse an ``Idempotency-Key`` that is empty, too long or not visible ASCII."""
    if not _KEY.match(key):
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            field="Idempotency-Key",
        )


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim(
    api_key_id: str, key: str, method: str, path: str, print_: str, ttl_hours: int
) -> Claim | StoredResponse:
    """Claim ``key`` for this request, or return the stored response of its first use."""
    check_key(key)
    now = utcnow()
    record_id = new_id("idem")
    for _ in range(2):
        inserted: list[dict[str, Any]] = await IdempotencyRecord.raw(
            "INSERT INTO idempotency_record"
            " (id, api_key_id, key, method, path, fingerprint, status_code,"
            "  response_headers, response_body, created_at, expires_at)"
            " VALUES ({}, {}, {}, {}, {}, {}, NULL, {}::jsonb, '', {}, {})"
            " ON CONFLICT (api_key_id, key) DO NOTHING RETURNING id",
            record_id,
            api_key_id,
            key,
            method,
            path,
            print_,
            "{}",
            now,
            now + timedelta(hours=ttl_hours),
        )
        if inserted:
            return Claim(record_id)
        existing = (
            await IdempotencyRecord.objects()
            .output(load_json=True)
            .where((IdempotencyRecord.api_key_id == api_key_id) & (IdempotencyRecord.key == key))
            .first()
        )
        if existing is None:
            continue  # expired and purged between the two statements
        if existing.expires_at <= now:
            await IdempotencyRecord.delete().where(IdempotencyRecord.id == existing.id)
            continue
        if existing.fingerprint != print_:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request",
                field="Idempotency-Key",
            )
        if existing.status_code is None:
            raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")
        return StoredResponse(
            status_code=existing.status_code,
            headers=cast(dict[str, str], existing.response_headers or {}),
            body=existing.response_body.encode(),
        )
    raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")


async def complete(claim_: Claim, status_code: int, headers: dict[str, str], body: bytes) -> None:
    await IdempotencyRecord.update(
        {
            IdempotencyRecord.status_code: status_code,
            IdempotencyRecord.response_headers: headers,
            IdempotencyRecord.response_body: body.decode("utf-8", errors="replace"),
        }
    ).where(IdempotencyRecord.id == claim_.record_id)


async def release(claim_: Claim) -> None:
    """Forget a claim whose request failed on our side, so a retry can run it again."""
    await IdempotencyRecord.delete().where(IdempotencyRecord.id == claim_.record_id)


async def purge_expired() -> int:
    deleted = (
        await IdempotencyRecord.delete()
        .where(IdempotencyRecord.expires_at <= utcnow())
        .returning(IdempotencyRecord.id)
    )
    return len(deleted)
