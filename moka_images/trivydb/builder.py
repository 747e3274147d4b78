"""Build trivy's vulnerability DB (bbolt, schema 2) and Java DB (sqlite, schema 1) from declarations.

The vulnerability DB layout is trivy-db's: one bucket per OS namespace or language data source, holding a
bucket per package with one key per vulnerability ID; a `data-source` bucket naming each namespace's source;
and a `vulnerability` bucket with the details. Both DBs are written beside a metadata.json that trivy reads
even with --skip-db-update.
"""

from __future__ import annotations

import gzip
import io
import json
import sqlite3
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from moka_images.trivydb import bbolt
from moka_images.trivydb.advisories import SEVERITY_LEVEL, AdvisoryFile

VULN_DB_SCHEMA = 2
JAVA_DB_SCHEMA = 1
VULN_DB_FILE = "trivy.db"
JAVA_DB_FILE = "trivy-java.db"
METADATA_FILE = "metadata.json"

# trivy-db's source IDs, names and addresses, as trivy shows them in reports.
_DEBIAN = {"ID": "debian", "Name": "Debian Security Tracker",
           "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"}
_GHSA_MAVEN = {"ID": "ghsa", "Name": "GitHub Security Advisory Maven",
               "URL": "https://github.com/advisories?query=type%3Areviewed+ecosystem%3Amaven"}
_MAVEN_BUCKET = "maven::GitHub Security Advisory Maven"
_STATUS_AFFECTED = 2  # trivy-db types.Status: the package is affected and no fix exists


def _go_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def metadata(schema: int, updated_at: datetime) -> dict[str, Any]:
    """metadata.json content: trivy refuses a DB whose Version differs from its schema."""
    return {
        "Version": schema,
        "NextUpdate": _go_time(updated_at + timedelta(days=1)),
        "UpdatedAt": _go_time(updated_at),
        "DownloadedAt": _go_time(updated_at),
    }


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def vuln_db_tree(advisories: AdvisoryFile) -> dict[bytes, Any]:
    """The bucket tree of trivy.db for `advisories`."""
    namespaces: dict[str, dict[bytes, dict[bytes, bytes]]] = {}
    sources: dict[bytes, bytes] = {}
    details: dict[bytes, bytes] = {}
    for vuln in advisories.vulnerabilities:
        level = SEVERITY_LEVEL[vuln.severity]
        vendors: dict[str, int] = {}
        for affected in vuln.affects:
            if affected.os:
                bucket, source = affected.os, _DEBIAN
                entry: dict[str, Any] = {"Severity": level}
                if affected.fixed_version:
                    entry["FixedVersion"] = affected.fixed_version
                else:
                    entry["Status"] = _STATUS_AFFECTED
            else:
                bucket, source = _MAVEN_BUCKET, _GHSA_MAVEN
                entry = {"VulnerableVersions": affected.vulnerable_versions}
                if affected.patched_versions:
                    entry["PatchedVersions"] = affected.patched_versions
            vendors[source["ID"]] = level
            sources[bucket.encode()] = _json(source)
            packages = namespaces.setdefault(bucket, {})
            packages.setdefault(affected.package.encode(), {})[vuln.id.encode()] = _json(entry)
        detail: dict[str, Any] = {
            "Title": vuln.title,
            "Description": vuln.description,
            "Severity": vuln.severity,
            "VendorSeverity": vendors,
        }
        if vuln.references:
            detail["References"] = vuln.references
        if vuln.published:
            detail["PublishedDate"] = f"{vuln.published.isoformat()}T00:00:00Z"
        details[vuln.id.encode()] = _json(detail)
    tree: dict[bytes, Any] = {name.encode(): pkgs for name, pkgs in namespaces.items()}
    tree[b"data-source"] = sources
    tree[b"vulnerability"] = details
    return tree


def build_vuln_db(advisories: AdvisoryFile, out_dir: Path, updated_at: datetime) -> Path:
    """Write trivy.db and metadata.json into `out_dir`; return `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bbolt.write(out_dir / VULN_DB_FILE, vuln_db_tree(advisories))
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata(VULN_DB_SCHEMA, updated_at)))
    return out_dir


# The tables and indexes trivy-java-db creates (trivy opens the file and queries these by name).
_JAVA_SCHEMA = (
    "CREATE TABLE artifacts(id INTEGER PRIMARY KEY, group_id TEXT, artifact_id TEXT)",
    ("CREATE TABLE indices(artifact_id INTEGER, version TEXT, sha1 BLOB, archive_type TEXT,"
     " foreign key (artifact_id) references artifacts(id))"),
    "CREATE UNIQUE INDEX artifacts_idx ON artifacts(artifact_id, group_id)",
    "CREATE INDEX indices_artifact_idx ON indices(artifact_id)",
    "CREATE UNIQUE INDEX indices_sha1_idx ON indices(sha1)",
)


def build_java_db(out_dir: Path, updated_at: datetime) -> Path:
    """Write an empty-but-valid trivy-java.db and metadata.json into `out_dir`; return `out_dir`.

    Trivy looks JARs up by SHA-1 here only when a JAR carries no Maven coordinates; Spark's JARs do, so an
    empty index costs no findings while letting trivy run without downloading the 1 GB upstream index.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / JAVA_DB_FILE
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        for statement in _JAVA_SCHEMA:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata(JAVA_DB_SCHEMA, updated_at)))
    return out_dir


def pack(db_dir: Path, files: tuple[str, ...]) -> bytes:
    """A reproducible db.tar.gz of `files` in `db_dir` (sorted, zero mtimes, root-owned)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = (db_dir / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)
