"""Base classes of domain errors; ``api/errors.py`` maps each family to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """A refused operation, with a human ``detail`` safe to show to the caller."""

    title = "Request refused"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class BadRequest(DomainError):
    """The request itself is unusable (a bad signature, an unreadable payload)."""

    title = "Bad request"


class NotFound(DomainError):
    title = "Not found"


class Conflict(DomainError):
    """The request contradicts the current state (resolve twice, plan code taken…)."""

    title = "Conflict"


class InvalidRequest(DomainError):
    """Well-formed but semantically invalid input (unknown plan, future timestamp…)."""

    title = "Invalid request"


class PaymentRequired(DomainError):
    """The payment was declined or needs the customer's action."""

    title = "Payment failed"


class UpstreamUnavailable(DomainError):
    """Stripe (or another dependency) did not answer after retries."""

    title = "Upstream unavailable"
