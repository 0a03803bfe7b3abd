"""Idempotency-Key records: the first response to a POST is replayed to its retries."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from common import leases
from common.clock import utcnow
from common.errors import BadRequest, Busy, InvalidRequest
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


class IdempotencyInFlight(Busy):
    """The first request with this key is still being processed."""


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Claim:
    record_id: str
    # The key as the services see it: the same for every retry of one request.
    request_key: str


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


def request_key(api_key_id: str, key: str) -> str:
    """One request's identity across its retries (bounded, whatever the key's length)."""
    return f"{api_key_id}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


async def claim(
    api_key_id: str, key: str, method: str, path: str, print_: str, ttl_hours: int
) -> Claim | StoredResponse:
    """Claim ``key`` for this request, or return the stored response of its first use.

    A claim is a lease its request renews while it runs (:func:`renew`). A claim whose
    lease lapsed belongs to a request that died mid-way (its process was killed, or the
    database went away before the claim could be released); the retry takes it over and
    runs again, and the services make that second run converge on what the first one
    did (reserved rows, the same Stripe idempotency keys).
    """
    check_key(key)
    now = utcnow()
    record_id = new_id("idem")
    identity = request_key(api_key_id, key)
    for _ in range(2):
        inserted: list[dict[str, Any]] = await IdempotencyRecord.raw(
            "INSERT INTO idempotency_record"
            " (id, api_key_id, key, method, path, fingerprint, status_code,"
            "  response_headers, response_body, locked_until, created_at, expires_at)"
            " VALUES ({}, {}, {}, {}, {}, {}, NULL, {}::jsonb, '', {}, {}, {})"
            " ON CONFLICT (api_key_id, key) DO NOTHING RETURNING id",
            record_id,
            api_key_id,
            key,
            method,
            path,
            print_,
            "{}",
            leases.until(now),
            now,
            now + timedelta(hours=ttl_hours),
        )
        if inserted:
            return Claim(record_id, identity)
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
        if existing.status_code is not None:
            return StoredResponse(
                status_code=existing.status_code,
                headers=cast(dict[str, str], existing.response_headers or {}),
                body=existing.response_body.encode(),
            )
        taken = await IdempotencyRecord.raw(
            "UPDATE idempotency_record SET locked_until = {} WHERE id = {}"
            " AND status_code IS NULL AND (locked_until IS NULL OR locked_until <= {})"
            " RETURNING id",
            leases.until(now),
            existing.id,
            now,
        )
        if taken:
            return Claim(existing.id, identity)
        raise IdempotencyInFlight(
            "a request with this Idempotency-Key is still in progress",
            retry_after=leases.retry_after(existing.locked_until, now),
        )
    raise IdempotencyInFlight("a request with this Idempotency-Key is still in progress")


async def renew(claim_: Claim) -> None:
    """Keep the claim's lease current while its request runs."""
    await IdempotencyRecord.update({IdempotencyRecord.locked_until: leases.until()}).where(
        (IdempotencyRecord.id == claim_.record_id) & IdempotencyRecord.status_code.is_null()
    )


async def complete(claim_: Claim, status_code: int, headers: dict[str, str], body: bytes) -> None:
    await IdempotencyRecord.update(
        {
            IdempotencyRecord.status_code: status_code,
            IdempotencyRecord.response_headers: headers,
            IdempotencyRecord.response_body: body.decode("utf-8", errors="replace"),
            IdempotencyRecord.locked_until: None,
        }
    ).where(IdempotencyRecord.id == claim_.record_id)


async def release(claim_: Claim) -> None:
    """Forget a claim whose request may succeed when retried (a 5xx, a busy refusal)."""
    await IdempotencyRecord.delete().where(IdempotencyRecord.id == claim_.record_id)


async def purge_expired() -> int:
    deleted = (
        await IdempotencyRecord.delete()
        .where(IdempotencyRecord.expires_at <= utcnow())
        .returning(IdempotencyRecord.id)
    )
    return len(deleted)
