"""Piccolo tables of the sla domain."""

from __future__ import annotations

from piccolo.table import Table

TABLES: tuple[type[Table], ...] = ()
