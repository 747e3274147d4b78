"""Small SVG charts drawn as text (a line chart and stacked bars), for a self-contained HTML page: no library, no script."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

SEVERITY_COLORS = {"CRITICAL": "#b91c1c", "HIGH": "#ea580c", "MEDIUM": "#ca8a04", "LOW": "#2563eb",
                   "UNKNOWN": "#6b7280", "SECRETS": "#7c3aed"}
SERIES_COLORS = ("#2563eb", "#16a34a", "#db2777", "#0891b2")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def nice_max(value: float, *, whole: bool = False) -> float:
    """A round top for an axis at or above `value`: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten.

    `whole` (counts) makes it a multiple of four of at least four, so that the four grid steps are integers.
    """
    if whole:
        return 4.0 * math.ceil(nice_max(max(value, 4.0)) / 4)
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(m * power for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value * (1 - 1e-9)))


def _frame(title: str, width: int, height: int, box: tuple[float, float, float, float], ymax: float,
           unit: str) -> list[str]:
    """The svg element, its title, horizontal grid lines with their values and the unit; `box` is the plot's
    left, right, top and bottom."""
    left, right, top, bottom = box
    parts = [(f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
              f'aria-label="{esc(title)}"><title>{esc(title)}</title>'),
             f'<text x="{left}" y="16" class="title">{esc(title)}</text>']
    for i in range(5):
        value = ymax * i / 4
        y = bottom - (bottom - top) * i / 4
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                     f'{esc(_short_number(value))}</text>')
    parts.append(f'<text x="12" y="{(top + bottom) / 2:.1f}" class="unit" transform="rotate(-90 12 '
                 f'{(top + bottom) / 2:.1f})" text-anchor="middle">{esc(unit)}</text>')
    return parts


def _short_number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float) -> list[str]:
    """Labels under the plot, a line per `\\n`; at most six, so that they never overlap."""
    step = max(1, math.ceil(len(labels) / 6))
    out = []
    for i, (label, x) in enumerate(zip(labels, xs, strict=True)):
        if i % step and i != len(labels) - 1:
            continue
        lines = "".join(f'<tspan x="{x:.1f}" dy="{0 if n == 0 else 12}">{esc(part)}</tspan>'
                        for n, part in enumerate(label.split("\n")))
        out.append(f'<text x="{x:.1f}" y="{y:.1f}" class="tick" text-anchor="middle">{lines}</text>')
    return out


def _legend(names: Sequence[str], colors: Sequence[str], x: float) -> list[str]:
    parts = []
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        y = 12 + 14 * i
        parts.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{y + 1}" class="legend">{esc(name)}</text>')
    return parts


def line_chart(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], unit: str,
               width: int = 600, height: int = 260) -> str:
    """An SVG line chart over categorical x values, one line per series (None: no point there)."""
    left, right, top, bottom = 56.0, width - 120.0, 30.0, height - 44.0
    values = [v for vals in series.values() for v in vals if v is not None]
    ymax = nice_max(max(values, default=0.0))
    n = len(labels)
    xs = [left + (right - left) * (i + 0.5) / n for i in range(n)]
    parts = _frame(title, width, height, (left, right, top, bottom), ymax, unit)
    colors = [SERIES_COLORS[i % len(SERIES_COLORS)] for i in range(len(series))]
    for i, ((name, vals), color) in enumerate(zip(series.items(), colors, strict=True)):
        points = [(x, bottom - (bottom - top) * v / ymax, v, label)
                  for x, v, label in zip(xs, vals, labels, strict=True) if v is not None]
        # Platforms of one image are often the same size: later series are drawn dashed and with smaller
        # points, so that one never hides another.
        dash, radius = (' stroke-dasharray="6 4"' if i else ""), max(2.0, 5.0 - 1.5 * i)
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y, v, label in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}" class="point">'
                         f'<title>{esc(name)} {esc(label)}: {esc(_short_number(v))} {esc(unit)}</title></circle>')
    parts += _x_labels(labels, xs, bottom + 18)
    parts += _legend(list(series), colors, right + 16)
    return "".join(parts) + "</svg>"


def stacked_bars(title: str, labels: Sequence[str], stacks: Mapping[str, Sequence[int]], unit: str,
                 width: int = 600, height: int = 260) -> str:
    """An SVG bar chart, one bar per label, stacked by key (severities, in the mapping's order)."""
    left, right, top, bottom = 56.0, width - 120.0, 30.0, height - 44.0
    n = len(labels)
    totals = [sum(vals[i] for vals in stacks.values()) for i in range(n)]
    ymax = nice_max(max(totals, default=0), whole=True)
    slot = (right - left) / max(n, 1)
    bar = min(44.0, slot * 0.6)
    parts = _frame(title, width, height, (left, right, top, bottom), ymax, unit)
    xs = [left + slot * (i + 0.5) for i in range(n)]
    colors = [SEVERITY_COLORS.get(k, "#6b7280") for k in stacks]
    for i, x in enumerate(xs):
        y = bottom
        for (key, vals), color in zip(stacks.items(), colors, strict=True):
            if not vals[i]:
                continue
            h = (bottom - top) * vals[i] / ymax
            y -= h
            parts.append(f'<rect x="{x - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{color}" class="bar"><title>{esc(labels[i])}: {vals[i]} {esc(key)}</title></rect>')
        if not totals[i]:
            parts.append(f'<text x="{x:.1f}" y="{bottom - 4:.1f}" class="tick" text-anchor="middle">0</text>')
    parts += _x_labels(labels, xs, bottom + 18)
    parts += _legend(list(stacks), colors, right + 16)
    return "".join(parts) + "</svg>"
