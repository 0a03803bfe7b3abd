"""Proration maths for a subscription change, shared by the preview and the update."""

from __future__ import annotations

from dataclasses import dataclass

from stripe_emulator.clock import format_date
from stripe_emulator.objects import Obj

TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class ItemState:
    """One subscription item as it is, or as it will be after the change."""

    item_id: str  # a fresh id for an item the change adds
    price: Obj
    quantity: int
    metadata: dict[str, str]

    @property
    def amount(self) -> int:
        return int(self.price["unit_amount"]) * self.quantity


@dataclass(frozen=True)
class ProrationLine:
    amount: int
    description: str
    price: Obj
    quantity: int
    item_id: str
    period: tuple[int, int]


def prorate(amount: int, remaining: int, length: int) -> int:
    """round(amount * remaining / length), halves away from zero, in integer maths."""
    if length <= 0 or remaining <= 0:
        return 0
    sign = -1 if amount < 0 else 1
    return sign * ((abs(amount) * remaining * 2 + length) // (2 * length))


def _label(item: ItemState, product_name: str) -> str:
    return f"{item.quantity} {TIMES} {product_name}" if item.quantity != 1 else product_name


def proration_lines(
    old: list[ItemState],
    new: list[ItemState],
    *,
    period: tuple[int, int],
    proration_date: int,
    product_names: dict[str, str],
    charge_remaining: bool = True,
) -> list[ProrationLine]:
    """Credit unused time on items that change or go, charge the rest of the period on new ones.

    `charge_remaining=False` is the interval change: the new price starts a new full period,
    so only the credit for the old one is prorated.
    """
    start, end = period
    remaining, length = end - proration_date, end - start
    when = format_date(proration_date)
    by_id = {item.item_id: item for item in new}
    lines: list[ProrationLine] = []
    for before in old:
        after = by_id.get(before.item_id)
        if after is not None and (after.price["id"], after.quantity) == (
            before.price["id"],
            before.quantity,
        ):
            continue
        name = product_names[before.price["product"]]
        lines.append(
            ProrationLine(
                amount=-prorate(before.amount, remaining, length),
                description=f"Unused time on {_label(before, name)} after {when}",
                price=before.price,
                quantity=before.quantity,
                item_id=before.item_id,
                period=(proration_date, end),
            )
        )
    if not charge_remaining:
        return lines
    old_by_id = {item.item_id: item for item in old}
    for after in new:
        previous = old_by_id.get(after.item_id)
        if previous is not None and (previous.price["id"], previous.quantity) == (
            after.price["id"],
            after.quantity,
        ):
            continue
        name = product_names[after.price["product"]]
        lines.append(
            ProrationLine(
                amount=prorate(after.amount, remaining, length),
                description=f"Remaining time on {_label(after, name)} after {when}",
                price=after.price,
                quantity=after.quantity,
                item_id=after.item_id,
                period=(proration_date, end),
            )
        )
    return lines
