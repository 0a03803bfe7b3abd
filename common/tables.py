"""Platform tables shared by every domain: API keys, idempotency records, the audit log."""

from __future__ import annotations

from piccolo.columns import JSONB, Integer, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class ApiKey(Table, tablename="api_key"):
    id = Varchar(length=40, primary_key=True)
    name = Varchar(length=200)
    role = Varchar(length=20)
    prefix = Varchar(length=20, unique=True, index=True)
    secret_hash = Varchar(length=64)
    created_at = Timestamptz(default=TimestamptzNow())
    revoked_at = Timestamptz(null=True, default=None)


class IdempotencyRecord(Table, tablename="idempotency_record"):
    """One POST per (api key, Idempotency-Key); ``status_code`` null while in flight."""

    id = Varchar(length=40, primary_key=True)
    api_key_id = Varchar(length=40, index=True)
    key = Varchar(length=255)
    method = Varchar(length=10)
    path = Text()
    fingerprint = Varchar(length=64)
    status_code = Integer(null=True, default=None)
    response_headers = JSONB(default={})
    response_body = Text(default="")
    # While in flight: the claim is renewed until the request ends; a claim whose
    # process died lapses here, and a retry of the same request may run again.
    locked_until = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz(index=True)


class AuditLog(Table, tablename="audit_log"):
    id = Varchar(length=40, primary_key=True)
    at = Timestamptz(default=TimestamptzNow(), index=True)
    actor = Varchar(length=200)
    action = Varchar(length=100, index=True)
    entity_type = Varchar(length=50)
    entity_id = Varchar(length=100, index=True)
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    request_id = Varchar(length=64, null=True, default=None)


class FinanceSession(Table, tablename="finance_session"):
    """A signed-in finance review page (``/finance``): a cookie exchanged for an API key.

    ``id`` is the SHA-256 of the cookie's secret (a leaked table opens no session); the
    key it was made from must still be live for the session to count.
    """

    id = Varchar(length=64, primary_key=True)
    api_key_id = Varchar(length=40, index=True)
    csrf_token = Varchar(length=64)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz(index=True)
