"""The default plan catalog (filled in by the billing core)."""

from __future__ import annotations


async def seed_if_empty() -> list[str]:
    """Seed the default catalog when no plan exists; returns the codes created."""
    return []
