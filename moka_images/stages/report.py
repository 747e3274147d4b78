"""`moka-images report`: one self-contained HTML page of what the environments hold and how images evolve.

The page has the status matrix (image x environment: version, digest, signature, scan, smoke), per image the
size of each platform over its builds and the findings of each scan over time, and the promotion history.
Everything is inline (CSS, a few lines of JS, SVG plots drawn here), and a Content-Security-Policy forbids
any other source, so the file opens anywhere, offline, and can be archived as a CI artifact.

Collecting reads the registries (sizes from the manifests of every build in test, which holds them all),
the scan cache (one point per DB an image was scanned with) and the local promotion history; rendering is
pure and is what the unit tests check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import semver

from moka_images import log, metrics
from moka_images.adapters.registry import Registry
from moka_images.config.manifests import load_declarations
from moka_images.config.settings import Settings
from moka_images.findings import ScanReport
from moka_images.models import Digest, Environment
from moka_images.plan.graph import BuildTag
from moka_images.stages import history, registries, status
from moka_images.stages.verify import scan

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
PROMOTIONS_SHOWN = 50


@dataclass(frozen=True)
class Build:
    """One build of an image in test: its tag, when it was made, and each platform's digest and size."""

    tag: str
    version: str
    created: str | None
    digests: Mapping[str, Digest]  # platform -> manifest digest
    sizes: Mapping[str, int]  # platform -> compressed bytes

    @property
    def label(self) -> str:
        """x-axis label: the version, and below it the build's own and base keys (a version can have several)."""
        build = BuildTag.parse(self.tag)
        return f"{self.version}\n{build.own[:6]}·{build.base[:6]}" if build else self.tag


@dataclass(frozen=True)
class ScanPoint:
    """What one DB said about one build: unique findings (over platforms) by severity, plus secrets."""

    build: str  # Build.label
    db_updated_at: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class ImageHistory:
    """Every build of one image in test and every cached scan of them."""

    image: str
    builds: tuple[Build, ...]
    scans: tuple[ScanPoint, ...]


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows."""

    generated_at: str
    profile: str
    rows: tuple[status.Row, ...]
    histories: tuple[ImageHistory, ...]
    promotions: tuple[Mapping[str, Any], ...] = field(default=())


# ---- collecting --------------------------------------------------------------------------------


def builds_of(client: Registry, repository: str) -> list[Build]:
    """Every build tag of a repository with its per-platform sizes, oldest version (then build time) first."""
    out = []
    for tag in client.list_tags(repository):
        build = BuildTag.parse(tag)
        if build is None:
            continue
        index = client.get_manifest(repository, tag)
        digests = {str(p): d for p, d in sorted(index.platforms().items())} if index.is_index else {}
        sizes: dict[str, int] = {}
        created = None
        for platform, digest in digests.items():
            manifest = client.get_manifest(repository, str(digest))
            sizes[platform] = metrics.image_bytes(manifest.json)
            if created is None and "config" in manifest.json:
                config = json.loads(client.get_blob(repository, Digest(manifest.json["config"]["digest"])))
                created = config.get("created")
        out.append(Build(tag, build.version, created, digests, sizes))
    return sorted(out, key=lambda b: (semver.Version.parse(b.version), b.created or "", b.tag))


def scan_points(build: Build, reports: Sequence[ScanReport]) -> list[ScanPoint]:
    """One point per DB: findings of all the build's platforms, each counted once, by severity. Pure."""
    by_db: dict[str, list[ScanReport]] = {}
    for report in reports:
        by_db.setdefault(report.db.key, []).append(report)
    points = []
    for group in by_db.values():
        unique: dict[str, set[tuple[str, str, str]]] = {s: set() for s in SEVERITIES}
        secrets = set()
        for report in group:
            for v in report.vulnerabilities:
                unique[v.severity.name].add((v.id, v.package, v.installed_version))
            secrets |= {(s.rule_id, s.path) for s in report.secrets}
        counts = {s: len(found) for s, found in unique.items()} | {"SECRETS": len(secrets)}
        points.append(ScanPoint(build.label, group[0].db.vuln_updated_at, counts))
    return sorted(points, key=lambda p: p.db_updated_at)


def collect(settings: Settings, images: Sequence[str] = ()) -> ReportData:
    """Read the registries, the scan cache and the promotion history."""
    names = list(images) or [i.name for i in load_declarations(settings.root).images]
    with log.step("status of every environment"):
        rows = status.collect(settings, names)
    test = registries.client(settings, Environment.TEST)
    histories = []
    with log.step("builds and scans"):
        for name in names:
            builds = builds_of(test, settings.repository(name))
            points = [p for b in builds for p in scan_points(
                b, [r for d in b.digests.values() for r in scan.cached_reports(settings, d)])]
            histories.append(ImageHistory(name, tuple(builds), tuple(sorted(points, key=lambda p: p.db_updated_at))))
    promotions = sorted(history.read(settings), key=lambda r: str(r.get("at", "")), reverse=True)
    return ReportData(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), settings.profile, tuple(rows),
                      tuple(histories), tuple(promotions[:PROMOTIONS_SHOWN]))


# ---- plots -------------------------------------------------------------------------------------


# ---- the page ----------------------------------------------------------------------------------



