"""Finance page sessions: an API key exchanged once for a random cookie secret, kept hashed."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Final

import msgspec

from common.apikeys import Principal
from common.clock import utcnow
from common.tables import ApiKey, FinanceSession

SESSION_HOURS: Final = 8
_SECRET_BYTES: Final = 32


class Session(msgspec.Struct, frozen=True):
    """A live session: who opened it (the key's principal), its CSRF token, its end."""

    principal: Principal
    csrf_token: str
    expires_at: datetime


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def open_session(principal: Principal, hours: int = SESSION_HOURS) -> tuple[str, Session]:
    """A new session for ``principal``: the cookie's secret (never stored) and the session."""
    now = utcnow()
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    session = Session(
        principal=principal,
        csrf_token=secrets.token_urlsafe(_SECRET_BYTES),
        expires_at=now + timedelta(hours=hours),
    )
    # Sessions past their end are worth nothing: each sign-in sweeps them away.
    await FinanceSession.delete().where(FinanceSession.expires_at <= now)
    await FinanceSession.insert(
        FinanceSession(
            id=_hash(secret),
            api_key_id=principal.key_id,
            csrf_token=session.csrf_token,
            created_at=now,
            expires_at=session.expires_at,
        )
    )
    return secret, session


async def find_session(secret: str) -> Session | None:
    """The live session whose cookie carries ``secret``: not expired, its key not revoked."""
    if not secret or len(secret) > 128:
        return None
    row = (
        await FinanceSession.select(
            FinanceSession.csrf_token,
            FinanceSession.expires_at,
            FinanceSession.api_key_id.join_on(ApiKey.id).name.as_alias("name"),
            FinanceSession.api_key_id.join_on(ApiKey.id).role.as_alias("role"),
            FinanceSession.api_key_id.join_on(ApiKey.id).revoked_at.as_alias("revoked_at"),
            FinanceSession.api_key_id,
        )
        .where(FinanceSession.id == _hash(secret))
        .first()
    )
    if row is None or row["expires_at"] <= utcnow() or row["revoked_at"] is not None:
        return None
    if row["name"] is None:  # the key is gone altogether
        return None
    return Session(
        principal=Principal(key_id=row["api_key_id"], name=row["name"], role=row["role"]),
        csrf_token=row["csrf_token"],
        expires_at=row["expires_at"],
    )


async def close_session(secret: str) -> bool:
    """End the session whose cookie carries ``secret``; whether there was one."""
    gone = (
        await FinanceSession.delete()
        .where(FinanceSession.id == _hash(secret))
        .returning(FinanceSession.id)
    )
    return bool(gone)
