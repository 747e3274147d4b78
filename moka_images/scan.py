"""`moka-images scan` and `moka-images db mirror`: trivy per platform, cached by digest and DB, judged by policy.

A scan reads the image straight from its registry by digest, one platform at a time, with databases that
come only from our mirror. Results are cached under <home>/cache/scans keyed by the platform manifest digest
and the DB artifacts' digests, so the same image (in any registry) is not scanned twice with the same DB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import log, metrics, registries
from .adapters import trivy
from .adapters.registry import RegistryClient
from .config.policies import Rules, load_rules
from .config.settings import Settings, load_settings
from .errors import ConfigError, GateFailed, ServiceError
from .findings import DbVersion, ScanReport
from .images import resolve
from .models import Digest, Environment, ImageRef, Platform
from .plan.verdict import Verdict, judge
from .trivydb import builder
from .trivydb.advisories import load_advisories

SCAN_PREDICATE_TYPE = "https://moka-images.dev/attestations/scan/v1"
ADVISORIES = Path("security/advisories.yaml")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DB_CONFIG_TYPE = "application/vnd.aquasec.trivy.config.v1+json"
DB_LAYER_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
JAVA_DB_LAYER_TYPE = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip"
CONTENT_ANNOTATION = "dev.moka-images.trivydb.content"


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


def trivy_env(settings: Settings) -> trivy.TrivyEnv:
    """trivy's cache under settings.home and the DB repositories in the mirror."""
    return trivy.TrivyEnv(settings.home / "cache" / "trivy", settings.mirror,
                          settings.trivy.db_repository, settings.trivy.java_db_repository)


def _publish(client: RegistryClient, repository: str, tag: str, archive: bytes, content: str, layer_type: str,
             title: str, created: datetime) -> Digest:
    """Push one DB archive as the single-layer OCI artifact trivy downloads, unless the mirror has its content.

    `content` identifies the database itself (not its metadata.json timestamps), so re-running `db mirror`
    with unchanged advisories keeps the DB digest and with it every cached scan.
    """
    if client.head_manifest(repository, tag) is not None:
        current = client.get_manifest(repository, tag)
        if (current.json.get("annotations") or {}).get(CONTENT_ANNOTATION) == content:
            return current.digest
    config = b"{}"
    config_digest = client.push_blob(repository, config)
    layer_digest = client.push_blob(repository, archive)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": DB_CONFIG_TYPE, "digest": str(config_digest), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": str(layer_digest), "size": len(archive),
                    "annotations": {"org.opencontainers.image.title": title}}],
        "annotations": {"org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        CONTENT_ANNOTATION: content},
    }
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    return client.put_manifest(repository, tag, raw, OCI_MANIFEST)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def mirror_databases(settings: Settings, client: RegistryClient, *, advisories: Path | None = None,
                     vuln_archive: Path | None = None, java_archive: Path | None = None,
                     now: datetime | None = None) -> tuple[Digest, Digest]:
    """Push the vulnerability DB (tag 2) and Java DB (tag 1) to the mirror; returns their digests.

    Without archives the DBs are built from the advisory list; with them (db.tar.gz / javadb.tar.gz pulled
    from upstream on a connected machine) those are pushed as they are.
    """
    now = now or datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="moka-trivydb-") as tmp:
        work = Path(tmp)
        if vuln_archive:
            vuln_tgz = vuln_archive.read_bytes()
            vuln_content = _sha256(vuln_tgz)
        else:
            path = advisories or settings.root / ADVISORIES
            shown = str(path.relative_to(settings.root)) if path.is_relative_to(settings.root) else str(path)
            db_dir = builder.build_vuln_db(load_advisories(path, shown), work / "db", now)
            vuln_tgz = builder.pack(db_dir, (builder.VULN_DB_FILE, builder.METADATA_FILE))
            vuln_content = _sha256((db_dir / builder.VULN_DB_FILE).read_bytes())
        if java_archive:
            java_tgz = java_archive.read_bytes()
            java_content = _sha256(java_tgz)
        else:
            java_dir = builder.build_java_db(work / "java-db", now)
            java_tgz = builder.pack(java_dir, (builder.JAVA_DB_FILE, builder.METADATA_FILE))
            java_content = _sha256((java_dir / builder.JAVA_DB_FILE).read_bytes())
    vuln = _publish(client, settings.trivy.db_repository, str(builder.VULN_DB_SCHEMA), vuln_tgz, vuln_content,
                    DB_LAYER_TYPE, "db.tar.gz", now)
    java = _publish(client, settings.trivy.java_db_repository, str(builder.JAVA_DB_SCHEMA), java_tgz, java_content,
                    JAVA_DB_LAYER_TYPE, "javadb.tar.gz", now)
    return vuln, java


def ensure_databases(settings: Settings, mirror: RegistryClient) -> DbVersion:
    """The DB version the mirror serves, fetched into trivy's cache if the cache holds another one."""
    found = {}
    for repo, tag in ((settings.trivy.db_repository, builder.VULN_DB_SCHEMA),
                      (settings.trivy.java_db_repository, builder.JAVA_DB_SCHEMA)):
        digest = mirror.head_manifest(repo, str(tag))
        if digest is None:
            raise ServiceError(f"the mirror {settings.mirror} has no {repo}:{tag}",
                               "push the databases: `moka-images db mirror`")
        found[repo] = digest
    return trivy.download_databases(trivy_env(settings), found[settings.trivy.db_repository],
                                    found[settings.trivy.java_db_repository])


