"""Bar charts as inline SVG, drawn on the server: the finance page's chart needs no script."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape, quoteattr

SLOT: Final = 84  # horizontal room per bar: its value label fits ("12,345.67 USD")
MIN_WIDTH: Final = 480
HEIGHT: Final = 260
_TOP, _BOTTOM, _LEFT, _RIGHT = 24, 40, 16, 16


@dataclass(frozen=True)
class Bar:
    label: str  # the x-axis label, e.g. "2026-11"
    value: int  # minor units; negative values draw below the axis


def bar_chart(title: str, bars: Sequence[Bar], fmt: Callable[[int], str], *, chart_id: str) -> str:
    """An accessible SVG bar chart (``role="img"``, a title, one labelled ``<g>`` per bar).

    Every value is written on its bar, so the chart reads without hovering; ``fmt`` turns a
    value into its label. All text is escaped: labels come from data.
    """
    width_total = max(MIN_WIDTH, SLOT * len(bars) + _LEFT + _RIGHT)
    inner_w = width_total - _LEFT - _RIGHT
    inner_h = HEIGHT - _TOP - _BOTTOM
    high = max([0, *(b.value for b in bars)])
    low = min([0, *(b.value for b in bars)])
    span = (high - low) or 1
    axis_y = _TOP + inner_h * high / span
    slot = inner_w / max(len(bars), 1)
    width = max(slot * 0.6, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id={quoteattr(chart_id)}'
        f' viewBox="0 0 {width_total} {HEIGHT}" role="img"'
        f" aria-labelledby={quoteattr(chart_id + '-title')}>",
        f"<title id={quoteattr(chart_id + '-title')}>{escape(title)}</title>",
        f'<line class="axis" x1="{_LEFT}" y1="{axis_y:.1f}"'
        f' x2="{width_total - _RIGHT}" y2="{axis_y:.1f}"/>',
    ]
    for i, bar in enumerate(bars):
        x = _LEFT + slot * i + (slot - width) / 2
        height = inner_h * abs(bar.value) / span
        y = axis_y - height if bar.value >= 0 else axis_y
        shown = fmt(bar.value) if bar.value else ""
        value_y = y - 6 if bar.value >= 0 else y + height + 14
        parts.append(
            f'<g class="bar" data-label={quoteattr(bar.label)} data-value="{bar.value}">'
            f"<title>{escape(bar.label)}: {escape(fmt(bar.value))}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}"/>'
            f'<text class="value" x="{x + width / 2:.1f}" y="{value_y:.1f}"'
            f' text-anchor="middle">{escape(shown)}</text>'
            f'<text class="label" x="{x + width / 2:.1f}" y="{HEIGHT - _BOTTOM / 2 + 4:.1f}"'
            f' text-anchor="middle">{escape(bar.label)}</text>'
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
