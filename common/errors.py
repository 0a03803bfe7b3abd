"""Base classes of domain errors; ``api/errors.py`` maps each family to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    """A refused operation, with a human ``detail`` safe to show to the caller.

    ``retry_after`` (seconds) marks a refusal that a later identical request may not
    meet: it is sent as ``Retry-After``, and such an answer is never replayed.
    """

    title = "Request refused"

    def __init__(
        self, detail: str, *, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.retry_after = retry_after


class BadRequest(DomainError):
    """The request itself is unusable (a bad signature, an unreadable payload)."""

    title = "Bad request"


class NotFound(DomainError):
    title = "Not found"


class Conflict(DomainError):
    """The request contradicts the current state (resolve twice, plan code taken…)."""

    title = "Conflict"


class Busy(Conflict):
    """Another request is doing this very work right now; try again shortly."""

    title = "Request in progress"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, retry_after=retry_after)


class InvalidRequest(DomainError):
    """Well-formed but semantically invalid input (unknown plan, future timestamp…)."""

    title = "Invalid request"


class PaymentRequired(DomainError):
    """The payment was declined or needs the customer's action."""

    title = "Payment failed"


class UpstreamUnavailable(DomainError):
    """Stripe (or another dependency) did not answer after retries."""

    title = "Upstream unavailable"

    def __init__(
        self, detail: str, *, field: str | None = None, retry_after: int | None = 5
    ) -> None:
        super().__init__(detail, field=field, retry_after=retry_after)
