"""List envelopes: ``{"data": [...], "has_more": bool}`` with ``limit`` and ``starting_after``."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

T = TypeVar("T")

Limit = Annotated[int, QueryParameter(ge=1, le=100, description="1 to 100, default 20")]


class Page(msgspec.Struct, Generic[T], frozen=True):
    data: list[T]
    has_more: bool