# ---- scanning ----------------------------------------------------------------------------------


def _cache_dir(settings: Settings, digest: Digest, db: DbVersion) -> Path:
    db_key = hashlib.sha256(db.key.encode()).hexdigest()[:16]
    return settings.home / "cache" / "scans" / digest.hex / db_key


def _platforms(client: RegistryClient, ref: ImageRef) -> dict[Platform, Digest]:
    manifest = client.get_manifest(ref.repository, str(ref.digest))
    if manifest.is_index:
        return manifest.platforms()
    config = json.loads(client.get_blob(ref.repository, manifest.blobs()[0]))
    return {Platform.parse(f"{config.get('os')}/{config.get('architecture')}"): manifest.digest}


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


def scan_image(settings: Settings, client: RegistryClient, ref: ImageRef, name: str,
               mirror: RegistryClient | None = None) -> ImageScan:
    """Scan each platform of `ref` (pinned to an index or manifest digest) in `client`'s registry."""
    if ref.digest is None:
        raise ValueError("scan_image needs a digest; resolve tags first")
    db = ensure_databases(settings, mirror or registries.mirror(settings))
    reports, sboms, cached = [], [], []
    for platform, digest in sorted(_platforms(client, ref).items()):
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
    """The predicate (type SCAN_PREDICATE_TYPE) that signing attests on the index digest."""
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


def render(result: ImageScan, verdict: Verdict, console: Console) -> None:
    """Findings by severity per platform, then the verdict: each blocking finding and what would unblock it."""
    console.print(escape(f"{result.image} ({result.name})"), soft_wrap=True)
    table = Table("platform", "digest", "crit", "high", "med", "low", "unk", "secrets")
    for r in result.reports:
        c = r.counts()
        table.add_row(str(r.platform), r.digest.short, *(str(c[k]) for k in
                      ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN", "SECRETS")))
    console.print(table)
    # One line per finding (platforms merged) reads at any terminal width, unlike a wide table.
    merged: dict[tuple[str, str, str, str, str | None, str], list[str]] = {}
    for f in verdict.blocking:
        label = f.severity.name if f.kind == "vulnerability" else f.kind
        merged.setdefault((label, f.id, f.package, f.installed_version, f.fixed_version, f.unblock), []).append(
            str(f.platform))
    for (label, fid, package, installed, _, unblock), platforms in merged.items():
        where = f"{package} {installed}".strip()
        console.print(escape(f"BLOCKS {label} {fid} {where} ({', '.join(platforms)}): {unblock}"), soft_wrap=True)
    for w in verdict.waived:
        console.print(escape(f"waived: {w.finding.id} {w.finding.package} ({w.finding.platform}) by exception "
                             f"(owner {w.exception.owner}, until {w.exception.expires}): {w.exception.reason}"),
                      soft_wrap=True)
    for e in verdict.expired:
        console.print(escape(e.message), style="yellow", soft_wrap=True)
    outcome = "[green]ALLOWED[/]" if verdict.allowed else f"[red]BLOCKED[/] ({len(verdict.blocking)} finding(s))"
    console.print(f"verdict for {verdict.environment}: {outcome}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `scan` and `db mirror`."""
    p = sub.add_parser("scan", help="scan each platform of an image with trivy and judge it by policy")
    p.add_argument("image", metavar="IMAGE[:VERSION]", help="image name, with a version or @digest")
    p.add_argument("--env", required=True, choices=[e.value for e in Environment],
                   help="environment whose registry holds the image and whose policy judges it")
    p.add_argument("--json", action="store_true", help="print the scan predicate as JSON on stdout")
    p.set_defaults(func=_cmd_scan)
    db = sub.add_parser("db", help="trivy's vulnerability databases in the mirror")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    m = db_sub.add_parser("mirror", help="build (or take) the DBs and push them to the mirror registry")
    m.add_argument("--advisories", type=Path, help=f"advisory list to build from (default {ADVISORIES})")
    m.add_argument("--vuln-archive", type=Path, help="push this upstream db.tar.gz instead of building")
    m.add_argument("--java-archive", type=Path, help="push this upstream javadb.tar.gz instead of building")
    m.set_defaults(func=_cmd_db_mirror)


def _cmd_scan(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    environment = Environment.parse(args.env)
    rules = rules_for(settings, environment)  # a broken policy stops the scan before it starts
    client = registries.client(settings, environment)
    registries.login_tools(settings, environment)  # trivy reads the registry login from the docker config
    image = resolve(settings, environment, args.image, client)
    result = scan_image(settings, client, image.ref, image.name)
    verdict = judge_scan(settings, result, environment, date.today(), rules)
    if args.json:
        print(json.dumps(scan_predicate(result, verdict), indent=2))
    else:
        render(result, verdict, Console())
    return 0 if verdict.allowed else GateFailed.exit_code


def _cmd_db_mirror(args: argparse.Namespace) -> int:
    settings = load_settings(profile=args.profile)
    with log.step(f"push trivy DBs to {settings.mirror}"):
        vuln, java = mirror_databases(settings, registries.mirror(settings), advisories=args.advisories,
                                      vuln_archive=args.vuln_archive, java_archive=args.java_archive)
    log.info(f"{settings.mirror}/{settings.trivy.db_repository}:{builder.VULN_DB_SCHEMA} = {vuln}")
    log.info(f"{settings.mirror}/{settings.trivy.java_db_repository}:{builder.JAVA_DB_SCHEMA} = {java}")
    return 0
