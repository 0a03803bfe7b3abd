"""HTTP routes of the billing capability."""

from __future__ import annotations

from collections.abc import Sequence

from litestar.types import ControllerRouterHandler

ROUTES: Sequence[ControllerRouterHandler] = ()
