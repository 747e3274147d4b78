"""`moka-images scan` and `moka-images db mirror`: trivy per platform, cached by digest and DB, judged by policy.

A scan reads the image straight from its registry by digest, one platform at a time, with databases that
come only from our mirror. Results are cached under <home>/cache/scans keyed by the platform manifest digest
and the DB artifacts' digests, so the same image (in any registry) is not scanned twice with the same DB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from moka_images import log, metrics
from moka_images.adapters import trivy
from moka_images.adapters.registry import Registry
from moka_images.config.policies import Rules, load_rules
from moka_images.config.settings import Settings
from moka_images.errors import ConfigError
from moka_images.findings import DbVersion, ScanReport
from moka_images.models import Digest, Environment, ImageRef, Platform
from moka_images.plan.verdict import Verdict, judge
from moka_images.stages import registries
from moka_images.stages.images import platforms_of
from moka_images.stages.verify.dbmirror import ensure_databases, trivy_env


@dataclass(frozen=True)
class ImageScan:
    """Every platform of one image index, scanned with one DB version."""

    image: ImageRef  # pinned to the index digest
    name: str  # the image's name in manifests/ (what exceptions refer to)
    reports: tuple[ScanReport, ...]
    sboms: tuple[tuple[Platform, Path], ...]  # CycloneDX JSON per platform
    from_cache: tuple[Platform, ...] = ()

    def sbom(self, platform: Platform) -> Path:
        """The CycloneDX SBOM of one platform."""
        return dict(self.sboms)[platform]


# ---- databases ---------------------------------------------------------------------------------


# ---- scanning ----------------------------------------------------------------------------------


def _cache_dir(settings: Settings, digest: Digest, db: DbVersion) -> Path:
    db_key = hashlib.sha256(db.key.encode()).hexdigest()[:16]
    return settings.home / "cache" / "scans" / digest.hex / db_key


def scan_platform(settings: Settings, ref: ImageRef, platform: Platform,
                  db: DbVersion) -> tuple[ScanReport, Path, bool]:
    """One platform manifest (ref pinned to it): from the cache if scanned with this DB before, else trivy.

    Returns the report, its SBOM and whether it came from the cache.
    """
    if ref.digest is None:
        raise ValueError("scan_platform needs a digest")
    final = _cache_dir(settings, ref.digest, db)
    parsed = final / "scan.json"
    if parsed.exists():
        return ScanReport.from_json(json.loads(parsed.read_text())), final / "sbom.cdx.json", True
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".scan-", dir=final.parent))
    try:
        with log.step(f"trivy {platform} {ref.digest.short}"):
            report = trivy.scan(trivy_env(settings), ref, platform, db, work)
        (work / "scan.json").write_text(json.dumps(report.to_json(), indent=1))
        try:
            os.replace(work, final)  # atomic: a concurrent scan of the same digest leaves one complete result
        except OSError:
            if not parsed.exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report, final / "sbom.cdx.json", False


def cached_reports(settings: Settings, digest: Digest) -> list[ScanReport]:
    """Every cached scan of one platform manifest, one per DB it was scanned with, oldest DB first."""
    found = []
    for path in (settings.home / "cache" / "scans" / digest.hex).glob("*/scan.json"):
        try:
            found.append(ScanReport.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            continue  # a cache entry from an older format is no history worth failing on
    return sorted(found, key=lambda r: r.db.vuln_updated_at)


def scan_image(settings: Settings, client: Registry, ref: ImageRef, name: str,
               mirror: Registry | None = None) -> ImageScan:
    """Scan each platform of `ref` (pinned to an index or manifest digest) in `client`'s registry."""
    if ref.digest is None:
        raise ValueError("scan_image needs a digest; resolve tags first")
    db = ensure_databases(settings, mirror or registries.mirror(settings))
    reports, sboms, cached = [], [], []
    for platform, digest in sorted(platforms_of(client, ref.repository, client.get_manifest(ref.repository, str(ref.digest))).items()):
        report, sbom, hit = scan_platform(settings, ref.with_digest(digest), platform, db)
        reports.append(report)
        sboms.append((platform, sbom))
        if hit:
            cached.append(platform)
    if cached:
        log.info(f"reused cached scans for {', '.join(map(str, cached))}", db=db.vuln_updated_at)
    for report in reports:
        for severity, n in report.counts().items():
            metrics.set_gauge(metrics.FINDINGS, n, image=name, platform=str(report.platform), severity=severity)
    return ImageScan(ref, name, tuple(reports), tuple(sboms), tuple(cached))


def rules_for(settings: Settings, environment: Environment) -> Rules:
    """`environment`'s policy and the exceptions beside it: commands read them before any work."""
    return load_rules(settings.policy_path(environment), settings.root)


def judge_scan(settings: Settings, result: ImageScan, environment: Environment, today: date,
               rules: Rules | None = None) -> Verdict:
    """Judge a scan with `environment`'s rules (read up front by the caller, or here)."""
    rules = rules or rules_for(settings, environment)
    verdict = judge(result.reports, rules.policy, rules.exceptions, environment=environment.value, image=result.name,
                    today=today)
    metrics.gate("scan", environment.value, result.name, verdict.allowed)
    return verdict


def scan_predicate(result: ImageScan, verdict: Verdict) -> dict[str, Any]:
    """The predicate (type `models.SCAN_TYPE`) that signing attests on the index digest."""
    db = result.reports[0].db if result.reports else None
    return {
        "image": str(result.image),
        "scanner": {"name": "trivy", "version": next((r.trivy_version for r in result.reports), "")},
        "db": {"vulnerability": {"digest": db.vuln_digest, "updated_at": db.vuln_updated_at},
               "java": {"digest": db.java_digest, "updated_at": db.java_updated_at}} if db else {},
        "platforms": [{"platform": str(r.platform), "digest": str(r.digest), "os": r.os,
                       "packages": r.package_count, "counts": r.counts()} for r in result.reports],
        "verdict": verdict.to_json(),
    }


# ---- command line ------------------------------------------------------------------------------

