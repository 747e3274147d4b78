"""The report page, rendered from made-up data: self-contained, escaped, with well-formed SVG plots."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from moka_images.commands import report_page, svg_charts
from moka_images.findings import DbVersion, ScanReport, SecretFinding, Severity, VulnFinding
from moka_images.models import Digest, Environment, Platform
from moka_images.stages import report, status

D1, D2, D3 = (Digest("sha256:" + c * 64) for c in "123")
AMD, ARM = Platform("linux", "amd64"), Platform("linux", "arm64")
EVIL = 'team/<script>alert("x")</script>'


def _db(day: str) -> DbVersion:
    return DbVersion(f"sha256:{day[-1] * 64}", f"2026-11-{day}T00:00:00Z", "sha256:" + "f" * 64, "2026-11-01T00:00:00Z")


def _report(platform: Platform, digest: Digest, db: DbVersion, *vulns: tuple[str, str, Severity]) -> ScanReport:
    return ScanReport(platform, digest, db, tuple(VulnFinding(i, p, "1.0", None, s) for i, p, s in vulns))


def _data() -> report.ReportData:
    cells = (status.Cell(Environment.TEST, D1, "1.0.1", "1.0.1-aaaaaaaaaa-bbbbbbbbbb", True, "allowed (test policy)",
                         "passed"),
             status.Cell(Environment.DEV, D1, "1.0.1", None, True, "BLOCKED (dev policy)", "FAILED",
                         {"approved_by": "alice <ops>"}),
             status.Cell(Environment.STAGING), status.Cell(Environment.PROD))
    rows = (status.Row("spark-3.5", "1.0.1", cells, ("pending: 1.0.1 dev -> staging",)),
            status.Row(EVIL, "2.0.0", tuple(status.Cell(e) for e in Environment), ()))
    builds = (report.Build("1.0.0-aaaaaaaaaa-bbbbbbbbbb", "1.0.0", "2026-11-01T00:00:00Z", {"linux/amd64": D2},
                           {"linux/amd64": 800_000_000, "linux/arm64": 790_000_000}),
              report.Build("1.0.1-cccccccccc-bbbbbbbbbb", "1.0.1", "2026-11-02T00:00:00Z", {"linux/amd64": D3},
                           {"linux/amd64": 810_000_000}))
    scans = (report.ScanPoint(builds[0].label, "2026-11-01T00:00:00Z", {"CRITICAL": 1, "HIGH": 2}),
             report.ScanPoint(builds[1].label, "2026-11-03T00:00:00Z", {"CRITICAL": 0, "LOW": 5, "SECRETS": 1}))
    histories = (report.ImageHistory("spark-3.5", builds, scans), report.ImageHistory(EVIL, (), ()))
    promotions = ({"at": "2026-11-02T10:00:00Z", "action": "promote", "image": "spark-3.5", "digest": str(D1),
                   "from": "test", "to": "dev", "outcome": "copy", "moved": ["1.0.1", "latest"], "by": "ci",
                   "approved_by": None},)
    return report.ReportData("2026-11-03 10:00 UTC", "local", rows, histories, promotions)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action", "data", "poster")]


def test_page_is_self_contained() -> None:
    page = report_page.render(_data())
    parser = _Refs()
    parser.feed(page)
    assert parser.refs == []  # nothing loaded from anywhere
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", page, re.IGNORECASE)
    assert f'content="{report_page.CSP}"' in page and "default-src 'none'" in report_page.CSP
    assert parser.tags.count("script") == 1 and parser.tags.count("style") == 1
    assert "link" not in parser.tags and "img" not in parser.tags and "iframe" not in parser.tags


def test_everything_from_outside_is_escaped() -> None:
    page = report_page.render(_data())
    assert "<script>alert" not in page
    assert "team/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "approved by alice &lt;ops&gt;" in page


def test_matrix_has_a_row_per_image_and_a_cell_per_environment() -> None:
    page = report_page.render(_data())
    body = page.split('<tbody>', 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr ") == 2 and 'data-image="spark-3.5"' in body
    first = body.split("</tr>")[0]
    assert first.count('class="cell"') == 2 and first.count('class="empty"') == 2
    assert 'title="' + str(D1) + '"' in first and D1.short in first
    assert "scan: BLOCKED (dev policy)" in first and "smoke: FAILED" in first
    assert "pending: 1.0.1 dev -&gt; staging" in first


def test_plots_are_well_formed_svg_with_a_point_or_bar_per_value() -> None:
    page = report_page.render(_data())
    svgs = re.findall(r"<svg .*?</svg>", page, re.DOTALL)
    assert len(svgs) == 2  # the image without builds or scans says so instead of plotting nothing
    sizes, findings = (ET.fromstring(s) for s in svgs)
    circles = [c for c in sizes.iter("circle")]
    assert len(circles) == 3  # amd64 twice, arm64 once (its second build has no arm64)
    assert {c.findtext("title").split(" ")[0] for c in circles} == {"linux/amd64", "linux/arm64"}
    assert len(list(sizes.iter("polyline"))) == 1  # one point does not make a line
    bars = [r for r in findings.iter("rect") if r.get("class") == "bar"]
    assert sorted(r.findtext("title").rsplit(" ", 1)[1] for r in bars) == ["CRITICAL", "HIGH", "LOW", "SECRETS"]
    assert "no builds in test" in page and "no scans cached on this machine" in page


def test_bars_stack_to_their_total_and_the_axis_is_whole() -> None:
    svg = ET.fromstring(svg_charts.stacked_bars("t", ["a", "b"], {"CRITICAL": [1, 0], "HIGH": [2, 0]}, "findings"))
    bars = [r for r in svg.iter("rect") if r.get("class") == "bar"]
    heights = [float(r.get("height")) for r in bars]
    top, bottom = 30.0, 260 - 44.0
    assert abs(sum(heights) - (bottom - top) * 3 / 4) < 0.5  # 3 of an axis up to 4
    ticks = [t.text for t in svg.iter("text") if t.get("text-anchor") == "end"]
    assert ticks == ["0", "1", "2", "3", "4"]


def test_scan_points_count_a_finding_once_across_platforms_and_split_by_db() -> None:
    build = report.Build("1.0.0-aaaaaaaaaa-bbbbbbbbbb", "1.0.0", None, {"linux/amd64": D1, "linux/arm64": D2}, {})
    old, new = _db("01"), _db("02")
    shared = ("CVE-1", "jq", Severity.CRITICAL)
    reports = [_report(AMD, D1, new, shared, ("CVE-2", "bash", Severity.LOW)), _report(ARM, D2, new, shared),
               _report(AMD, D1, old), _report(ARM, D2, old)]
    reports[0] = ScanReport(AMD, D1, new, reports[0].vulnerabilities,
                            (SecretFinding("aws-key", "AWS", Severity.CRITICAL, "/a", 1),))
    points = report.scan_points(build, reports)
    assert [p.db_updated_at for p in points] == [old.vuln_updated_at, new.vuln_updated_at]
    assert points[0].counts == {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "UNKNOWN": 0, "SECRETS": 0}
    assert points[1].counts == {"CRITICAL": 1, "HIGH": 0, "MEDIUM": 0, "LOW": 1, "UNKNOWN": 0, "SECRETS": 1}
    assert points[1].build == "1.0.0\naaaaaa·bbbbbb"


def test_nice_axis_tops() -> None:
    assert [svg_charts.nice_max(v) for v in (0, 1, 7, 830, 1060, 2600)] == [1, 1, 8, 1000, 1200, 3000]
    assert [svg_charts.nice_max(v, whole=True) for v in (0, 3, 5, 13, 101)] == [4, 4, 8, 16, 120]
