"""Injected faults: fail, or stall, the next N matching API requests before or after they run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from stripe_emulator.errors import StripeError, api_error, invalid, rate_limited
from stripe_emulator.ids import new_id


@dataclass
class Fault:
    """`when="before"`: nothing happens; `"after"`: the request runs (and is stored under its
    idempotency key) and only then fails, so a retry with the same key replays the result."""

    id: str
    path: str
    method: str | None = None
    status: int | None = None
    timeout: float | None = None
    count: int = 1
    when: str = "before"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path)

    def error(self) -> StripeError | None:
        """The error answered; None for a pure stall after the request ran."""
        if self.status is None:
            return api_error(500) if self.when == "before" else None
        if self.status == 429:
            return rate_limited()
        if self.status >= 500:
            return api_error(self.status)
        return StripeError(self.status, "invalid_request_error", "Emulated fault.")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    def __init__(self) -> None:
        self.rules: list[Fault] = []

    def add(self, spec: dict[str, Any]) -> Fault:
        """Validate a control-plane spec such as `{"path": "/v1/customers", "status": 500}`."""
        path = spec.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise invalid("A fault needs a `path` prefix such as /v1/customers.", param="path")
        status = spec.get("status")
        timeout = spec.get("timeout")
        if status is None and timeout is None:
            raise invalid("A fault needs a `status` and/or a `timeout` in seconds.")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise invalid("`status` must be an HTTP error status (429, 500, 503, …).")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise invalid("`timeout` must be a number of seconds.", param="timeout")
        when = spec.get("when", "before")
        if when not in ("before", "after"):
            raise invalid("`when` must be `before` or `after`.", param="when")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise invalid("`count` must be a positive integer.", param="count")
        method = spec.get("method")
        fault = Fault(
            id=new_id("fault"),
            path=path,
            method=method.upper() if isinstance(method, str) else None,
            status=status,
            timeout=float(timeout) if timeout is not None else None,
            count=count,
            when=when,
        )
        self.rules.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first matching fault, used up by this request."""
        for fault in self.rules:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count <= 0:
                    self.rules.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.rules = []
