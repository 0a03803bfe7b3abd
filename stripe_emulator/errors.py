"""Stripe-shaped API errors raised by handlers and rendered by the app."""

from __future__ import annotations

from typing import Any

DOCS = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An error Stripe would answer with: HTTP status plus the `error` object."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"{DOCS}/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 invalid_request_error."""
    return StripeError(400, "invalid_request_error", message, param=param, code=code)


def missing(param: str) -> StripeError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    """Stripe's 404 for an unknown id (`No such customer: 'cus_x'`)."""
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        param=param,
        code="resource_missing",
    )


def card_error(
    message: str,
    code: str,
    *,
    decline_code: str | None = None,
    param: str | None = None,
    extra: dict[str, Any] | None = None,
) -> StripeError:
    return StripeError(
        402,
        "card_error",
        message,
        code=code,
        param=param,
        decline_code=decline_code,
        extra=extra,
    )


def idempotency_error(message: str, status: int = 400) -> StripeError:
    return StripeError(status, "idempotency_error", message)


def api_error(status: int = 500) -> StripeError:
    return StripeError(
        status,
        "api_error",
        "An unknown error occurred. Please retry the request (emulated fault).",
        headers={"Stripe-Should-Retry": "true"},
    )


def rate_limited() -> StripeError:
    return StripeError(
        429,
        "invalid_request_error",
        "Too many requests hit the API too quickly (emulated fault).",
        code="rate_limit",
        headers={"Stripe-Should-Retry": "true", "Retry-After": "1"},
    )
