"""`moka-images report`: one self-contained HTML page of what the environments hold and how images evolve."""

from __future__ import annotations

import argparse
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moka_images import log
from moka_images.config.settings import load_settings
from moka_images.models import Environment
from moka_images.stages import status
from moka_images.stages.report import SEVERITIES, ImageHistory, ReportData, collect

SEVERITY_COLORS = {"CRITICAL": "#b91c1c", "HIGH": "#ea580c", "MEDIUM": "#ca8a04", "LOW": "#2563eb",
                   "UNKNOWN": "#6b7280", "SECRETS": "#7c3aed"}


SERIES_COLORS = ("#2563eb", "#16a34a", "#db2777", "#0891b2")


CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _e(value: object) -> str:
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
              f'aria-label="{_e(title)}"><title>{_e(title)}</title>'),
             f'<text x="{left}" y="16" class="title">{_e(title)}</text>']
    for i in range(5):
        value = ymax * i / 4
        y = bottom - (bottom - top) * i / 4
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                     f'{_e(_short_number(value))}</text>')
    parts.append(f'<text x="12" y="{(top + bottom) / 2:.1f}" class="unit" transform="rotate(-90 12 '
                 f'{(top + bottom) / 2:.1f})" text-anchor="middle">{_e(unit)}</text>')
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
        lines = "".join(f'<tspan x="{x:.1f}" dy="{0 if n == 0 else 12}">{_e(part)}</tspan>'
                        for n, part in enumerate(label.split("\n")))
        out.append(f'<text x="{x:.1f}" y="{y:.1f}" class="tick" text-anchor="middle">{lines}</text>')
    return out


def _legend(names: Sequence[str], colors: Sequence[str], x: float) -> list[str]:
    parts = []
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        y = 12 + 14 * i
        parts.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="{y + 1}" class="legend">{_e(name)}</text>')
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
                         f'<title>{_e(name)} {_e(label)}: {_e(_short_number(v))} {_e(unit)}</title></circle>')
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
                         f'fill="{color}" class="bar"><title>{_e(labels[i])}: {vals[i]} {_e(key)}</title></rect>')
        if not totals[i]:
            parts.append(f'<text x="{x:.1f}" y="{bottom - 4:.1f}" class="tick" text-anchor="middle">0</text>')
    parts += _x_labels(labels, xs, bottom + 18)
    parts += _legend(list(stacks), colors, right + 16)
    return "".join(parts) + "</svg>"


def sizes_chart(h: ImageHistory) -> str | None:
    """Each platform's size over the builds, in MB; None without builds."""
    if not h.builds:
        return None
    platforms = sorted({p for b in h.builds for p in b.sizes})
    series = {p: [b.sizes[p] / 1e6 if p in b.sizes else None for b in h.builds] for p in platforms}
    return line_chart(f"{h.image}: compressed size per platform", [b.label for b in h.builds], series, "MB")


def findings_chart(h: ImageHistory) -> str | None:
    """Findings by severity for each scan (build and DB), oldest DB first; None without scans."""
    if not h.scans:
        return None
    labels = [f"{p.build.splitlines()[0]}\nDB {p.db_updated_at[:10]}" for p in h.scans]
    keys = [k for k in (*SEVERITIES, "SECRETS") if any(p.counts.get(k) for p in h.scans)] or ["CRITICAL"]
    stacks = {k: [int(p.counts.get(k, 0)) for p in h.scans] for k in keys}
    return stacked_bars(f"{h.image}: findings per scan", labels, stacks, "findings")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d1d5db}main{padding:12px 24px 40px}h2{margin:24px 0 8px;font-size:17px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0000001a}
