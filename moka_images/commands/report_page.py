"""The report as one self-contained HTML page: the status matrix, sizes and findings over time, recent promotions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moka_images.commands.svg_charts import esc, line_chart, stacked_bars
from moka_images.models import Environment
from moka_images.stages import status
from moka_images.stages.report import SEVERITIES, ImageHistory, ReportData

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


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
    approved = (f'<div class="muted">approved by {esc(c.promoted["approved_by"])}</div>'
                if c.promoted.get("approved_by") else "")
    return (f'<td class="cell" data-env="{esc(c.env.value)}"><div class="v">{esc(c.version or "?")}</div>'
            f'<div><code title="{esc(c.digest)}">{esc(c.digest.short)}</code></div><div>{signed}</div>'
            f'<div class="{scan_cls}">scan: {esc(scan_text)}</div><div class="{smoke_cls}">smoke: {esc(smoke_text)}</div>'
            f"{approved}</td>")


def _matrix(rows: Sequence[status.Row]) -> str:
    head = "".join(f"<th>{esc(env.value)}</th>" for env in Environment)
    body = []
    for row in rows:
        notes = "".join(f'<div class="note">{esc(n)}</div>' for n in row.notes)
        body.append(f'<tr data-image="{esc(row.image)}"><th scope="row">{esc(row.image)}'
                    f'<div class="muted">declared {esc(row.declared)}</div></th>'
                    f'{"".join(_cell(c) for c in row.cells)}<td>{notes}</td></tr>')
    return (f'<table class="matrix"><thead><tr><th>image</th>{head}<th>attention</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _figure(kind: str, svg: str | None, empty: str, caption: str = "") -> str:
    inner = svg if svg is not None else f'<p class="empty">{esc(empty)}</p>'
    text = f"<figcaption>{esc(caption)}</figcaption>" if caption and svg is not None else ""
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
            esc(r.get("at", "")), esc(r.get("action", "")), esc(r.get("image", "")),
            f'<code title="{esc(digest)}">{esc(digest.removeprefix("sha256:")[:12])}</code>',
            f'{esc(r.get("from", ""))} → {esc(r.get("to", ""))}', esc(r.get("outcome", "")),
            esc(" ".join(r.get("moved") or [])), esc(r.get("by", "")), esc(r.get("approved_by") or "–"))) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("at", "action", "image", "digest", "move", "outcome", "tags moved",
                                             "by", "approved by"))
    return f'<table class="promotions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render(data: ReportData) -> str:
    """The whole page, one string. Pure."""
    articles = []
    for h in data.histories:
        articles.append(
            f'<article class="image" data-image="{esc(h.image)}"><h3>{esc(h.image)}</h3><div class="charts">'
            + _figure("sizes", sizes_chart(h), "no builds in test", _latest_sizes(h))
            + _figure("findings", findings_chart(h), "no scans cached on this machine")
            + "</div></article>")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>moka-images report</title><style>{_CSS}</style></head><body>"
        f"<header><h1>moka-images</h1><p>profile {esc(data.profile)} · generated {esc(data.generated_at)}</p></header>"
        f'<main><section id="matrix"><h2>What each environment serves</h2>'
        f'<input id="filter" type="search" placeholder="filter images" aria-label="filter images">'
        f'<span id="shown" class="muted"></span>{_matrix(data.rows)}</section>'
        f'<section id="images"><h2>Sizes and findings over time</h2>{"".join(articles)}</section>'
        f'<section id="promotions"><h2>Promotions (newest first)</h2>{_promotions(data.promotions)}</section>'
        f"</main><script>{_JS}</script></body></html>\n"
    )
