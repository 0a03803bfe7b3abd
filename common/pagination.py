"""Keyset pages: ``limit`` rows after the ``starting_after`` id, and whether more follow.

Ids sort by creation (``common.ids``), so a page is a range scan on the primary key;
no offset, and a row inserted meanwhile never shifts a page.
"""

from __future__ import annotations

from typing import Any, TypeVar

from piccolo.columns import Column

T = TypeVar("T")


async def keyset_page(
    query: Any,
    key: Column,
    *,
    limit: int,
    starting_after: Any = None,
    newest_first: bool = True,
) -> tuple[list[Any], bool]:
    """One page of a Piccolo ``select()``/``objects()`` query, in ``key`` order."""
    if starting_after is not None:
        query = query.where(key < starting_after if newest_first else key > starting_after)
    rows = await query.order_by(key, ascending=not newest_first).limit(limit + 1)
    return list(rows[:limit]), len(rows) > limit