th,td{border:1px solid #e5e7eb;padding:6px 8px;vertical-align:top;text-align:left}
th{background:#f3f4f6;font-weight:600}td.empty{color:#9ca3af;text-align:center}
.cell .v{font-weight:600}.cell code,td code{font-size:12px;color:#374151}
.ok{color:#15803d}.bad{color:#b91c1c;font-weight:600}.muted{color:#6b7280}.note{color:#92400e}
#filter{padding:5px 8px;margin:0 8px 8px 0;border:1px solid #d1d5db;border-radius:4px;width:220px}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;background:#fff;padding:8px;
box-shadow:0 1px 2px #0000001a}figure p.empty{width:580px;color:#6b7280;margin:8px}
article h3{margin:18px 0 6px;font-size:15px}figcaption{font-size:12px;color:#4b5563;margin:2px 8px}
svg text{font-size:11px;fill:#374151}svg .title{font-size:13px;font-weight:600;fill:#111827}
svg .grid{stroke:#e5e7eb}svg .legend{font-size:11px}
"""


_JS = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('#matrix tbody tr'));
  var articles = Array.prototype.slice.call(document.querySelectorAll('article.image'));
  var input = document.getElementById('filter');
  var shown = document.getElementById('shown');
  function apply() {
    var q = input.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (row) {
      var hit = row.getAttribute('data-image').toLowerCase().indexOf(q) >= 0;
      row.hidden = !hit; if (hit) { n += 1; }
    });
    articles.forEach(function (a) { a.hidden = a.getAttribute('data-image').toLowerCase().indexOf(q) < 0; });
    shown.textContent = n + ' of ' + rows.length + ' images shown';
  }
  input.addEventListener('input', apply);
  apply();
  document.body.setAttribute('data-ready', 'true');
})();
"""


def _cell(c: status.Cell) -> str:
    if c.digest is None:
        return '<td class="empty">–</td>'
    signed = '<span class="ok">signed</span>' if c.signed else '<span class="bad">NOT signed</span>'
    scan_text = c.scan or "no scan attested"
    scan_cls = "bad" if "BLOCKED" in scan_text else ("ok" if scan_text.startswith("allowed") else "muted")
    smoke_text = c.smoke or "no smoke attested"
    smoke_cls = "ok" if smoke_text == "passed" else ("bad" if smoke_text == "FAILED" else "muted")
    approved = (f'<div class="muted">approved by {_e(c.promoted["approved_by"])}</div>'
                if c.promoted.get("approved_by") else "")
    return (f'<td class="cell" data-env="{_e(c.env.value)}"><div class="v">{_e(c.version or "?")}</div>'
            f'<div><code title="{_e(c.digest)}">{_e(c.digest.short)}</code></div><div>{signed}</div>'
            f'<div class="{scan_cls}">scan: {_e(scan_text)}</div><div class="{smoke_cls}">smoke: {_e(smoke_text)}</div>'
            f"{approved}</td>")


def _matrix(rows: Sequence[status.Row]) -> str:
    head = "".join(f"<th>{_e(env.value)}</th>" for env in Environment)
    body = []
    for row in rows:
        notes = "".join(f'<div class="note">{_e(n)}</div>' for n in row.notes)
        body.append(f'<tr data-image="{_e(row.image)}"><th scope="row">{_e(row.image)}'
                    f'<div class="muted">declared {_e(row.declared)}</div></th>'
                    f'{"".join(_cell(c) for c in row.cells)}<td>{notes}</td></tr>')
    return (f'<table class="matrix"><thead><tr><th>image</th>{head}<th>attention</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _figure(kind: str, svg: str | None, empty: str, caption: str = "") -> str:
    inner = svg if svg is not None else f'<p class="empty">{_e(empty)}</p>'
    text = f"<figcaption>{_e(caption)}</figcaption>" if caption and svg is not None else ""
    return f'<figure class="chart" data-chart="{kind}">{inner}{text}</figure>'


def _latest_sizes(h: ImageHistory) -> str:
    if not h.builds:
        return ""
    latest = h.builds[-1]
    return f"{latest.tag}: " + " · ".join(f"{p} {n / 1e6:.1f} MB" for p, n in sorted(latest.sizes.items()))


def _promotions(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return '<p class="muted">no promotions recorded on this machine</p>'
    rows = []
    for r in records:
        digest = str(r.get("digest", ""))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in (
            _e(r.get("at", "")), _e(r.get("action", "")), _e(r.get("image", "")),
            f'<code title="{_e(digest)}">{_e(digest.removeprefix("sha256:")[:12])}</code>',
            f'{_e(r.get("from", ""))} → {_e(r.get("to", ""))}', _e(r.get("outcome", "")),
            _e(" ".join(r.get("moved") or [])), _e(r.get("by", "")), _e(r.get("approved_by") or "–"))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("at", "action", "image", "digest", "move", "outcome", "tags moved",
                                             "by", "approved by"))
    return f'<table class="promotions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render(data: ReportData) -> str:
    """The whole page, one string. Pure."""
    articles = []
    for h in data.histories:
        articles.append(
            f'<article class="image" data-image="{_e(h.image)}"><h3>{_e(h.image)}</h3><div class="charts">'
            + _figure("sizes", sizes_chart(h), "no builds in test", _latest_sizes(h))
            + _figure("findings", findings_chart(h), "no scans cached on this machine")
            + "</div></article>")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>moka-images report</title><style>{_CSS}</style></head><body>"
        f"<header><h1>moka-images</h1><p>profile {_e(data.profile)} · generated {_e(data.generated_at)}</p></header>"
        f'<main><section id="matrix"><h2>What each environment serves</h2>'
        f'<input id="filter" type="search" placeholder="filter images" aria-label="filter images">'
        f'<span id="shown" class="muted"></span>{_matrix(data.rows)}</section>'
        f'<section id="images"><h2>Sizes and findings over time</h2>{"".join(articles)}</section>'
        f'<section id="promotions"><h2>Promotions (newest first)</h2>{_promotions(data.promotions)}</section>'
        f"</main><script>{_JS}</script></body></html>\n"
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add `report`."""
    p = sub.add_parser("report", help="one self-contained HTML page: status matrix, sizes and findings over time")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="only these images (default: every declared one)")
    p.add_argument("--output", "-o", type=Path, default=Path("moka-images-report.html"), metavar="FILE",
                   help="where to write the page (default moka-images-report.html)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    data = collect(load_settings(profile=args.profile), args.images)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(data))
    log.info(f"wrote {args.output}", images=len(data.rows), promotions=len(data.promotions))
    return 0
