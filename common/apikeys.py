"""API keys: shown once, stored as SHA-256 with a visible prefix, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime
from typing import Final

import msgspec

from common import audit
from common.clock import utcnow
from common.ids import new_id
from common.tables import ApiKey

ROLES: Final = ("admin", "helpdesk", "finance")
_KEY_PREFIX: Final = "sbk_"
_PREFIX_CHARS: Final = 8


class UnknownRole(ValueError):
    pass


class ApiKeyNotFound(LookupError):
    pass


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller."""

    key_id: str
    name: str
    role: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id} ({self.name}, {self.role})"


class ApiKeyInfo(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _prefix_of(key: str) -> str | None:
    if not key.startswith(_KEY_PREFIX):
        return None
    prefix = key[: len(_KEY_PREFIX) + _PREFIX_CHARS]
    return prefix if len(prefix) == len(_KEY_PREFIX) + _PREFIX_CHARS else None


async def create_key(name: str, role: str) -> tuple[ApiKeyInfo, str]:
    """Create a key; returns its record and the secret, which is never stored."""
    if role not in ROLES:
        raise UnknownRole(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name.strip():
        raise ValueError("a key needs a name")
    ident = secrets.token_hex(_PREFIX_CHARS // 2)
    secret = f"{_KEY_PREFIX}{ident}{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=new_id("key"),
        name=name.strip(),
        role=role,
        prefix=f"{_KEY_PREFIX}{ident}",
        secret_hash=_hash(secret),
        created_at=utcnow(),
        revoked_at=None,
    )
    await row.save()
    info = _info(row)
    await audit.record(
        "api_key.created", "api_key", info.id, after={"name": info.name, "role": role}
    )
    return info, secret


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def list_keys() -> list[ApiKeyInfo]:
    rows = await ApiKey.objects().order_by(ApiKey.created_at)
    return [_info(r) for r in rows]


async def revoke_key(key_id_or_prefix: str) -> ApiKeyInfo:
    row = (
        await ApiKey.objects()
        .where((ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix))
        .first()
    )
    if row is None:
        raise ApiKeyNotFound(f"no API key {key_id_or_prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await row.save([ApiKey.revoked_at])
        clear_cache()
        await audit.record(
            "api_key.revoked",
            "api_key",
            row.id,
            before={"revoked_at": None},
            after={"revoked_at": row.revoked_at.isoformat()},
        )
    return _info(row)


async def authenticate(presented: str) -> Principal | None:
    """The key's principal when ``presented`` is a live key, else None."""
    prefix = _prefix_of(presented)
    if prefix is None:
        return None
    row = (
        await ApiKey.select(
            ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.secret_hash, ApiKey.revoked_at
        )
        .where(ApiKey.prefix == prefix)
        .first()
    )
    # Hash even when the prefix is unknown so timing does not reveal which prefixes exist.
    presented_hash = _hash(presented)
    stored = row["secret_hash"] if row else "0" * 64
    if not hmac.compare_digest(presented_hash, stored) or row is None:
        return None
    if row["revoked_at"] is not None:
        return None
    return Principal(key_id=row["id"], name=row["name"], role=row["role"])


# A short-lived per-process cache keeps the hot read path at one query; revocation
# therefore takes effect within _CACHE_SECONDS in every process.
_CACHE_SECONDS = 5.0
_CACHE_MAX = 1024
_cache: dict[str, tuple[float, Principal | None]] = {}


async def authenticate_cached(presented: str) -> Principal | None:
    digest = _hash(presented)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    principal = await authenticate(presented)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[digest] = (now + _CACHE_SECONDS, principal)
    return principal


def clear_cache() -> None:
    _cache.clear()
