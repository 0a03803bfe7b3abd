"""arq jobs of the sla capability: each a few lines calling a service."""

from __future__ import annotations

from typing import Any

FUNCTIONS: list[Any] = []
CRON_JOBS: list[Any] = []
