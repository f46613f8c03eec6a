"""Charts drawn on the server as inline SVG: the page needs no script and no internet.

Every function returns markup built from numbers and escaped labels only, so it can be put in
an autoescaped template as it is. Colours come from dashboard.css classes (no inline style:
the Content-Security-Policy allows none).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

HEAT_LEVELS = 5


def sparkline(values: Sequence[int], label: str, *, width: int = 160, height: int = 32) -> Markup:
    """A line over the values (days or weeks), its area shaded, the last point marked."""
    if not values:
        return Markup("")
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    points = [
        (round(i * step, 1), round(height - 2 - (v / top) * (height - 4), 1))
        for i, v in enumerate(values)
    ]
    line = " ".join(f"{x},{y}" for x, y in points)
    area = f"0,{height} {line} {points[-1][0]},{height}"
    last_x, last_y = points[-1]
    return Markup(
        f'<svg class="spark" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
        f'<polygon class="spark-area" points="{area}"/>'
        f'<polyline class="spark-line" points="{line}"/>'
        f'<circle class="spark-dot" cx="{last_x}" cy="{last_y}" r="2"/></svg>'
    )


def columns(
    values: Sequence[int], labels: Sequence[str], title: str, *, width: int = 480, height: int = 80
) -> Markup:
    """Vertical bars, one per day or week, each with its label and count as a tooltip."""
    if not values:
        return Markup("")
    top = max(values) or 1
    slot = width / len(values)
    bar = max(slot - 2, 1)
    rects = []
    for i, (value, name) in enumerate(zip(values, labels, strict=True)):
        h = round((value / top) * (height - 2), 1)
        rects.append(
            f'<rect class="col" x="{round(i * slot, 1)}" y="{round(height - h, 1)}" '
            f'width="{round(bar, 1)}" height="{h}"><title>{escape(name)}: {value}</title></rect>'
        )
    return Markup(
        f'<svg class="columns" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>{"".join(rects)}</svg>'
    )


def bar(value: int, top: int, *, width: int = 120, height: int = 12) -> Markup:
    """One horizontal bar, as long as `value` is against `top`."""
    length = round(width * value / top, 1) if top > 0 else 0
    return Markup(
        f'<svg class="bar" aria-hidden="true" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><rect class="bar-bg" width="{width}" '
        f'height="{height}"/><rect class="bar-fg" width="{length}" height="{height}"/></svg>'
    )


def heat_level(value: int, top: int) -> int:
    """0 for nothing, then 1..HEAT_LEVELS by the share of the largest cell (a CSS class)."""
    if value <= 0 or top <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, -(-value * HEAT_LEVELS // top)))
