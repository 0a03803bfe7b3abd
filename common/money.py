"""Money as integer minor units with a lowercase ISO 4217 currency."""

from __future__ import annotations

from typing import Annotated

import msgspec

Currency = Annotated[str, msgspec.Meta(pattern="^[a-z]{3}$", examples=["usd"])]
MinorUnits = Annotated[int, msgspec.Meta(ge=0, le=100_000_000_00)]


class Money(msgspec.Struct, frozen=True):
    """An amount in minor units (cents) of ``currency``."""

    amount: int
    currency: str


def percent_of(amount: int, percent: int | float) -> int:
    """``percent`` % of ``amount`` minor units, rounded half up, never negative."""
    # Work in integer hundredths of a percent so 12.5 % is exact.
    basis_points = round(percent * 100)
    return max(0, (amount * basis_points + 5_000) // 10_000)
