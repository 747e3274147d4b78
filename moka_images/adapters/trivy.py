"""trivy: fetch its databases from our mirror, scan one platform of an image in a registry, make an SBOM.

Air-gapped by construction: databases come only from `--db-repository`/`--java-db-repository` in the mirror
and are fetched in a separate step; scans then run with the updates skipped, `--offline-scan`, and with
version checks and telemetry off (either alone still makes trivy look a host up).
"""

from __future__ import annotations

import fcntl
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moka_images.adapters import run
from moka_images.adapters.registry import is_local
from moka_images.errors import ServiceError
from moka_images.findings import DbVersion, LicenseFinding, ScanReport, SecretFinding, Severity, VulnFinding
from moka_images.models import Digest, ImageRef, Platform
from moka_images.trivydb.builder import JAVA_DB_SCHEMA, VULN_DB_SCHEMA

SCANNERS = ("vuln", "secret", "license")
SCAN_TIMEOUT = 1800.0


@dataclass(frozen=True)
class TrivyEnv:
    """Where trivy keeps its cache and where it may fetch databases from."""

    cache_dir: Path
    mirror: str  # registry host[:port]
    db_repository: str  # repository in the mirror; trivy wants tag VULN_DB_SCHEMA
    java_db_repository: str  # trivy wants tag JAVA_DB_SCHEMA

    def common_args(self, *registries: str) -> list[str]:
        """Flags every trivy call gets: no phoning home, our cache, our mirror (plain HTTP when on loopback)."""
        args = ["--cache-dir", str(self.cache_dir), "--skip-version-check", "--disable-telemetry",
                "--db-repository", f"{self.mirror}/{self.db_repository}:{VULN_DB_SCHEMA}",
                "--java-db-repository", f"{self.mirror}/{self.java_db_repository}:{JAVA_DB_SCHEMA}"]
        if any(is_local(r) for r in (self.mirror, *registries)):
            args.append("--insecure")
        return args


def version() -> str:
    """trivy's version, e.g. 0.76.0."""
    out = run.call(["trivy", "--version", "--format", "json"], quiet=True).stdout
    return str(json.loads(out).get("Version", ""))


def db_metadata(cache_dir: Path, kind: str) -> dict[str, Any] | None:
    """metadata.json of the cached vulnerability (`db`) or Java (`java-db`) database, if present."""
    try:
        return json.loads((cache_dir / kind / "metadata.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def download_databases(env: TrivyEnv, vuln_digest: Digest, java_digest: Digest) -> DbVersion:
    """Make the cache hold exactly the mirror's databases with these digests; fetch only what changed."""
    env.cache_dir.mkdir(parents=True, exist_ok=True)
    marker = env.cache_dir / "moka-db-source.json"
    # Parallel scans share the cache: one of them fetches, the others wait and then find it current.
    with open(env.cache_dir / ".moka-db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            have = json.loads(marker.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            have = {}
        for kind, digest, flag in (("db", vuln_digest, "--download-db-only"),
                                   ("java-db", java_digest, "--download-java-db-only")):
            if have.get(kind) == str(digest) and db_metadata(env.cache_dir, kind):
                continue
            # trivy would keep a cached DB until its NextUpdate; the mirror's digest is the truth instead.
            shutil.rmtree(env.cache_dir / kind, ignore_errors=True)
            run.call(["trivy", "image", flag, *env.common_args()], timeout=900,
                     hint="is the DB in the mirror? `moka-images db mirror`")
            have[kind] = str(digest)
            marker.write_text(json.dumps(have))
    vuln, java = db_metadata(env.cache_dir, "db"), db_metadata(env.cache_dir, "java-db")
    if not vuln or not java:
        raise ServiceError(f"trivy did not leave its databases in {env.cache_dir}")
    return DbVersion(str(vuln_digest), vuln["UpdatedAt"], str(java_digest), java["UpdatedAt"])


def scan(env: TrivyEnv, image: ImageRef, platform: Platform, db: DbVersion, out_dir: Path) -> ScanReport:
    """Scan one platform manifest straight from its registry; writes report.json and sbom.cdx.json in out_dir."""
    if image.digest is None:
        raise ValueError("scan images by digest")
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path, sbom_path = out_dir / "report.json", out_dir / "sbom.cdx.json"
    # The scan-result cache in memory: trivy's file cache takes an exclusive lock, so scans running at once
    # (50 promotions in bench/load_promote.py) failed with "cache may be in use by another process". Results
    # are cached by moka-images per platform digest and DB instead; the DBs are still read from cache_dir.
    run.call(["trivy", "image", *env.common_args(image.registry), "--cache-backend", "memory",
              "--skip-db-update", "--skip-java-db-update",
              "--offline-scan", "--image-src", "remote", "--platform", str(platform),
              "--scanners", ",".join(SCANNERS), "--format", "json",
              "--output", str(report_path), str(image)], timeout=SCAN_TIMEOUT)
    # One scan, two documents: the CycloneDX SBOM is converted from the JSON report, not scanned again.
    run.call(["trivy", "convert", "--format", "cyclonedx", "--output", str(sbom_path), str(report_path)],
             timeout=300)
    return parse_report(json.loads(report_path.read_text()), platform, image.digest, db)


def parse_report(doc: dict[str, Any], platform: Platform, digest: Digest, db: DbVersion) -> ScanReport:
    """trivy's JSON report as a ScanReport."""
    vulns: list[VulnFinding] = []
    secrets: list[SecretFinding] = []
    licenses: list[LicenseFinding] = []
    packages = 0
    for result in doc.get("Results") or []:
        target = result.get("Target", "")
        packages += len(result.get("Packages") or [])
        for v in result.get("Vulnerabilities") or []:
            vulns.append(VulnFinding(
                id=v["VulnerabilityID"], package=v["PkgName"], installed_version=v.get("InstalledVersion", ""),
                fixed_version=v.get("FixedVersion") or None, severity=Severity.parse(v.get("Severity")),
                title=v.get("Title", ""), target=target, package_path=v.get("PkgPath") or None,
            ))
        for s in result.get("Secrets") or []:
            secrets.append(SecretFinding(s["RuleID"], s.get("Title", ""), Severity.parse(s.get("Severity")),
                                         "/" + target.lstrip("/"), int(s.get("StartLine", 0))))
        for lic in result.get("Licenses") or []:
            licenses.append(LicenseFinding(lic["Name"], lic.get("PkgName") or lic.get("FilePath", ""),
                                           lic.get("Category", ""), lic.get("FilePath", "")))
    os_info = (doc.get("Metadata") or {}).get("OS") or {}
    return ScanReport(
        platform=platform, digest=digest, db=db,
        vulnerabilities=tuple(sorted(set(vulns), key=lambda v: (-v.severity, v.id, v.package, v.target))),
        secrets=tuple(sorted(set(secrets), key=lambda s: (s.path, s.line, s.rule_id))),
        licenses=tuple(sorted(set(licenses), key=lambda lic: (lic.name, lic.package, lic.path))),
        os=f"{os_info.get('Family', '')} {os_info.get('Name', '')}".strip(),
        package_count=packages,
        trivy_version=str((doc.get("Trivy") or {}).get("Version", "")),
    )
