"""Shared request-shape rules: the request Struct base, bounded times, column-sized integers.

Request bodies are decoded strictly (``api.strict``): no ``"1"`` or ``1.0`` for an integer,
no epoch number for a time. What a Struct's types cannot say (a time's range) its
``__post_init__`` checks, which msgspec reports as a validation error of that body.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec

# Times a request may carry. Wider ranges only reach arithmetic that overflows at year 1 or
# 9999 (a deadline, a period) and nothing of this service's lifetime lies outside them.
MIN_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME: Final = datetime(2100, 1, 1, tzinfo=UTC)
TIME_RANGE: Final = "between 1970-01-01T00:00:00Z and 2100-01-01T00:00:00Z"

# RFC 3339 with an offset; msgspec alone would also take an epoch number in lax mode.
AwareDatetime = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description=f"RFC 3339 with an offset, {TIME_RANGE}",
        examples=["2026-11-22T10:00:00Z"],
    ),
]

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1
Int32 = Annotated[int, msgspec.Meta(ge=-(2**31), le=INT32_MAX)]
PositiveInt32 = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
NonNegativeInt32 = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]


class TimeOutOfRange(ValueError):
    pass


def check_time(value: datetime, field: str) -> datetime:
    """``value`` when it lies in the accepted range, else TimeOutOfRange naming ``field``."""
    if value.tzinfo is None:
        raise TimeOutOfRange(f"Invalid time for field `{field}`: it needs an offset (RFC 3339)")
    # The year first: comparing year 1 or 9999 across an offset overflows.
    if not MIN_TIME.year <= value.year < MAX_TIME.year or not MIN_TIME <= value < MAX_TIME:
        raise TimeOutOfRange(f"Invalid time for field `{field}`: it must lie {TIME_RANGE}")
    return value


def _check_times(value: Any, field: str) -> None:
    if isinstance(value, datetime):
        check_time(value, field)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_times(item, field)


class RequestBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body: unknown fields refused, every time within range."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            _check_times(getattr(self, name), name)
