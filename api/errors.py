"""Every error leaves as RFC 9457 problem+json; domain error families map to statuses here."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from common import db
from common.errors import (
    BadRequest,
    Conflict,
    DomainError,
    InvalidRequest,
    NotFound,
    PaymentRequired,
    UpstreamUnavailable,
)
from common.logging import request_id_var

log = logging.getLogger("api.errors")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://support-billing.dev/problems/"

_STATUS_BY_FAMILY: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (PaymentRequired, 402),
    (UpstreamUnavailable, 503),
    (InvalidRequest, 422),
    (BadRequest, 400),
)
_SLUG_BY_STATUS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "rate-limited",
    402: "payment-failed",
    503: "unavailable",
}


class FieldError(msgspec.Struct, frozen=True, omit_defaults=True):
    field: str
    message: str
    source: str | None = None


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = Problem(
        type=PROBLEM_BASE + (slug or _SLUG_BY_STATUS.get(status, "error")),
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        request_id=request_id_var.get(),
        errors=errors,
    )
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


_MSGSPEC_PATH = re.compile(r"\s*-\s*at\s*`\$(?P<path>[^`]*)`\s*$")
_NAMED_FIELD = re.compile(r"(?:required|unknown) field `([^`]+)`")


def _field_from_msgspec(message: str) -> tuple[str, str]:
    """'Expected `int`, got `str` - at `$.quantity`' → ('quantity', 'Expected `int`, got `str`')."""
    match = _MSGSPEC_PATH.search(message)
    path = match.group("path").lstrip(".") if match else ""
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    text = message[: match.start()] if match else message
    named = _NAMED_FIELD.search(text)
    if named:  # missing or unknown fields are named in the message, not the path
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or "body", text


def _validation_errors(exc: ValidationException) -> list[FieldError]:
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    errors: list[FieldError] = []
    for item in extra:
        if not isinstance(item, dict):
            errors.append(FieldError(field="body", message=str(item)))
            continue
        message = str(item.get("message", "invalid value"))
        key = item.get("key")
        source = item.get("source")
        if source == "body" or key in (None, "", "data"):
            field, message = _field_from_msgspec(message)
            if key not in (None, "", "data"):
                field = str(key)
        else:
            field = str(key)
        errors.append(FieldError(field=field, message=message.strip(), source=source))
    return errors


def _instance(request: Request[Any, Any, Any]) -> str:
    return str(request.url.path)


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = _validation_errors(exc)
    if not errors:
        field, message = _field_from_msgspec(str(exc.detail))
        errors = [FieldError(field=field, message=message)]
    named = ", ".join(sorted({e.field for e in errors}))
    return problem_response(
        400,
        "Invalid request",
        f"the request is malformed or has invalid fields: {named}",
        slug="validation-error",
        instance=_instance(request),
        errors=errors,
    )


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        log.error("server error", exc_info=exc)
        detail = "the service failed to handle this request; it has been logged"
    else:
        detail = str(exc.detail)
    title = {
        401: "Unauthenticated",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        429: "Too many requests",
    }.get(status, "Request refused")
    if status == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    errors = None
    if status == 400:
        # Undecodable bodies (truncated JSON, wrong content type) reach here, not as
        # ValidationException; name what could not be read.
        field, message = _field_from_msgspec(detail)
        errors = [FieldError(field=field, message=message, source="body")]
        title = "Malformed request"
        detail = f"the request body could not be read: {message}"
    return problem_response(
        status,
        title,
        detail,
        instance=_instance(request),
        errors=errors,
        headers=dict(exc.headers or {}) or None,
    )


def handle_domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    status = next((code for family, code in _STATUS_BY_FAMILY if isinstance(exc, family)), 422)
    errors = [FieldError(field=exc.field, message=exc.detail)] if exc.field else None
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return problem_response(
        status, exc.title, exc.detail, instance=_instance(request), errors=errors, headers=headers
    )


# Seconds a client should wait after a dependency outage before trying again.
OUTAGE_RETRY_AFTER = 2


def dependency_outage(exc: BaseException) -> str | None:
    """Which dependency ``exc`` says is unreachable (PostgreSQL, Redis), if it says so."""
    if db.unavailable(exc):
        return "the database"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "the job queue (Redis)"
    return None


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    outage = dependency_outage(exc)
    if outage is not None:
        # An outage, not a bug: nothing was committed by this request (a write that
        # committed before the outage answers as committed; see the routes).
        log.warning("%s is unavailable: %r", outage, exc)
        return problem_response(
            503,
            "Service unavailable",
            f"{outage} did not answer; try again shortly"
            " (a retry with the same Idempotency-Key is safe)",
            slug="unavailable",
            instance=_instance(request),
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER)},
        )
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal error",
        "the service failed to handle this request; it has been logged",
        instance=_instance(request),
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ValidationException: handle_validation,
    HTTPException: handle_http,
    DomainError: handle_domain,
    Exception: handle_unexpected,
}
